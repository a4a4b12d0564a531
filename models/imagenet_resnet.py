"""torchvision ImageNet ResNets that keep their own 1000-class classifier (the Tent / RobustBench ImageNet-C model).

``resnet50_imagenet`` is torchvision's ResNet-50 with its original weights (``IMAGENET1K_V1``, 76.13% top-1 by
torchvision's model card): ``torchvision.models.resnet50(pretrained=True)`` as Tent (Wang et al. 2021) and
RobustBench's ImageNet ``Standard_R50`` use it. ``resnet18_imagenet`` is the same for ResNet-18 (a cheaper
model for first looks and tests). Unlike the linear-probe plugins of :mod:`shiftbench.models.pretrained`,
nothing is fitted: the backbone is the network up to global pooling, the head is its ``fc``, and labels
must be ImageNet's class indices, so the dataset must have the 1000 ImageNet classes (ImageNet-C with every
class folder: its labels index the sorted WordNet ids, which is ImageNet's class order).

Inputs are resized to 224 only when they are not 224x224 (ImageNet-C's images are) and normalised with
ImageNet's mean and std; RobustBench's own ImageNet-C evaluation first resizes to 256 and centre-crops 224.

Weights: torch.hub's cache (``<torch hub dir>/checkpoints/<file>``), else downloaded there on first use with
torch.hub (size printed first). Checksum: torchvision publishes the first hex digits of each file's sha256
in its name (``resnet50-0676ba61.pth``); a downloaded file is checked by torch.hub (``check_hash``), a
cached one here, and a mismatch is refused. Without the file and without network (or with
``SHIFTBENCH_OFFLINE=1``) building fails with one line naming the file, its size and how to fetch it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from shiftbench.errors import MissingDataError, ShiftbenchError
from shiftbench.model import ModelSpec, SourceModel, image_preprocess, read_state, state_fingerprint
from shiftbench.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, _short_socket_timeout, downloads_allowed, host_reachable
from shiftbench.models.wide_resnet import file_sha256

IMAGENET_CLASSES = 1000


def hub_file(url: str) -> Path:
    """Where torch.hub keeps the file of ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def published_hash_prefix(url: str) -> str:
    """The sha256 prefix torchvision puts in a weights file's name (``name-<hex>.pth``)."""
    match = re.search(r"-([0-9a-f]{8,})\.", Path(url).name)
    if match is None:
        raise ShiftbenchError(f"{url} carries no sha256 prefix in its name")
    return match.group(1)


def imagenet_weights(url: str, size: str, download: bool) -> dict[str, torch.Tensor]:
    """The state dict of torchvision weights file ``url``: from torch.hub's cache (its sha256 checked against
    the prefix in the name), else downloaded with torch.hub's hash check; else a :class:`MissingDataError`."""
    path, prefix = hub_file(url), published_hash_prefix(url)
    command = f"python -c \"import torch; torch.hub.load_state_dict_from_url('{url}', check_hash=True)\""
    if path.exists():
        digest = file_sha256(path)
        if not digest.startswith(prefix):
            raise ShiftbenchError(f"{path} has sha256 {digest[:16]}..., not torchvision's published {prefix}...; "
                                  f"delete it to download it again ({command})")
        return read_state(path)
    if not download or not host_reachable(url):
        raise MissingDataError(f"torchvision weights {path.name}", str(path), command, size)
    print(f"downloading {url} ({size}) to {path}", file=sys.stderr)
    try:
        with _short_socket_timeout():
            return torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - a network or hash failure ends the same way
        raise MissingDataError(f"torchvision weights {path.name} (download failed: {exc})", str(path), command, size) from exc


class _ImageNetResNet(ModelSpec):
    """A torchvision ImageNet classifier: the network up to pooling as backbone, its own ``fc`` as head."""

    abstract = True
    arch: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {"download": True}

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        from torchvision import models

        if getattr(dataset, "input_kind", "image") != "image":
            raise ShiftbenchError(f"model {self.name!r} takes images; dataset {dataset.name!r} has {dataset.input_kind} inputs")
        if dataset.n_classes != IMAGENET_CLASSES:
            raise ShiftbenchError(f"model {self.name!r} predicts the {IMAGENET_CLASSES} ImageNet classes with its own "
                                  f"classifier; dataset {dataset.name!r} has {dataset.n_classes} classes (ImageNet-C needs "
                                  "all 1000 class folders per corruption and severity for its labels to be ImageNet's)")
        weights = models.get_model_weights(self.arch).IMAGENET1K_V1
        cfg = {**self.defaults, **self.options}
        net = models.get_model(self.arch, weights=None)
        net.load_state_dict(imagenet_weights(weights.url, f"{weights.meta['_file_size']:.1f} MB",
                                             downloads_allowed(cfg["download"])))
        net.eval()
        head, net.fc = net.fc, nn.Identity()
        preprocess = image_preprocess(224, 3, IMAGENET_MEAN, IMAGENET_STD)
        return SourceModel(self.name, net, head, preprocess, state_fingerprint(nn.Sequential(net, head)),
                           f"torchvision:{self.arch}:IMAGENET1K_V1", device)


class ResNet50ImageNet(_ImageNetResNet):
    """torchvision ResNet-50 (IMAGENET1K_V1) with its own ImageNet classifier: Tent's ImageNet-C model."""

    name, arch = "resnet50_imagenet", "resnet50"


class ResNet18ImageNet(_ImageNetResNet):
    """torchvision ResNet-18 (IMAGENET1K_V1) with its own ImageNet classifier."""

    name, arch = "resnet18_imagenet", "resnet18"
