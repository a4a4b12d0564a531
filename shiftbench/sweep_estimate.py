"""Time estimate for a sweep before it starts (``shiftbench run --dry-run``), from measured costs.

- **Cells.** A pending cell is charged the mean ``seconds`` of finished records of the same
  (dataset, method), else of the same method, found in *any* store under ``<cache_dir>/runs`` (a
  cell's seconds include materialising and corrupting its target and the forward passes it was
  the first to need). A method measured nowhere is charged :data:`DEFAULT_CELL_SECONDS`, the mean
  cost of a cell of the cold default run on a 2-core machine (160 s for 1764 cells).
- **Models.** Each (dataset, options, model, seed) group that no store has a record of needs its
  model built (trained, or loaded); it is charged that model's measured build time, which the
  runner writes to ``<cache_dir>/costs/models.json``, else :data:`DEFAULT_MODEL_SECONDS`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from shiftbench.cache import atomic_write_text
from shiftbench.store import RecordStore

#: seconds charged to a cell whose method has no timed record in any store (see the module docstring)
DEFAULT_CELL_SECONDS = 0.1
#: seconds charged to building a model never measured (small_cnn trains in about 8 s on 2 cores)
DEFAULT_MODEL_SECONDS = 8.0


def stores_under(cache_dir: Path | str) -> list[RecordStore]:
    """Every record store of every experiment under ``<cache_dir>/runs``."""
    runs = Path(cache_dir) / "runs"
    return [RecordStore(p) for p in sorted(runs.iterdir()) if (p / "records").is_dir()] if runs.is_dir() else []


class Costs:
    """Measured costs: seconds per cell by (dataset, method) and by method, the groups already run,
    and seconds per model build."""

    def __init__(self, stores: Iterable[RecordStore], cache_dir: Path | str | None = None):
        by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
        by_method: dict[str, list[float]] = defaultdict(list)
        self.groups: set[tuple] = set()
        for store in stores:
            for r in store.records():
                cell = r["cell"]
                self.groups.add(group_of(cell))
                if r["status"] == "ok" and isinstance(r.get("seconds"), (int, float)):
                    by_pair[(cell["dataset"], cell["method"])].append(float(r["seconds"]))
                    by_method[cell["method"]].append(float(r["seconds"]))
        self.by_pair = {k: float(np.mean(v)) for k, v in by_pair.items()}
        self.by_method = {k: float(np.mean(v)) for k, v in by_method.items()}
        self.models = read_model_costs(cache_dir) if cache_dir is not None else {}

    def cell(self, dataset: str, method: str) -> float | None:
        return self.by_pair.get((dataset, method), self.by_method.get(method))


def group_of(cell: dict) -> tuple:
    """(dataset, options, model, seed) of a record's cell: the cells that share one built model."""
    return (cell["dataset"], json.dumps(cell["dataset_options"], sort_keys=True), cell["model"], int(cell["seed"]))


def model_costs_path(cache_dir: Path | str) -> Path:
    return Path(cache_dir) / "costs" / "models.json"


def read_model_costs(cache_dir: Path | str) -> dict[str, float]:
    """Measured seconds per model build, by model name (empty when nothing was measured)."""
    try:
        return {str(k): float(v) for k, v in json.loads(model_costs_path(cache_dir).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def record_model_cost(cache_dir: Path | str, model: str, seconds: float) -> None:
    """Remember the slowest build of ``model`` seen (a cold build, not a cache hit)."""
    costs = read_model_costs(cache_dir)
    if seconds > costs.get(model, 0.0):
        costs[model] = seconds
        try:
            atomic_write_text(model_costs_path(cache_dir), json.dumps(costs, indent=1, sort_keys=True))
        except OSError:
            pass  # an estimate aid: a read-only cache must not fail the run


def group_seconds(store: RecordStore, cells: Iterable, cache_dir: Path | str | None = None) -> tuple[list[float], int]:
    """Estimated seconds of each (dataset, options, model, seed) group of ``cells`` (its cells and, when no
    store has run the group, its model build), and how many cells had no timing to go by."""
    stores = [store, *(s for s in (stores_under(cache_dir) if cache_dir is not None else []) if s.root != store.root)]
    costs = Costs(stores, cache_dir)
    unknown, groups = 0, defaultdict(float)
    for c in cells:
        t = costs.cell(c.dataset, c.method)
        if t is None:
            unknown += 1
            t = DEFAULT_CELL_SECONDS
        groups[(c.dataset, c.dataset_options, c.model, c.seed)] += t
    for group in set(groups) - costs.groups:
        groups[group] += costs.models.get(group[2], DEFAULT_MODEL_SECONDS)
    return list(groups.values()), unknown


def estimate_seconds(store: RecordStore, cells: Iterable, cache_dir: Path | str | None = None) -> tuple[float, int]:
    """Estimated seconds for ``cells`` on one worker and how many of them had no timing to go by."""
    groups, unknown = group_seconds(store, cells, cache_dir)
    return float(sum(groups)), unknown


def makespan(group_seconds: list[float], jobs: int) -> float:
    """Wall time of ``jobs`` workers that each take the next group in ``group_seconds``' order when free (the
    runner hands out whole groups, in the order of the experiment's cells), on a machine with a core per worker."""
    workers = [0.0] * max(1, jobs)
    for t in group_seconds:
        workers[workers.index(min(workers))] += t
    return max(workers)


def describe_estimate(store: RecordStore, cells: list, cache_dir: Path | str | None = None, jobs: int = 1) -> str:
    """One line for the dry run: estimated time (with ``jobs`` workers) and what it is based on."""
    groups, unknown = group_seconds(store, cells, cache_dir)
    total = float(sum(groups))
    basis = "from measured seconds per cell of each method in the stores and measured model builds"
    if unknown:
        basis += f"; {unknown} cells of methods measured nowhere counted at {DEFAULT_CELL_SECONDS:g} s each"
    if jobs > 1:
        wall = makespan(groups, jobs)
        return (f"estimated time: {wall:.0f} s ({wall / 60:.1f} min) with {jobs} workers, {total:.0f} s on one "
                f"({len(groups)} model groups shared out whole), {basis}")
    return f"estimated time: {total:.0f} s ({total / 60:.1f} min) on one worker, {basis}"
