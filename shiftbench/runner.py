"""Expand an experiment config into cells and compute the cells whose results are missing.

A cell is (dataset, scenario, model, method, hyperparameters, seed). Its key hashes those and
the code identity (:mod:`shiftbench.identity`), so a finished cell is never recomputed and a
changed plugin's cells are. Config errors fail at expansion, before anything is computed. Cells
sharing (dataset, model, seed) share one loaded dataset, one trained model and the cached forward
passes. A plugin that raises marks its cell ``failed`` (traceback kept) and the run goes on.
Workers sharing a store claim cells first (:mod:`shiftbench.claims`), so none is computed twice.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import torch
from tqdm.auto import tqdm

from shiftbench import datasets as dataset_registry
from shiftbench import methods as method_registry
from shiftbench import grids
from shiftbench import scorers as scorer_registry
from shiftbench.cache import ArrayCache, FileWriteError, set_aside, stable_hash
from shiftbench.cell_scoring import cell_scores
from shiftbench.claims import Claims
from shiftbench.dataset import check_dataset_for_run, load_for_seed
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Task, Truth
from shiftbench.identity import cell_identity, scoring_identity
from shiftbench.models import build_model
from shiftbench.models import registry as model_registry
from shiftbench.progress import progress_bar
from shiftbench.provenance import provenance
from shiftbench.scenarios import Scenario, check_chunk_columns, expand_scenarios
from shiftbench.seeding import int_seed, seed_globals
from shiftbench.store import FINAL_STATUSES, RecordStore
from shiftbench.sweep_estimate import record_model_cost


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
    #: canonical JSON of the label-free selection scores the cell computes (:mod:`shiftbench.cell_scoring`);
    #: empty when the experiment selects nothing, and then left out of the record (and the key)
    scoring: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {"dataset": self.dataset, "dataset_options": json.loads(self.dataset_options),
             "scenario": self.scenario.as_dict(), "model": self.model, "method": self.method,
             "hparams": json.loads(self.hparams), "seed": self.seed}
        if self.scoring:
            d["scoring"] = json.loads(self.scoring)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        """The cell a record's ``cell`` field describes (the inverse of :meth:`as_dict`)."""
        scoring = json.dumps(d["scoring"], sort_keys=True) if d.get("scoring") else ""
        return cls(d["dataset"], json.dumps(d["dataset_options"], sort_keys=True), Scenario(**d["scenario"]),
                   d["model"], d["method"], json.dumps(d["hparams"], sort_keys=True), int(d["seed"]), scoring)

    def identity(self) -> dict[str, str]:
        """Hashes of the code this cell's result depends on (see :mod:`shiftbench.identity`); with ``scoring``,
        also of the code that computes its selection scores."""
        identity = _identity(self.method, self.model, self.dataset)
        if not self.scoring:
            return identity
        return {**identity, "scoring_code": _scoring_identity(tuple(json.loads(self.scoring)["scorers"]))}

    @property
    def key(self) -> str:
        # the code is part of the cell: a changed plugin, training recipe, adapter or harness
        # recomputes the cells that depend on it, and only those
        return stable_hash({**self.as_dict(), **self.identity()}, length=20)


@lru_cache(maxsize=None)
def _identity(method: str, model: str, dataset: str) -> dict[str, str]:
    return cell_identity(method_registry.registry.get(method), model_registry.get(model),
                         dataset_registry.adapter_class(dataset))


@lru_cache(maxsize=None)
def _scoring_identity(scorers: tuple[str, ...]) -> str:
    return scoring_identity(tuple(scorer_registry.registry.get(name) for name in scorers))


@dataclass
class RunSettings:
    """Where things go and how they run."""

    store_dir: Path
    cache_dir: Path
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ShiftbenchError(f"device={self.device} but torch sees no CUDA GPU on this machine; use device=cpu")
        if self.device.startswith("mps") and not torch.backends.mps.is_available():
            raise ShiftbenchError(f"device={self.device} but torch sees no Apple MPS device here; use device=cpu")


