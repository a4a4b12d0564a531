"""``<base>-c``: any image dataset with one of its splits corrupted on the fly, ImageNet-C style.

``shiftbench.datasets.load("digits-c")`` (or ``load("corrupted", base="digits")``) keeps the
base dataset's splits and adds one split per corruption x severity, named ``"<corruption>/<severity>"``
like the pre-generated CIFAR-10-C / ImageNet-C adapters. The adapter claims every name ``<base>-c``
of a registered dataset that no adapter is registered as (:meth:`Corrupted.claims`). Corrupted splits
are computed the first time they are used by :func:`~shiftbench.corruptions.splits.corrupted_split`
(as a scenario's ``corruption`` option corrupts its target) and cached on disk (``SHIFTBENCH_CACHE_DIR``),
so only the ones a run touches are ever generated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Callable, Sequence

import numpy as np

from shiftbench.cache import ArrayCache, stable_hash
from shiftbench.dataset import Dataset, Split
from shiftbench.errors import ShiftbenchError, UnknownNameError

#: the image dataset corrupted when no ``base`` is given
DEFAULT_BASE = "digits"


class LazySplits(Mapping):
    """Splits that are built on first access (by ``build(name)``) and kept."""

    def __init__(self, ready: dict[str, Split], pending: dict[str, Callable[[], Split]]):
        self._ready, self._pending = dict(ready), dict(pending)

    def __getitem__(self, name: str) -> Split:
        if name not in self._ready:
            self._ready[name] = self._pending.pop(name)()
        return self._ready[name]

    def __iter__(self) -> Iterator[str]:
        yield from [*self._ready, *self._pending]  # a snapshot: building a split while iterating moves it

    def __len__(self) -> int:
        return len(self._ready) + len(self._pending)


class Corrupted(Dataset):
    """Any image dataset ``<base>-c``: its ``split`` under every corruption x severity, on the fly and cached."""

    name = "corrupted"
    input_kind = "image"

    def __init__(self, base: str = DEFAULT_BASE, split: str = "id_test", corruptions: Sequence[str] | None = None,
                 severities: Sequence[int] = (1, 2, 3, 4, 5), preset: str = "imagenet",
                 base_options: dict[str, Any] | None = None, cache_dir: str | None = None):
        from shiftbench import datasets
        from shiftbench.corruptions import CORRUPTIONS, code_fingerprint
        from shiftbench.corruptions.splits import corrupted_split

        super().__init__()
        source = datasets.load(base, **(base_options or {}))
        if source.input_kind != "image":
            raise ShiftbenchError(f"{base}-c needs an image dataset; {base!r} has {source.input_kind!r} inputs")
        names = list(corruptions) if corruptions else list(CORRUPTIONS)
        unknown = sorted(set(names) - set(CORRUPTIONS))
        if unknown:
            raise ShiftbenchError(f"unknown corruptions {unknown}; valid corruptions: {', '.join(CORRUPTIONS)}")
        clean = source.split(split)
        cache = ArrayCache(cache_dir)
        pending = {f"{c}/{s}": (lambda c=c, s=s: corrupted_split(clean, c, int(s), cache, preset))
                   for c in names for s in severities}
        self.n_classes, self.grouper, self.class_names = source.n_classes, source.grouper, source.class_names
        self.visible_metadata = (*source.visible_metadata, "corruption", "severity")
        self.source = source
        self.splits = LazySplits(source.splits, pending)
        self._fingerprint = stable_hash({"base": source.fingerprint, "split": split, "corrupted": sorted(pending),
                                         "preset": preset, "code": code_fingerprint()})

    @classmethod
    def claims(cls, name: str) -> dict[str, Any] | None:
        """``<base>-c`` of a registered dataset ``<base>`` is this adapter over ``base``; other names are not."""
        from shiftbench import datasets

        if not name.endswith("-c"):
            return None
        try:
            datasets.registry.get(name[:-2])
        except UnknownNameError:
            return None
        return {"base": name[:-2]}

    @classmethod
    def options_for_seed(cls, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """The base dataset's seed option (inside ``base_options``) follows the cell seed."""
        from shiftbench import datasets

        base = datasets.adapter_class(options.get("base", DEFAULT_BASE))
        return {**options, "base_options": base.options_for_seed(options.get("base_options") or {}, seed)}

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def example_ids(self, key: str) -> np.ndarray:
        """The base dataset's ids on its own splits; input-byte hashes on the corrupted ones."""
        return self.source.example_ids(key) if key in self.source.splits else super().example_ids(key)

    def disjoint_pools(self) -> list[list[str]]:
        """The base dataset's pools: a corrupted split holds the same examples as the split it corrupts."""
        return self.source.disjoint_pools()
