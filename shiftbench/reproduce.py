"""Paper-table reproductions: one module per table in ``shiftbench/reproductions/``, discovered by name.

A reproduction subclasses :class:`Reproduction`, sets ``name``, ``citation``, ``setting`` and
``offline``, and implements ``run(output_dir, quick)`` returning a DataFrame with key columns
followed by ``ours``, ``paper`` and ``delta`` (ours - paper).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd

from shiftbench.plugins import PluginRegistry


class Reproduction:
    """Base class of a reproducible paper table."""

    name: ClassVar[str]
    citation: ClassVar[str]
    #: the exact setting in words (data, sizes, splits, protocol)
    setting: ClassVar[str]
    #: True when it runs on data that ships in packages (then CI runs it)
    offline: ClassVar[bool] = True
    #: for one that is not offline: the command that fetches its data (``shiftbench data download ...``)
    data_command: ClassVar[str | None] = None

    def run(self, output_dir: Path, quick: bool = False) -> pd.DataFrame:
        """Compute the table (``quick``: a reduced setting for tests) and return ours/paper/delta rows."""
        raise NotImplementedError


registry = PluginRegistry("reproduction", "shiftbench.reproductions", "shiftbench.reproductions", Reproduction)
