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
    """An instance of method plugin ``name`` with the given hyperparameters (the plugin's declaration
    validates them: an unknown name or a bad value raises a one-line ShiftbenchError)."""
    return registry.get(name)(**hyperparameters)


def names() -> list[str]:
    """Every registered method name."""
    return registry.names()
