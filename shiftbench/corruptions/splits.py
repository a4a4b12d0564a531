"""Corrupted splits: a split's images under one corruption x severity, cached on disk.

The one path by which the harness corrupts data: a scenario's ``corruption`` option
(:meth:`shiftbench.scenarios.Scenario.target_split`) and the ``<base>-c`` datasets
(:mod:`shiftbench.datasets.corrupted`) both call :func:`corrupted_split`.
"""

from __future__ import annotations

import numpy as np

from shiftbench.cache import ArrayCache, stable_hash
from shiftbench.corruptions import code_fingerprint, corrupt, pad_to_min_size
from shiftbench.dataset import Split


def corrupted_split(split: Split, corruption: str, severity: int, cache: ArrayCache, preset: str = "imagenet") -> Split:
    """``split`` with every image corrupted (seed 0, so the domain is a fixed dataset); cached on disk.

    Images smaller than the corruptions' 32x32 minimum (MNIST's 28x28) are zero-padded to 32x32,
    corrupted, and cropped back, so the split keeps its image size and models need no change."""

    def compute() -> dict[str, np.ndarray]:
        padded, (rows, cols) = pad_to_min_size(np.asarray(split.inputs()))
        return {"x": np.ascontiguousarray(corrupt(padded, corruption, severity, preset=preset)[:, rows, cols])}

    key = {"split": split.fingerprint, "corruption": corruption, "severity": severity, "code": code_fingerprint()}
    if preset != "imagenet":  # keeps the keys of existing imagenet-preset caches
        key["preset"] = preset
    arrays = cache.get_or_compute("corrupted", key, compute)
    meta = split.metadata.assign(corruption=corruption, severity=severity)
    return Split(split.name, split.y, meta, x=arrays["x"], fingerprint=stable_hash(key))
