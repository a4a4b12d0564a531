"""Dataset adapters, one module per dataset (``shiftbench.datasets.<name>``), discovered by name.

``load(name, **options)`` returns a :class:`shiftbench.dataset.Dataset`; installed packages add
adapters through the ``shiftbench.datasets`` entry-point group. An adapter may claim a family of
names (:meth:`shiftbench.plugins.PluginRegistry.resolve`): any image dataset ``<base>`` is also
available as ``<base>-c``, corrupted on the fly (:mod:`shiftbench.datasets.corrupted`), unless a
pre-generated adapter has that name (``cifar10-c``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from shiftbench.dataset import Dataset, Grouper, Split, UnlabelledSplit
from shiftbench.plugins import PluginRegistry

registry = PluginRegistry("dataset", __name__, "shiftbench.datasets", Dataset)

__all__ = ["Dataset", "Grouper", "Split", "UnlabelledSplit", "adapter_class", "load", "names", "registry"]


def load(name: str, **options: Any) -> Dataset:
    """Load the dataset adapter ``name`` (e.g. ``"digits"``, ``"wilds/camelyon17"``) with its options."""
    return _load_cached(name, json.dumps(options, sort_keys=True, default=str))


def adapter_class(name: str) -> type[Dataset]:
    """The adapter class behind dataset ``name`` (the class that claims it, for a name of a family)."""
    return registry.resolve(name)[0]


@lru_cache(maxsize=8)
def _load_cached(name: str, options_json: str) -> Dataset:
    cls, implied = registry.resolve(name)
    options = {**implied, **json.loads(options_json)}
    return cls(**options)  # an unknown option is refused here, before any data is loaded


def names() -> list[str]:
    """Every registered dataset name."""
    return registry.names()