def as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def grid_points(method: str, overrides: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Hyperparameter settings of ``method``: its ``grid`` with config overrides (``shiftbench.grids``)."""
    return grids.grid_points(method_registry.registry.get(method), overrides)


def expand_cells(cfg: dict[str, Any]) -> list[Cell]:
    """All cells of an experiment config (a plain dict, see ``configs/config.yaml``): every dataset block
    (:func:`dataset_blocks`) x its scenarios x models x methods x grid points x seeds."""
    methods, seeds = as_list(cfg["method"]), run_seeds(cfg)
    points = method_settings(methods, cfg.get("grid") or {})
    cells = []
    for block in dataset_blocks(cfg):
        ds = block["name"]
        dataset_registry.adapter_class(ds)  # unknown names fail here, listing valid ones
        check_dataset_for_run(ds, block.get("options") or {})
        options = json.dumps(block.get("options") or {}, sort_keys=True)
        scenarios = expand_scenarios(block.get("scenarios") or [{}], defaults=block.get("stream") or {})
        check_chunk_columns(scenarios, dataset_registry.adapter_class(ds))
        models = as_list(cfg.get("model")) or as_list(block.get("models"))
        if not models:
            raise ShiftbenchError(f"dataset {ds!r} names no models; give the block `models: [...]` or set model=NAME")
        for m in models:
            model_registry.get(m)
        for model, method, seed, scenario in itertools.product(models, methods, seeds, scenarios):
            for hp in points[method]:
                cells.append(Cell(ds, options, scenario, model, method, json.dumps(hp, sort_keys=True), seed))
    return cells


def dataset_blocks(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The experiment's datasets: the ``datasets`` list when the config has one (an experiment over several
    datasets; each block is shaped like a ``configs/dataset/*.yaml`` file), else the one ``dataset``."""
    blocks = cfg.get("datasets")
    if not blocks:
        return [cfg["dataset"]]
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("name") for b in blocks):
        raise ShiftbenchError("`datasets` must be a list of dataset blocks, each with a `name` (and `options`, "
                              "`models`, `stream`, `scenarios` as in configs/dataset/*.yaml)")
    return blocks


def run_seeds(cfg: dict[str, Any]) -> list[int]:
    """The run's seeds as integers; anything else is a config error."""
    seeds = as_list(cfg["seed"])
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, str)) or not str(s).lstrip("-").isdigit()]
    if bad or not seeds:
        raise ShiftbenchError(f"seed must be an integer or a list of integers (e.g. seed=[0,1,2]); got {cfg['seed']!r}")
    return [int(s) for s in seeds]


