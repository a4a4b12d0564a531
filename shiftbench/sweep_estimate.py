"""Time estimate for a sweep before it starts (``shiftbench run --dry-run``).

Each pending cell is charged the mean ``seconds`` of the finished records of the same method
(and dataset) already in the store; a method with no timing yet is charged
:data:`DEFAULT_CELL_SECONDS`. Model training and forward passes are paid once per
(dataset, model, seed) and are not in a cell's ``seconds``, so a cold run takes longer.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from shiftbench.store import RecordStore

#: seconds charged to a cell whose method has no finished record with a timing in the store
DEFAULT_CELL_SECONDS = 5.0


def method_timings(store: RecordStore) -> dict[tuple[str, str], float]:
    """Mean seconds per finished cell, by (dataset, method)."""
    seconds: dict[tuple[str, str], list[float]] = {}
    for r in store.records():
        if r.get("status") == "ok" and isinstance(r.get("seconds"), (int, float)):
            seconds.setdefault((r["cell"]["dataset"], r["cell"]["method"]), []).append(float(r["seconds"]))
    return {k: float(np.mean(v)) for k, v in seconds.items()}


def estimate_seconds(store: RecordStore, cells: Iterable) -> tuple[float, int]:
    """Estimated seconds for ``cells`` and how many of them had no timing to go by."""
    timings = method_timings(store)
    total, unknown = 0.0, 0
    for c in cells:
        t = timings.get((c.dataset, c.method))
        if t is None:
            unknown += 1
            t = DEFAULT_CELL_SECONDS
        total += t
    return total, unknown


def describe_estimate(store: RecordStore, cells: list) -> str:
    """One line for the dry run: estimated time and what it is based on."""
    total, unknown = estimate_seconds(store, cells)
    basis = "from the mean time per cell of each method's stored records"
    if unknown:
        basis += f"; {unknown} cells of methods without records counted at {DEFAULT_CELL_SECONDS:g} s each"
    return f"estimated time: {total:.0f} s ({total / 60:.1f} min) on one worker, {basis}"
