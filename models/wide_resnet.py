"""Wide residual networks for CIFAR (Zagoruyko & Komodakis, BMVC 2016) with RobustBench's checkpoints.

The architecture WRN-d-k is RobustBench's (``robustbench/model_zoo/architectures/wide_resnet.py``, after
TRADES), written here from its definition: a 3x3 convolution to 16 channels, three groups of
n = (d - 4) / 6 pre-activation basic blocks of widths 16k, 32k, 64k (strides 1, 2, 2), BatchNorm-ReLU,
global average pooling and a linear classifier. A basic block computes BN-ReLU, 3x3 conv, BN-ReLU, 3x3 conv
and adds a shortcut: the raw input when the widths agree, else a 1x1 convolution of the *activated* input
(BN-ReLU of the input feeds both branches). No dropout; convolutions without bias. Parameter and buffer
names are RobustBench's (``conv1``, ``block1.layer.0.bn1``, ``...convShortcut``, ``bn1``, ``fc``), so its
checkpoints load as they are.

Model plugins (none needs a ``train`` split: the weights are trained elsewhere):

* ``wrn28_10_standard``: RobustBench's CIFAR-10 ``Standard`` (WRN-28-10, standard training; 94.78% clean
  accuracy by RobustBench's model card), inputs in [0, 1] without normalisation. It is the model of Tent's
  CIFAR-10-C example (DequanWang/tent, ``cifar10c.py``).
* ``wrn40_2_augmix``: RobustBench's ``Hendrycks2020AugMix_WRN`` (WRN-40-2 trained with AugMix), with a
  CIFAR-10 and a CIFAR-100 checkpoint (chosen by the dataset's class count), inputs as (x - 0.5) / 0.5.
  RobustBench has no ``Standard`` CIFAR-100 model (RobustBench/robustbench#167), so the CIFAR-100-C
  benchmark uses this one.
* ``wrn_tiny``: a seeded *random* WRN-10-1 (no trained weights; classifier rows centred), for tests and
  quick runs; its records say ``random-init (wrn_tiny has no trained weights)``.

Weights are fetched on first use from RobustBench's Google Drive files with torch.hub's downloader (the
size is printed first) into ``<cache>/weights/robustbench/<dataset>/corruptions/<name>.pt``, RobustBench's
own layout under shiftbench's cache (a file fetched by hand may be put there). Checksums: RobustBench
publishes none for its checkpoints (its model zoo lists Google Drive ids only), so a checkpoint is accepted
when it loads as a state dict with exactly the architecture's keys and shapes (which refuses a Google Drive
warning page, a truncated file and a checkpoint of another model), and the sha256 of the first accepted
file is recorded beside it (``<name>.pt.sha256``); every later load recomputes the file's sha256 and refuses
a mismatch. That guards against a file changing in the cache, not against a wrong first download; the
records carry the hash (``model_weights``), so runs on different files never mix unnoticed.
Without the file and without network (or with ``SHIFTBENCH_OFFLINE=1``) building the model fails with one
line naming the file, its size and the command that fetches it, before anything is computed.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from shiftbench.errors import MissingDataError, ShiftbenchError
from shiftbench.model import ModelSpec, SourceModel, image_preprocess, state_fingerprint
from shiftbench.models.pretrained import _short_socket_timeout, downloads_allowed, host_reachable

GDRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
#: key prefixes RobustBench strips from its checkpoints before loading (``rm_substr_from_state_dict``)
CHECKPOINT_PREFIXES = ("module.", "model.")


class BasicBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 plus a shortcut; where the widths
    differ the shortcut is a 1x1 convolution (stride) of the activated input."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.convShortcut = None if in_planes == out_planes else nn.Conv2d(in_planes, out_planes, 1, stride=stride,
                                                                           padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(activated))))
        return out + (x if self.convShortcut is None else self.convShortcut(activated))


class NetworkBlock(nn.Module):
    """A group of ``n`` basic blocks; the first changes the width and applies the stride."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` for 32x32 inputs, with RobustBench's parameter names and initialisation
    (He-normal convolutions with fan-out, BatchNorm scale 1 and shift 0, classifier bias 0)."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ShiftbenchError(f"a wide ResNet's depth must be 6n + 4 (10, 16, 22, 28, 40, ...); got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, (2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(self.relu(self.bn1(out)).mean((2, 3)))


