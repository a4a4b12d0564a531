"""Method plugins, one module per method (``shiftbench.methods.<name>``), discovered by name.

``load(name, **hyperparameters)`` instantiates a plugin; installed packages add plugins through
the ``shiftbench.methods`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from shiftbench.families import Method
from shiftbench.plugins import PluginRegistry

registry = PluginRegistry("method", __name__, "shiftbench.methods", Method)


def load(name: str, **hyperparameters: Any) -> Method:
    """An instance of method plugin ``name`` with the given hyperparameters."""
    cls = registry.get(name)
    valid = cls.default_hyperparameters()
    unknown = set(hyperparameters) - set(valid)
    if unknown:
        raise TypeError(f"method {name!r} has no hyperparameters {sorted(unknown)}; its hyperparameters: {sorted(valid) or '(none)'}")
    return cls(**hyperparameters)


def names() -> list[str]:
    """Every registered method name."""
    return registry.names()
