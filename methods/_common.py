"""Helpers shared by several method plugins (not a plugin: the registry skips ``_`` modules)."""

from __future__ import annotations

import numpy as np


def class_columns(probs: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over ``classes`` (an estimator's ``classes_``) as (N, n_classes) columns, zeros elsewhere."""
    out = np.zeros((len(probs), n_classes))
    out[:, np.asarray(classes, dtype=np.int64)] = probs
    return out


def standardise(X_source: np.ndarray, X_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale both samples with the statistics of their union (as the DW-GCS paper normalises datasets)."""
    X = np.vstack([X_source, X_target]).astype(np.float64)
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    return (X_source - mean) / std, (X_target - mean) / std


def source_subset(n: int, max_n: int | None, seed: int) -> np.ndarray:
    """A seeded random subset of at most ``max_n`` source indices (all, in order, if ``max_n`` is None)."""
    if max_n is None or n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_n, replace=False))