def method_settings(methods: list[str], grid: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every method's grid points, each checked against the method's declared hyperparameters (without
    building the method) so that a bad value fails here, before anything is computed; a grid override for
    a method not in the run is an error too."""
    stray = sorted(set(grid) - set(methods))
    if stray:
        raise ShiftbenchError(f"grid overrides name methods that are not in this run: {stray}; the run's methods: "
                              f"{methods} (check the spelling, or add the method with method=[...])")
    return {method: grid_points(method, grid.get(method)) for method in methods}


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
        self.claims = Claims(settings.store_dir)

    def pending(self, cells: Iterable[Cell], repair: bool = False) -> list[Cell]:
        """The cells without a final record. With ``repair``, an unreadable record of one of them is moved
        aside (``.corrupt``, with a warning naming it), so that the cell is computed again."""
        cells = list(cells)
        scan = self.store.scan(c.key for c in cells)
        for path, problem in scan.unreadable if repair else ():
            set_aside(path, problem)
        done = {r["key"] for r in scan.records if r["status"] in FINAL_STATUSES}
        return [c for c in cells if c.key not in done]

    def run(self, cells: list[Cell]) -> dict[str, int]:
        """Run every cell whose record is missing or failed; return counts by status and timings
        (forward passes over whole splits, their seconds, seconds spent building/training models).

        Workers sharing the store claim cells before computing them (:mod:`shiftbench.claims`): a
        cell another live worker is computing is left to it, and this run waits for its record at
        the end (``elsewhere`` counts those), taking the cell over if that worker dies."""
        todo = self.pending(cells, repair=True)
        counts = {"cached": len(cells) - len(todo), "ok": 0, "failed": 0, "not_applicable": 0, "elsewhere": 0,
                  "forward_passes": 0, "forward_seconds": 0.0, "model_seconds": 0.0}
        began = time.time()
        with progress_bar(len(todo), self.settings.progress) as bar:
            try:
                self._run_all(todo, began, counts, bar)
            except KeyboardInterrupt:
                saved = counts["cached"] + counts["ok"] + counts["failed"] + counts["not_applicable"]
                print(f"\ninterrupted: {saved} of {len(cells)} cells are stored in {self.settings.store_dir}",
                      file=sys.stderr)
                raise
        return counts

    def _run_all(self, todo: list[Cell], began: float, counts: dict[str, Any], bar: tqdm) -> None:
        """Compute ``todo`` group by group, claiming cells; then wait for cells other workers hold."""
        while todo:
            groups: dict[tuple, list[Cell]] = {}
            for c in todo:
                groups.setdefault((c.dataset, c.dataset_options, c.model, c.seed), []).append(c)
            claimed_elsewhere = []
            for group in groups.values():
                mine, done_elsewhere, held = self._claim(group, began)
                counts["elsewhere"] += len(done_elsewhere)
                bar.update(len(done_elsewhere))
                claimed_elsewhere += held
                try:
                    if mine:
                        self._run_group(mine, counts, bar)
                finally:
                    for c in mine:
                        self.claims.release(c.key)
            todo = self._wait_for(claimed_elsewhere, began, counts, bar)

    def _claim(self, group: list[Cell], began: float) -> tuple[list[Cell], list[Cell], list[Cell]]:
        """The cells of ``group`` this worker claimed and must compute, those another worker finished
        meanwhile (claimed, found done, released), and those another live worker holds."""
        mine, done, held = [], [], []
        for cell in group:
            if not self.claims.acquire(cell.key):
                held.append(cell)
            elif self._finished_since(cell, began):
                self.claims.release(cell.key)
                done.append(cell)
            else:
                mine.append(cell)
        return mine, done, held

    def _finished_since(self, cell: Cell, began: float) -> bool:
        """True when ``cell`` has a final record, or a failed one written after ``began`` (tried already)."""
        record = self.store.load(cell.key)
        return record is not None and (record["status"] in FINAL_STATUSES or record.get("finished", 0) >= began)

    def _run_group(self, group: list[Cell], counts: dict[str, Any], bar: tqdm) -> None:
        """Cells sharing (dataset, options, model, seed): one dataset, one model, their forward passes."""
        first = group[0]
        try:
            dataset = load_for_seed(first.dataset, json.loads(first.dataset_options), first.seed)
            started = time.perf_counter()
            model = build_model(first.model, dataset, int_seed(first.seed, "model"), self.settings.cache_dir,
                                self.settings.device)
            counts["model_seconds"] += time.perf_counter() - started
            record_model_cost(self.settings.cache_dir, first.model, time.perf_counter() - started)
        except ShiftbenchError:
            raise  # a config error (bad option, missing data, wrong device): every cell would fail alike
        except Exception:
            tb = traceback.format_exc()
            for cell in group:
                self._write(cell, "failed", error=tb)
                counts["failed"] += 1
                bar.update(1)
            return
        for cell in group:
            bar.set_postfix_str(f"{cell.method} on {cell.scenario.name}", refresh=False)
            counts[self._run_cell(cell, dataset, model)] += 1
            bar.update(1)
        counts["forward_passes"] += model.forward_passes
        counts["forward_seconds"] += model.forward_seconds

    def _wait_for(self, cells: list[Cell], began: float, counts: dict[str, Any], bar: tqdm,
                  poll: float = 0.5) -> list[Cell]:
        """Wait until every cell claimed by another worker has its record (a failed one written during this
        run counts as tried); return the cells whose claims went stale, for this run to compute."""
        waiting, orphaned = list(cells), []
        while waiting:
            still = []
            for cell in waiting:
                if self._finished_since(cell, began):
                    counts["elsewhere"] += 1
                    bar.update(1)
                elif self.claims.is_stale(cell.key):
                    orphaned.append(cell)
                else:
                    still.append(cell)
            if still:
                bar.set_postfix_str(f"waiting for {len(still)} cells another worker is computing", refresh=True)
                time.sleep(poll)
            waiting = still
        return orphaned

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
            target = dataset.label_free(split)
            task = Task(dataset.n_classes, target, cell.scenario.batches(split.y, cell.seed, target.metadata), cell.seed,
                        model, self.cache, {k: dataset.splits[k] for k in ("train", "id_val") if k in dataset.splits})
            seed_globals(cell.seed)
            output = method.run(task)
            truth = Truth(dataset, split)
            metrics = method.evaluate(output, truth, task)
            details = method.details(output, truth, task) if hasattr(method, "details") else None
            if cell.scoring:  # label-free scores for the selection stage: the task and the output, no truth
                extra.update(cell_scores(json.loads(cell.scoring), method, task, output))
        except FileWriteError:
            raise  # the cache or store cannot be written: every cell would fail alike
        except Exception:
            self._write(cell, "failed", error=traceback.format_exc(), seconds=time.perf_counter() - start, **extra)
            return "failed"
        if details is not None:
            extra["details"] = json.loads(details.to_json(orient="records"))
        self._write(cell, "ok", metrics=metrics, family=method.family, seconds=time.perf_counter() - start, **extra)
        return "ok"

    def _write(self, cell: Cell, status: str, metrics: dict | None = None, error: str | None = None, **extra: Any) -> None:
        record = {"key": cell.key, "status": status, "cell": cell.as_dict(), "identity": cell.identity(), "metrics": metrics or {},
                  "scenario_name": cell.scenario.name, "scenario_group": scenario_group(cell.scenario),
                  "provenance": provenance(), "error": error, "finished": time.time(), **extra}
        if "family" not in record:
            record["family"] = method_registry.registry.get(cell.method).family
        self.store.write(record)
