"""Source models: a backbone giving ``features(x)`` and a linear head giving ``logits``.

A model plugin is a :class:`ModelSpec` subclass in a module of the ``models/`` room (one file per
model family, ``shiftbench.models.<name>``, discovered by :mod:`shiftbench.models`);
``build(dataset, seed, ...)`` returns a :class:`SourceModel`, trained by the harness and cached, or
loaded from shipped weights. :meth:`SourceModel.outputs` runs the forward pass over a split once and
caches features and logits by (model fingerprint, split fingerprint). The helpers plugins build with
(:func:`image_preprocess`, :func:`state_fingerprint`, :func:`load_cached_weights`) are here too.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from shiftbench.arrays import check_matrix
from shiftbench.cache import ArrayCache, set_aside


@dataclass
class SourceModel:
    """A trained classifier split into ``backbone`` (inputs -> features) and ``head`` (features -> logits).

    ``preprocess`` turns a batch of raw inputs (as a split stores them) into the tensor the
    backbone expects. ``fingerprint`` identifies the weights; ``pretrained`` says where they came from.
    """

    name: str
    backbone: nn.Module
    head: nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    fingerprint: str
    pretrained: str = "trained-by-harness"
    device: str = "cpu"
    forward_passes: int = field(default=0, init=False)
    forward_seconds: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.network = nn.Sequential(self.backbone, self.head).to(self.device).eval()

    def fresh_network(self) -> nn.Module:
        """A deep copy of the network in eval mode, for methods that update parameters."""
        return copy.deepcopy(self.network).eval()

    def has_batchnorm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.network.modules())

    @torch.no_grad()
    def forward_arrays(self, inputs: Any, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Features and logits of raw ``inputs`` (uncached), in eval mode."""
        began = time.perf_counter()
        self.network.eval()
        feats, logits = [], []
        for start in range(0, len(inputs), batch_size):
            x = self.preprocess(inputs[start:start + batch_size]).to(self.device)
            f = self.backbone(x)
            feats.append(f.float().cpu().numpy())
            logits.append(self.head(f).float().cpu().numpy())
        self.forward_passes += 1
        self.forward_seconds += time.perf_counter() - began
        return {"feats": np.concatenate(feats), "logits": np.concatenate(logits)}

    def outputs(self, split: Any, cache: ArrayCache, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Cached ``{"feats", "logits"}`` of a split (labelled or not): one forward pass per (model, split).

        Non-finite outputs raise :class:`InvalidArrayError` naming the model and the split."""
        out = cache.get_or_compute(
            "outputs", {"model": self.fingerprint, "split": split.fingerprint},
            lambda: self.forward_arrays(_BatchedInputs(split), batch_size),
        )
        for key in ("logits", "feats"):
            check_matrix(out[key], f"{key} of model {self.name!r} on split {split.name!r}", n_rows=len(split))
        return out


class _BatchedInputs:
    """A split's inputs as a sliceable sequence: ``forward_arrays`` reads one batch at a time, so a
    split whose inputs load from disk (WILDS, MetaShift) is never held in memory whole."""

    def __init__(self, split: Any):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: slice) -> Any:
        return self.split.inputs(index)


class ModelSpec:
    """Base class of model plugins: ``build`` returns a :class:`SourceModel` for a dataset."""

    name: ClassVar[str]
    #: dataset input kinds this model applies to
    input_kinds: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(self, **options: Any):
        self.options = options

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        raise NotImplementedError


def state_fingerprint(module: nn.Module) -> str:
    """Hash of a module's weights and buffers."""
    import hashlib

    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def read_state(path: Path, template: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The state dict saved at ``path``; with a ``template``, checked to have its keys and shapes
    (``ValueError`` otherwise), so that a bad file is refused before any weight is copied."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"not a state dict of tensors ({type(state).__name__})")
    if template is not None:
        expected = {k: tuple(v.shape) for k, v in template.state_dict().items()}
        if {k: tuple(v.shape) for k, v in state.items()} != expected:
            raise ValueError(f"its tensors do not match the {type(template).__name__} they are for")
    return state


def load_cached_weights(path: Path, template: nn.Module | None = None) -> dict[str, torch.Tensor] | None:
    """The state dict cached at ``path`` (see :func:`read_state`), or None when there is none to use: the
    file is absent, or unreadable (truncated, corrupt, for another architecture), in which case it is set
    aside with a warning naming it and the caller rebuilds and re-caches the weights."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read_state(path, template)
    except Exception as exc:  # noqa: BLE001 - whatever makes the file unusable, the weights are rebuilt
        set_aside(path, exc)
        return None


def image_preprocess(size: int, channels: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Callable[[Any], torch.Tensor]:
    """uint8 images (N,H,W) or (N,H,W,C) -> normalised float tensor (N,C,size,size)."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def preprocess(images: Any) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images), dtype=torch.float32) / 255.0
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2)
        if x.shape[1] != channels:
            x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return (x - mean_t) / std_t

    return preprocess
