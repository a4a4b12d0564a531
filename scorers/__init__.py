"""Scorer plugins, one module per scorer (``shiftbench.scorers.<name>``), discovered by name.

``load(name, **options)`` instantiates a scorer; installed packages add scorers through the
``shiftbench.scorers`` entry-point group. What a scorer is: :class:`shiftbench.scoring.Scorer`.
"""

from __future__ import annotations

from typing import Any

from shiftbench.errors import ShiftbenchError
from shiftbench.plugins import PluginRegistry
from shiftbench.scoring import Scorer

registry = PluginRegistry("scorer", __name__, "shiftbench.scorers", Scorer)


def load(name: str, **options: Any) -> Scorer:
    """An instance of scorer plugin ``name`` with the given options."""
    cls = registry.get(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ShiftbenchError(f"scorer {name!r} does not take options {sorted(options)}: {exc}") from exc


def names() -> list[str]:
    """Every registered scorer name."""
    return registry.names()


def default_scorers() -> dict[str, Scorer]:
    """Every registered scorer with its default options, by name; oracles last."""
    plugins = registry.scan_all()
    order = sorted(plugins, key=lambda name: plugins[name].needs_target_labels)
    return {name: plugins[name]() for name in order}
