"""Paper-table reproductions, one module per table (``shiftbench.reproductions.<name>``), discovered by name.

A reproduction subclasses :class:`shiftbench.reproduction.Reproduction`; ``shiftbench reproduce NAME``
runs it (:mod:`shiftbench.reproduction_report`). Installed packages add reproductions through the
``shiftbench.reproductions`` entry-point group.
"""

from __future__ import annotations

from shiftbench.plugins import PluginRegistry
from shiftbench.reproduction import Reproduction

registry = PluginRegistry("reproduction", __name__, "shiftbench.reproductions", Reproduction)


def load(name: str) -> Reproduction:
    """An instance of reproduction plugin ``name``."""
    return registry.get(name)()


def names() -> list[str]:
    """Every registered reproduction name."""
    return registry.names()
