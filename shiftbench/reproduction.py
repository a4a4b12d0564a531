"""Paper-table reproductions: what a reproduction is. The plugins live in the ``reproductions/`` room,
one module per table (``shiftbench.reproductions.<name>``), discovered by :mod:`shiftbench.reproductions`.

A reproduction subclasses :class:`Reproduction`, sets ``name``, ``citation``, ``setting`` and
``offline``, and implements ``run(quick)`` returning a :class:`Reproduced`: the table (key columns
followed by ``ours``, ``paper`` and ``delta`` = ours - paper), the records it was computed from and
markdown notes. ``shiftbench reproduce NAME`` writes them to ``<output>/<name>/`` (see
:mod:`shiftbench.reproduction_report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd


@dataclass(frozen=True)
class Reproduced:
    """What a reproduction computed."""

    #: key columns, then ``ours``, ``paper`` and ``delta`` (ours - paper; empty where nothing is published)
    table: pd.DataFrame
    #: the rows the table aggregates (e.g. one per outer split and scorer); written as records.csv
    records: pd.DataFrame
    #: markdown shown after the table: further tables, what was left out and why
    notes: str = ""


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
    #: packages besides shiftbench's own whose versions the records carry (e.g. the reference library)
    packages: ClassVar[tuple[str, ...]] = ()

    def run(self, quick: bool = False) -> Reproduced:
        """Compute the table (``quick``: a reduced setting for tests), its records and notes."""
        raise NotImplementedError
