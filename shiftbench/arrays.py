"""Validation and conversion of arrays at the boundary between shiftbench and plugins.

Public functions take numpy arrays or torch tensors; these helpers turn them into numpy
and raise :class:`InvalidArrayError` with a message that names the argument and the problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftbench.errors import InvalidArrayError


def to_numpy(a: Any, name: str = "array") -> np.ndarray:
    """Return ``a`` as a numpy array (torch tensors are detached and moved to CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InvalidArrayError(f"{name}: cannot convert {type(a).__name__} to an array ({exc})") from exc


def check_matrix(a: Any, name: str, n_rows: int | None = None, n_cols: int | None = None,
                 min_rows: int = 0) -> np.ndarray:
    """A finite 2-D float array, optionally with a required number of rows/columns or at least ``min_rows`` rows."""
    a = to_numpy(a, name)
    if a.ndim != 2:
        raise InvalidArrayError(f"{name} must be 2-D (n_samples, n_columns); got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise InvalidArrayError(f"{name} has {a.shape[0]} rows but at least {min_rows} are needed")
    if n_rows is not None and a.shape[0] != n_rows:
        raise InvalidArrayError(f"{name} has {a.shape[0]} rows but {n_rows} were expected (one per sample)")
    if n_cols is not None and a.shape[1] != n_cols:
        raise InvalidArrayError(f"{name} has {a.shape[1]} columns but {n_cols} were expected")
    if not np.issubdtype(a.dtype, np.number):
        raise InvalidArrayError(f"{name} must be numeric; got dtype {a.dtype}")
    a = a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise InvalidArrayError(f"{name} contains NaN or infinite values ({int(bad.sum())} entries, first in row {row})")
    return a


def check_probs(p: Any, name: str = "probs", atol: float = 1e-3, min_rows: int = 0) -> np.ndarray:
    """A (N, K) matrix of probabilities (at least ``min_rows`` rows): non-negative rows summing to one."""
    p = check_matrix(p, name, min_rows=min_rows)
    if (p < 0).any() or (p > 1 + atol).any():
        raise InvalidArrayError(f"{name} must hold probabilities in [0, 1]; did you pass logits? Apply softmax first")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=atol):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise InvalidArrayError(f"rows of {name} must sum to 1; row {row} sums to {sums[row]:.4f}")
    return p


def check_labels(y: Any, n_classes: int | None = None, name: str = "labels", n: int | None = None) -> np.ndarray:
    """A 1-D integer label vector with values in ``[0, n_classes)``."""
    y = to_numpy(y, name)
    if y.ndim != 1:
        raise InvalidArrayError(f"{name} must be 1-D; got shape {y.shape}")
    if n is not None and len(y) != n:
        raise InvalidArrayError(f"{name} has {len(y)} entries but {n} samples were given")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise InvalidArrayError(f"{name} must be integer class indices; got non-integer values")
    elif y.dtype.kind not in "iub":
        raise InvalidArrayError(f"{name} must be integer class indices; got dtype {y.dtype}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise InvalidArrayError(f"{name} must be non-negative class indices; found {y.min()}")
    if n_classes is not None and len(y) and y.max() >= n_classes:
        raise InvalidArrayError(f"{name} has class {y.max()} but there are only {n_classes} classes (0..{n_classes - 1})")
    return y


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
