"""Expand an experiment config into cells and compute the cells whose results are missing.

A cell is (dataset, scenario, model, method, hyperparameters, seed). Its key hashes those and
the method's code version, so a finished cell is never recomputed and a changed plugin is.
Cells sharing (dataset, model, seed) share one loaded dataset, one trained model and the cached
forward passes. A plugin that raises marks its cell ``failed`` (traceback kept) and the run goes on.
"""

from __future__ import annotations

import itertools
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tqdm.auto import tqdm

from shiftbench import datasets as dataset_registry
from shiftbench import methods as method_registry
from shiftbench import grids
from shiftbench.cache import ArrayCache, code_version, stable_hash
from shiftbench.dataset import check_seed_option, load_for_seed
from shiftbench.families import Task, Truth
from shiftbench.models import build_model
from shiftbench.models import registry as model_registry
from shiftbench.provenance import provenance
from shiftbench.scenarios import Scenario, expand_scenarios
from shiftbench.seeding import seed_globals
from shiftbench.store import RecordStore


@dataclass(frozen=True)
class Cell:
    """One unit of work and one result record."""

    dataset: str
    dataset_options: str  # canonical JSON
    scenario: Scenario
    model: str
    method: str
    hparams: str  # canonical JSON
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "dataset_options": json.loads(self.dataset_options),
                "scenario": self.scenario.as_dict(), "model": self.model, "method": self.method,
                "hparams": json.loads(self.hparams), "seed": self.seed}

    @property
    def key(self) -> str:
        # the code of the method and of the model (whose weights it decides) is part of the cell: a
        # changed plugin or a changed training recipe recomputes the cells that depend on it
        codes = {"method_code": code_version(method_registry.registry.get(self.method)),
                 "model_code": code_version(model_registry.get(self.model))}
        return stable_hash({**self.as_dict(), **codes}, length=20)


@dataclass
class RunSettings:
    """Where things go and how they run."""

    store_dir: Path
    cache_dir: Path
    device: str = "cpu"
    progress: bool = True


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def grid_points(method: str, overrides: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Hyperparameter settings of ``method``: its ``grid`` with config overrides (``shiftbench.grids``)."""
    return grids.grid_points(method_registry.registry.get(method), overrides)


def expand_cells(cfg: dict[str, Any]) -> list[Cell]:
    """All cells of an experiment config (a plain dict, see ``configs/config.yaml``)."""
    ds = cfg["dataset"]
    dataset_registry.registry.get(ds["name"])  # unknown names fail here, listing valid ones
    check_seed_option(ds["name"], ds.get("options") or {})  # the run's seed drives a dataset's seed option
    options = json.dumps(ds.get("options") or {}, sort_keys=True)
    scenarios = expand_scenarios(ds.get("scenarios") or [{}], defaults=ds.get("stream") or {})
    models = as_list(cfg.get("model")) or as_list(ds.get("models"))
    for m in models:
        model_registry.get(m)
    cells = []
    for model, method, seed, scenario in itertools.product(models, as_list(cfg["method"]), as_list(cfg["seed"]), scenarios):
        for hp in grid_points(method, (cfg.get("grid") or {}).get(method)):
            cells.append(Cell(ds["name"], options, scenario, model, method, json.dumps(hp, sort_keys=True), int(seed)))
    return cells


def scenario_group(s: Scenario) -> str:
    """Column a scenario is averaged into in leaderboards: corruptions together, label shifts by alpha."""
    if s.corruption is not None:
        base = f"{s.target}-c"
    else:
        base = s.target
    if s.label_shift is not None:
        base += f"+labelshift{s.label_shift:g}"
    if s.long_tail is not None:
        base += f"+longtail-{s.long_tail}{s.imbalance_ratio:g}"
    if s.order != "iid":
        base += f"+{s.order}"
    return base


class Runner:
    """Computes the missing cells of an experiment and writes one record per cell."""

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self.store = RecordStore(settings.store_dir)
        self.cache = ArrayCache(settings.cache_dir)

    def pending(self, cells: Iterable[Cell]) -> list[Cell]:
        return [c for c in cells if not self.store.is_done(c.key)]

    def run(self, cells: list[Cell]) -> dict[str, int]:
        """Run every cell whose record is missing or failed; return counts by status and timings
        (forward passes over whole splits, their seconds, seconds spent building/training models)."""
        todo = self.pending(cells)
        counts = {"cached": len(cells) - len(todo), "ok": 0, "failed": 0, "not_applicable": 0,
                  "forward_passes": 0, "forward_seconds": 0.0, "model_seconds": 0.0}
        groups: dict[tuple, list[Cell]] = {}
        for c in todo:
            groups.setdefault((c.dataset, c.dataset_options, c.model, c.seed), []).append(c)
        with tqdm(total=len(todo), desc="cells", unit="cell", disable=None if self.settings.progress else True) as bar:
            for (name, options, model_name, seed), group in groups.items():
                try:
                    dataset = load_for_seed(name, json.loads(options), seed)
                    started = time.perf_counter()
                    model = build_model(model_name, dataset, seed, self.settings.cache_dir, self.settings.device)
                    counts["model_seconds"] += time.perf_counter() - started
                except Exception:
                    tb = traceback.format_exc()
                    for cell in group:
                        self._write(cell, "failed", error=tb)
                        counts["failed"] += 1
                        bar.update(1)
                    continue
                for cell in group:
                    bar.set_postfix_str(f"{cell.method} on {cell.scenario.name}", refresh=False)
                    status = self._run_cell(cell, dataset, model)
                    counts[status] += 1
                    bar.update(1)
                counts["forward_passes"] += model.forward_passes
                counts["forward_seconds"] += model.forward_seconds
        return counts

    def _run_cell(self, cell: Cell, dataset, model) -> str:
        start = time.perf_counter()
        extra = {"data_hash": dataset.fingerprint, "model_hash": model.fingerprint, "model_weights": model.pretrained}
        try:
            method = method_registry.load(cell.method, **json.loads(cell.hparams))
            reason = method.not_applicable(model, dataset.facts())
            if reason:
                self._write(cell, "not_applicable", error=reason, **extra)
                return "not_applicable"
            split = cell.scenario.target_split(dataset, self.cache, cell.seed)
            task = Task(dataset.n_classes, dataset.label_free(split), cell.scenario.batches(split.y, cell.seed), cell.seed,
                        model, self.cache, {k: dataset.splits[k] for k in ("train", "id_val") if k in dataset.splits})
            seed_globals(cell.seed)
            output = method.run(task)
            metrics = method.evaluate(output, Truth(dataset, split), task)
        except Exception:
            self._write(cell, "failed", error=traceback.format_exc(), seconds=time.perf_counter() - start, **extra)
            return "failed"
        self._write(cell, "ok", metrics=metrics, family=method.family, seconds=time.perf_counter() - start, **extra)
        return "ok"

    def _write(self, cell: Cell, status: str, metrics: dict | None = None, error: str | None = None, **extra: Any) -> None:
        record = {"key": cell.key, "status": status, "cell": cell.as_dict(), "metrics": metrics or {},
                  "scenario_name": cell.scenario.name, "scenario_group": scenario_group(cell.scenario),
                  "provenance": provenance(), "error": error, "finished": time.time(), **extra}
        if "family" not in record:
            record["family"] = method_registry.registry.get(cell.method).family
        self.store.write(record)
