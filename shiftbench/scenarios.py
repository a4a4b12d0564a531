"""Shift scenarios: which target data arrives, transformed how, in what order and batch size.

A :class:`Scenario` names a target split of a dataset, optionally corrupted (a domain is a
corruption name x severity) and/or label-shifted (target class prior drawn from a Dirichlet),
and how it is streamed: batch size and order (``iid``; ``class_sorted``; ``dirichlet``, the
LAME paper's non-i.i.d. label mixture). Scenario specs in configs may hold lists, which expand
to the cross product (:func:`expand_scenarios`).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from shiftbench.cache import ArrayCache, stable_hash
from shiftbench.dataset import Dataset, Split
from shiftbench.errors import ShiftbenchError

ORDERS = ("iid", "class_sorted", "dirichlet")


@dataclass(frozen=True)
class Scenario:
    """One target distribution and the way it is streamed to a method."""

    target: str = "test"
    corruption: str | None = None
    severity: int | None = None
    label_shift: float | None = None
    order: str = "iid"
    order_alpha: float = 0.1
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ShiftbenchError(f"unknown stream order {self.order!r}; valid orders: {', '.join(ORDERS)}")
        if (self.corruption is None) != (self.severity is None):
            raise ShiftbenchError("a corrupted scenario needs both corruption and severity (1..5)")
        if self.batch_size < 1:
            raise ShiftbenchError(f"batch_size must be >= 1; got {self.batch_size}")

    @property
    def domain(self) -> str:
        """Where the data comes from: the split, or split/corruption/severity."""
        if self.corruption:
            return f"{self.target}-c/{self.corruption}/{self.severity}"
        return self.target

    @property
    def name(self) -> str:
        parts = [self.domain]
        if self.label_shift is not None:
            parts.append(f"labelshift{self.label_shift:g}")
        if self.order != "iid":
            parts.append(self.order if self.order != "dirichlet" else f"dirichlet{self.order_alpha:g}")
        parts.append(f"bs{self.batch_size}")
        return ":".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def target_split(self, dataset: Dataset, cache: ArrayCache, seed: int) -> Split:
        """The labelled target split of this scenario (corrupted and label-shift resampled); cached."""
        split = dataset.split(self.target)
        if self.corruption is not None:
            split = corrupted_split(split, self.corruption, self.severity, cache)
        if self.label_shift is not None:
            idx = label_shift_indices(split.y, dataset.n_classes, self.label_shift, seed)
            split = split.subset(idx, tag=f"labelshift{self.label_shift}-{seed}")
        return split

    def batches(self, y: np.ndarray, seed: int) -> list[np.ndarray]:
        """Index batches in arrival order; ``y`` is used only to build non-i.i.d. orders."""
        rng = np.random.default_rng([seed, 17])
        if self.order == "iid":
            order = rng.permutation(len(y))
        elif self.order == "class_sorted":
            order = np.lexsort((rng.random(len(y)), y))
        else:
            order = dirichlet_order(y, self.order_alpha, self.batch_size, rng)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]


def corrupted_split(split: Split, corruption: str, severity: int, cache: ArrayCache) -> Split:
    """``split`` with every image corrupted (seed 0, so the domain is a fixed dataset); cached on disk."""
    from shiftbench.datasets.corruptions import corrupt
    from shiftbench.cache import code_version

    key = {"split": split.fingerprint, "corruption": corruption, "severity": severity, "code": code_version(corrupt)}
    arrays = cache.get_or_compute("corrupted", key, lambda: {"x": corrupt(np.asarray(split.inputs()), corruption, severity)})
    meta = split.metadata.assign(corruption=corruption, severity=severity)
    return Split(split.name, split.y, meta, x=arrays["x"], fingerprint=stable_hash(key))


def label_shift_indices(y: np.ndarray, n_classes: int, alpha: float, seed: int) -> np.ndarray:
    """Resample ``len(y)`` indices (with replacement) so the class prior is a Dirichlet(alpha) draw."""
    rng = np.random.default_rng([seed, 29])
    present = np.unique(y)
    prior = np.zeros(n_classes)
    prior[present] = rng.dirichlet(np.full(len(present), alpha))
    counts = rng.multinomial(len(y), prior)
    idx = [rng.choice(np.flatnonzero(y == c), size=k, replace=True) for c, k in enumerate(counts) if k]
    return rng.permutation(np.concatenate(idx))


def dirichlet_order(y: np.ndarray, alpha: float, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Non-i.i.d. order of the LAME paper: each batch's class mix is drawn from Dirichlet(alpha),
    until every example has been used once (small alpha -> few classes per batch)."""
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)}
    order: list[int] = []
    while pools:
        classes = list(pools)
        mix = rng.dirichlet(np.full(len(classes), alpha))
        counts = rng.multinomial(batch_size, mix)
        for c, k in zip(classes, counts):
            take, pools[c] = pools[c][:k], pools[c][k:]
            order.extend(take)
            if not pools[c]:
                del pools[c]
    return np.asarray(order, dtype=np.int64)


def expand_scenarios(specs: Iterable[dict[str, Any]], defaults: dict[str, Any] | None = None) -> list[Scenario]:
    """Expand scenario specs whose values may be lists into the cross product of scenarios."""
    out: list[Scenario] = []
    for spec in specs:
        spec = {**(defaults or {}), **dict(spec)}
        unknown = set(spec) - set(Scenario.__dataclass_fields__)
        if unknown:
            raise ShiftbenchError(f"unknown scenario keys {sorted(unknown)}; valid keys: {sorted(Scenario.__dataclass_fields__)}")
        keys = list(spec)
        values = [v if isinstance(v, (list, tuple)) else [v] for v in spec.values()]
        for combo in itertools.product(*values):
            s = Scenario(**dict(zip(keys, combo)))
            if s not in out:
                out.append(s)
    return out
