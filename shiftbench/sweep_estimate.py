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


def estimate_seconds(store: RecordStore, cells: Iterable, cache_dir: Path | str | None = None) -> tuple[float, int]:
    """Estimated seconds for ``cells`` and how many of them had no timing to go by."""
    stores = [store, *(s for s in (stores_under(cache_dir) if cache_dir is not None else []) if s.root != store.root)]
    costs = Costs(stores, cache_dir)
    total, unknown, groups = 0.0, 0, set()
    for c in cells:
        t = costs.cell(c.dataset, c.method)
        if t is None:
            unknown += 1
            t = DEFAULT_CELL_SECONDS
        total += t
        groups.add((c.dataset, c.dataset_options, c.model, c.seed))
    for _, _, model, _ in groups - costs.groups:
        total += costs.models.get(model, DEFAULT_MODEL_SECONDS)
    return total, unknown


def describe_estimate(store: RecordStore, cells: list, cache_dir: Path | str | None = None) -> str:
    """One line for the dry run: estimated time and what it is based on."""
    total, unknown = estimate_seconds(store, cells, cache_dir)
    basis = "from measured seconds per cell of each method in the stores and measured model builds"
    if unknown:
        basis += f"; {unknown} cells of methods measured nowhere counted at {DEFAULT_CELL_SECONDS:g} s each"
    return f"estimated time: {total:.0f} s ({total / 60:.1f} min) on one worker, {basis}"