@dataclass(frozen=True)
class Checkpoint:
    """One RobustBench checkpoint: where it lives, the architecture it is for and its input normalisation."""

    name: str
    dataset: str  # RobustBench's dataset name: cifar10 | cifar100
    gdrive_id: str
    depth: int
    widen_factor: int
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: approximate file size, shown before a download (the architecture's float32 tensors)
    size: str

    def relative_path(self) -> Path:
        return Path("robustbench") / self.dataset / "corruptions" / f"{self.name}.pt"

    def url(self) -> str:
        return GDRIVE_URL.format(id=self.gdrive_id)

    def fetch_command(self, path: Path) -> str:
        return f"mkdir -p {path.parent} && curl -L '{self.url()}' -o {path}"


#: RobustBench's model zoo (robustbench/model_zoo/cifar10.py and cifar100.py, ``common_corruptions``)
CHECKPOINTS: dict[tuple[str, int], Checkpoint] = {
    ("Standard", 10): Checkpoint("Standard", "cifar10", "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC", 28, 10, 10,
                                 (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "about 146 MB"),
    ("Hendrycks2020AugMix_WRN", 10): Checkpoint("Hendrycks2020AugMix_WRN", "cifar10", "1wy7gSRsUZzCzj8QhmTbcnwmES_2kkNph",
                                                40, 2, 10, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "about 9 MB"),
    ("Hendrycks2020AugMix_WRN", 100): Checkpoint("Hendrycks2020AugMix_WRN", "cifar100", "1XpFFdCdU9LcDtcyNfo6_BV1RZHKKkBVE",
                                                 40, 2, 100, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "about 9 MB"),
}


def robustbench_state(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded RobustBench checkpoint: its ``state_dict`` entry when it has one, with
    the ``module.`` / ``model.`` key prefixes removed, as RobustBench's ``load_model`` does."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, dict):
        raise ValueError(f"not a checkpoint of tensors ({type(state).__name__})")
    out = {}
    for key, value in state.items():
        for prefix in CHECKPOINT_PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def checkpoint_problem(path: Path, net: WideResNet) -> str | None:
    """Load RobustBench checkpoint ``path`` into ``net`` (strictly: every key and shape must match) and return
    None, or return in one line what makes the file unusable (``net`` then unchanged)."""
    with open(path, "rb") as f:
        if f.read(64).lstrip().startswith(b"<"):
            return "it is a web page (HTML), not a torch file"
    try:
        state = robustbench_state(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or not a torch file at all
        return f"torch.load fails: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if found != expected:
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        return (f"its tensors are not those of {type(net).__name__}-{net_name(net)} (missing {missing[:3]}, unexpected "
                f"{extra[:3]}, other shapes {wrong[:3]})")
    net.load_state_dict(state, strict=True)
    return None


def net_name(net: WideResNet) -> str:
    """``<depth>-<widen factor>`` of a WRN."""
    n = len(net.block1.layer)
    return f"{6 * n + 4}-{net.block1.layer[0].conv1.out_channels // 16}"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_sha256(path: Path) -> str:
    """The file's sha256, refused (:class:`ShiftbenchError`) when it differs from the one recorded beside it
    (``<path>.sha256``) at its first use; :func:`record_sha256` records it."""
    digest = file_sha256(path)
    record = path.with_name(path.name + ".sha256")
    recorded = record.read_text().split()[0] if record.exists() and record.read_text().strip() else None
    if recorded is not None and recorded != digest:
        raise ShiftbenchError(f"{path} has sha256 {digest}, not the {recorded} recorded at its first use ({record}); "
                              "it changed since. Delete both files to download it again")
    return digest


def record_sha256(path: Path, digest: str) -> None:
    """Record ``digest`` beside ``path`` (``<path>.sha256``) unless a hash is recorded already."""
    record = path.with_name(path.name + ".sha256")
    if not record.exists():
        record.write_text(f"{digest}  {path.name}\n")


def fetch_checkpoint(ckpt: Checkpoint, path: Path, download: bool) -> bool:
    """Download ``ckpt`` to ``path`` (size shown first) unless it is there, and say whether it was downloaded;
    without network or with downloads off, a :class:`MissingDataError` naming the file, its size and the
    command that fetches it."""
    if path.exists():
        return False
    what = f"RobustBench checkpoint {ckpt.dataset}/{ckpt.name} (WRN-{ckpt.depth}-{ckpt.widen_factor})"
    if not download or not host_reachable(ckpt.url()):
        raise MissingDataError(what, str(path), ckpt.fetch_command(path), ckpt.size)
    print(f"downloading {what}, {ckpt.size}, to {path}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _short_socket_timeout():
            torch.hub.download_url_to_file(ckpt.url(), str(path), progress=True)
    except Exception as exc:  # noqa: BLE001 - network errors of every kind end the same way
        path.unlink(missing_ok=True)
        raise MissingDataError(f"{what} (download failed: {exc})", str(path), ckpt.fetch_command(path), ckpt.size) from exc
    return True


def checkpoint_network(ckpt: Checkpoint, cache_root: Path, download: bool) -> tuple[WideResNet, str]:
    """The WRN of ``ckpt`` with its weights from ``<cache_root>/weights/`` (downloaded first if absent), and
    the file's sha256 (checked against, or else recorded as, the one of its first use). A download that is
    not the checkpoint (e.g. a Google Drive web page) is deleted and refused."""
    path = Path(cache_root) / "weights" / ckpt.relative_path()
    downloaded = fetch_checkpoint(ckpt, path, download)
    digest = verified_sha256(path)
    net = WideResNet(ckpt.depth, ckpt.widen_factor, ckpt.num_classes)
    problem = checkpoint_problem(path, net)
    if problem and downloaded:  # not kept, so that the next try downloads again
        path.unlink(missing_ok=True)
        raise ShiftbenchError(f"the download of {ckpt.url()} is not the checkpoint ({problem}); fetch it by hand "
                              f"({ckpt.size}): {ckpt.fetch_command(path)}")
    if problem:
        raise ShiftbenchError(f"{path} is not a usable checkpoint ({problem}); delete it (and {path.name}.sha256 "
                              "beside it, if any) to download it again")
    record_sha256(path, digest)  # only once the file has proved to be the checkpoint
    return net, digest


class _WideResNetSpec(ModelSpec):
    """A WRN for 32x32 images split into its body (pooled features) and its ``fc`` classifier."""

    abstract = True
    defaults: ClassVar[dict[str, Any]] = {"download": True}

    def network(self, dataset: Any, seed: int, cache_root: Path) -> tuple[WideResNet, tuple, tuple, str]:
        """The network with its weights, its input mean and std, and where the weights came from."""
        raise NotImplementedError

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        if getattr(dataset, "input_kind", "image") != "image":
            raise ShiftbenchError(f"model {self.name!r} takes images; dataset {dataset.name!r} has {dataset.input_kind} inputs")
        net, mean, std, provenance = self.network(dataset, seed, Path(cache_root))
        net.eval()
        head, net.fc = net.fc, nn.Identity()
        fingerprint = state_fingerprint(nn.Sequential(net, head))
        return SourceModel(self.name, net, head, image_preprocess(32, 3, mean, std), fingerprint, provenance, device)


class _RobustBenchWRN(_WideResNetSpec):
    abstract = True
    #: RobustBench's model name
    checkpoint: ClassVar[str]

    def network(self, dataset: Any, seed: int, cache_root: Path) -> tuple[WideResNet, tuple, tuple, str]:
        ckpt = CHECKPOINTS.get((self.checkpoint, dataset.n_classes))
        if ckpt is None:
            have = sorted(n for (name, n) in CHECKPOINTS if name == self.checkpoint)
            raise ShiftbenchError(f"model {self.name!r} (RobustBench {self.checkpoint}) has checkpoints for "
                                  f"{' and '.join(f'{n}-class' for n in have)} CIFAR only; dataset {dataset.name!r} has "
                                  f"{dataset.n_classes} classes")
        cfg = {**self.defaults, **self.options}
        net, digest = checkpoint_network(ckpt, cache_root, downloads_allowed(cfg["download"]))
        return net, ckpt.mean, ckpt.std, f"robustbench:{ckpt.dataset}/corruptions/{ckpt.name} sha256:{digest[:16]}"


class WRN28x10Standard(_RobustBenchWRN):
    """RobustBench's CIFAR-10 ``Standard`` WRN-28-10 (Tent's CIFAR-10-C example model), downloaded on first use."""

    name, checkpoint = "wrn28_10_standard", "Standard"


class WRN40x2AugMix(_RobustBenchWRN):
    """RobustBench's ``Hendrycks2020AugMix_WRN`` WRN-40-2 (CIFAR-10 or CIFAR-100), downloaded on first use."""

    name, checkpoint = "wrn40_2_augmix", "Hendrycks2020AugMix_WRN"


class WRNTiny(_WideResNetSpec):
    """A seeded random-init WRN-10-1 (no trained weights): a fast stand-in for tests and quick runs."""

    name = "wrn_tiny"
    PROVENANCE: ClassVar[str] = "random-init (wrn_tiny has no trained weights)"

    def network(self, dataset: Any, seed: int, cache_root: Path) -> tuple[WideResNet, tuple, tuple, str]:
        """RobustBench's initialisation, seeded, with each classifier row centred (mean 0): the pooled ReLU
        features share a large positive component, which an uncentred random classifier turns into one class
        for every image."""
        torch.manual_seed(seed)
        net = WideResNet(10, 1, dataset.n_classes)
        with torch.no_grad():
            net.fc.weight -= net.fc.weight.mean(1, keepdim=True)
        return net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), self.PROVENANCE
