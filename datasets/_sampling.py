"""Seeded, stratified sampling shared by the dataset adapters: split a labelled pool into parts that
keep its class mix (``digits``, ``nycflights``, ``biased_sampling``, ``skada_shift`` ...)."""

from __future__ import annotations

import numpy as np


def stratified_parts(y: np.ndarray, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Split indices into parts of the given sizes, each with (nearly) the class mix of ``y`` and in a
    seeded random order (never the pool's order: MNIST 5k, for one, is sorted by class)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    # rank each example within its class (j + u) / n_c: sorting by rank interleaves the classes,
    # so every prefix of the order is stratified
    ranks = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        members = order[y[order] == c]
        ranks[members] = (np.arange(len(members)) + rng.random()) / len(members)
    order = order[np.argsort(ranks[order], kind="stable")]
    bounds = np.cumsum([0, *sizes])
    return [rng.permutation(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def labelled_parts(key_sizes: dict[str, float], idx: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Stratified, seeded parts of the pool ``idx`` (indices into ``y``) with the given fractions; the last
    part takes what the others' rounding down leaves."""
    fractions = list(key_sizes.values())
    sizes = [int(f * len(idx)) for f in fractions[:-1]]
    sizes.append(len(idx) - sum(sizes))
    parts = stratified_parts(y[idx], sizes, seed)
    return {key: idx[p] for key, p in zip(key_sizes, parts)}
