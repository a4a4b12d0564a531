"""Model plugins, one module per model family (``shiftbench.models.<name>``), discovered by name.

A model plugin subclasses :class:`shiftbench.model.ModelSpec`; ``build_model(name, dataset, seed, ...)``
trains (or loads) and caches its :class:`~shiftbench.model.SourceModel`. Installed packages add models
through the ``shiftbench.models`` entry-point group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shiftbench.model import ModelSpec, SourceModel
from shiftbench.plugins import PluginRegistry

registry = PluginRegistry("model", __name__, "shiftbench.models", ModelSpec)


def load(name: str, **options: Any) -> ModelSpec:
    """An instance of model plugin ``name`` with the given options."""
    return registry.get(name)(**options)


def build_model(name: str, dataset: Any, seed: int, cache_root: Path, device: str = "cpu", **options: Any) -> SourceModel:
    """Build (train or load, cached) the model plugin ``name`` for ``dataset``."""
    return load(name, **options).build(dataset, seed, Path(cache_root), device)


def names() -> list[str]:
    """Every registered model name."""
    return registry.names()
