"""Chunks of a monitored stream: fixed-size slices in arrival order, or one chunk per period (e.g. month).

Scenarios cut a target into calendar chunks with :func:`chunk_by_period` (``chunk_by``); performance
estimators (CBPE) cut their inputs with :func:`make_chunks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError


@dataclass(frozen=True)
class Chunks:
    """Assignment of rows to chunks: ``ids[i]`` is row i's chunk, ``keys`` names the chunks in order."""

    ids: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.keys)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.ids, minlength=len(self.keys))

    def members(self) -> list[np.ndarray]:
        """Row indices of each chunk, in row order."""
        order = np.argsort(self.ids, kind="stable")
        return np.split(order, np.cumsum(self.sizes())[:-1])

    def frame(self) -> pd.DataFrame:
        """One row per chunk: index, key and size (the left columns of an estimate table)."""
        return pd.DataFrame({"chunk": np.arange(len(self.keys)), "key": self.keys, "n": self.sizes()})


def chunk_by_size(n: int, chunk_size: int) -> Chunks:
    """Consecutive chunks of ``chunk_size`` rows; a shorter last chunk is kept (NannyML ``incomplete='keep'``)."""
    if chunk_size < 1:
        raise ShiftbenchError(f"chunk_size must be a positive number of rows; got {chunk_size}")
    ids = np.arange(n) // chunk_size
    starts = np.arange(0, n, chunk_size)
    ends = np.minimum(starts + chunk_size, n) - 1
    return Chunks(ids, [f"[{a}:{b}]" for a, b in zip(starts, ends)])


def chunk_by_period(periods: Any) -> Chunks:
    """One chunk per distinct value of ``periods`` (e.g. ``timestamps.dt.to_period("M")``), in sorted order."""
    values = pd.Series(np.asarray(periods) if not isinstance(periods, pd.Series) else periods.to_numpy())
    if values.isna().any():
        raise ShiftbenchError(f"periods contain {int(values.isna().sum())} missing values; every row needs a period")
    codes, uniques = pd.factorize(values, sort=True)
    return Chunks(codes.astype(np.int64), [str(u) for u in uniques])


def make_chunks(n: int, chunk_size: int | None = None, periods: Any = None) -> Chunks:
    """Chunks by ``periods`` if given, else by ``chunk_size``, else one chunk holding everything."""
    if periods is not None and chunk_size is not None:
        raise ShiftbenchError("give either chunk_size or periods, not both")
    if periods is not None:
        if len(periods) != n:
            raise ShiftbenchError(f"periods has {len(periods)} entries but there are {n} rows")
        return chunk_by_period(periods)
    return chunk_by_size(n, chunk_size or max(n, 1))
