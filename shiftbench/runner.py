"""Expand an experiment config into cells and compute the cells whose results are missing.

A cell is (dataset, scenario, model, method, hyperparameters, seed). Its key hashes those and
the code identity (:mod:`shiftbench.identity`), so a finished cell is never recomputed and a
changed plugin's cells are. Config errors fail at expansion, before anything is computed. Cells
sharing (dataset, model, seed) share one loaded dataset, one trained model and the cached forward
passes. A plugin that raises marks its cell ``failed`` (traceback kept) and the run goes on.
Workers sharing a store claim cells first (:mod:`shiftbench.claims`), so none is computed twice.

With ``jobs`` > 1 the (dataset, model, seed) groups are computed by that many worker processes
(:class:`WorkerPool`) sharing the cache and the store; the run's process hands out the groups, keeps the
one progress display and notices a worker that dies (its unfinished cells get ``failed`` records saying
so, and the next run computes them). Every cell computes on :data:`CELL_THREADS` threads whatever
``jobs`` is, so its record does not depend on how many cells ran beside it.
"""

from __future__ import annotations

import importlib
import itertools
import json
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from shiftbench import datasets as dataset_registry
from shiftbench import methods as method_registry
from shiftbench import grids
from shiftbench import scorers as scorer_registry
from shiftbench.cache import ArrayCache, FileWriteError, set_aside
from shiftbench.cell_scoring import cell_scores
from shiftbench.claims import Claims
from shiftbench.dataset import check_dataset_for_run, load_for_seed
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Task, Truth
from shiftbench.identity import cell_identity, cell_key, scoring_identity
from shiftbench.models import build_model
from shiftbench.models import registry as model_registry
from shiftbench.progress import LogProgress, RelayProgress, RelayStream, progress_bar, write_above
from shiftbench.provenance import provenance
from shiftbench.scenarios import Scenario, check_chunk_columns, expand_scenarios
from shiftbench.seeding import int_seed, seed_globals
from shiftbench.store import FINAL_STATUSES, RecordStore
from shiftbench.sweep_estimate import record_model_cost
from shiftbench.threads import torch_threads

#: torch and BLAS threads every cell group computes on, in this process (``jobs=1``) and in every worker
#: alike. Multi-threaded float reductions round differently with the thread count (BatchNorm's batch
#: statistics in train mode move ~1e-5 between 1 and 2 threads), so a count that followed ``jobs`` (such
#: as cores // jobs) would make a record depend on how many cells ran beside it; a fixed count makes it
#: the same for every ``jobs`` and on every machine. One is what the published records were computed with
#: (OMP_NUM_THREADS=1), and what cores // jobs gives at the default ``jobs`` (the machine's cores).
CELL_THREADS = 1
#: exit code of a worker that stopped on an interrupt (as a shell reports SIGINT)
INTERRUPTED = 130


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
        identity = _identity(self.method, self.model, self.dataset, self.scenario.corruption is not None)
        if not self.scoring:
            return identity
        return {**identity, "scoring_code": _scoring_identity(tuple(json.loads(self.scoring)["scorers"]))}

    @property
    def key(self) -> str:
        # the code is part of the cell: a changed plugin, training recipe, adapter or harness
        # recomputes the cells that depend on it, and only those
        return cell_key(self.as_dict(), self.identity())


@lru_cache(maxsize=None)
def _identity(method: str, model: str, dataset: str, corrupts: bool) -> dict[str, str]:
    return cell_identity(method_registry.registry.get(method), model_registry.get(model),
                         dataset_registry.adapter_class(dataset), corrupts)


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
    #: worker processes computing (dataset, model, seed) groups side by side; 1 computes in this process
    jobs: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ShiftbenchError(f"jobs must be a positive integer (worker processes; null for the machine's "
                                  f"{machine_cores()} cores); got {self.jobs!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ShiftbenchError(f"device={self.device} but torch sees no CUDA GPU on this machine; use device=cpu")
        if self.device.startswith("mps") and not torch.backends.mps.is_available():
            raise ShiftbenchError(f"device={self.device} but torch sees no Apple MPS device here; use device=cpu")


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextmanager
def cell_threads() -> Iterator[None]:
    """Compute the enclosed cells on :data:`CELL_THREADS` torch and BLAS threads (restored afterwards)."""
    with torch_threads(CELL_THREADS), threadpool_limits(limits=CELL_THREADS, user_api="blas"):
        yield


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
    """Column a scenario is averaged into in leaderboards: corruptions together, label shifts by alpha,
    stream kinds (orders, severity schedules, domain orders) apart."""
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
    if len(s.severities) > 1:
        base += "+gradual"
    if s.domain_order != "sequence":
        base += f"+domains-{s.domain_order}"
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
        (forward passes over whole splits, their seconds, seconds spent building/training models; with
        worker processes, summed over them).

        Workers sharing the store claim cells before computing them (:mod:`shiftbench.claims`): a
        cell another live worker is computing is left to it, and this run waits for its record at
        the end (``elsewhere`` counts those), taking the cell over if that worker dies. With
        ``jobs`` > 1 and more than one group to compute, the groups go to worker processes
        (:class:`WorkerPool`)."""
        todo = self.pending(cells, repair=True)
        counts = new_counts()
        counts["cached"] = len(cells) - len(todo)
        began = time.time()
        jobs = min(self.settings.jobs, len(cell_groups(todo)))
        with progress_bar(len(todo), self.settings.progress) as bar:
            try:
                if jobs > 1:
                    with WorkerPool(self, jobs, bar, plugin_classes(todo)) as pool:
                        self._run_all(todo, began, counts, bar, pool)
                else:
                    self._run_all(todo, began, counts, bar)
            except KeyboardInterrupt:
                saved = len(self.store.scan(c.key for c in cells).records)  # workers report a group when it ends
                print(f"\ninterrupted: {saved} of {len(cells)} cells are stored in {self.settings.store_dir}",
                      file=sys.stderr)
                raise
        return counts

    def _run_all(self, todo: list[Cell], began: float, counts: dict[str, Any], bar: tqdm,
                 pool: WorkerPool | None = None) -> None:
        """Compute ``todo`` group by group (here, or by ``pool``'s workers), claiming cells; then wait for
        cells other workers hold."""
        while todo:
            groups = list(cell_groups(todo).values())
            if pool is not None:
                claimed_elsewhere = pool.compute(groups, began, counts)
            else:
                claimed_elsewhere = []
                for group in groups:
                    claimed_elsewhere += self.run_claimed(group, began, counts, bar)
            todo = self._wait_for(claimed_elsewhere, began, counts, bar)

    def run_claimed(self, group: list[Cell], began: float, counts: dict[str, Any], bar: Any) -> list[Cell]:
        """Claim the cells of one group, compute those this worker got and release them; return the cells
        another live worker holds."""
        mine, done_elsewhere, held = self._claim(group, began)
        counts["elsewhere"] += len(done_elsewhere)
        bar.update(len(done_elsewhere))
        try:
            if mine:
                with cell_threads():
                    self._run_group(mine, counts, bar)
        finally:
            for c in mine:
                self.claims.release(c.key)
        return held

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
            started = time.perf_counter()
            dataset = load_for_seed(first.dataset, json.loads(first.dataset_options), first.seed)
            counts["dataset_seconds"] += time.perf_counter() - started
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
            counts[self._run_cell(cell, dataset, model, counts)] += 1
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

    def _run_cell(self, cell: Cell, dataset, model, counts: dict[str, Any]) -> str:
        """Compute one cell and write its record; its phases' seconds are added to ``counts``."""
        start = time.perf_counter()
        extra = {"data_hash": dataset.fingerprint, "model_hash": model.fingerprint, "model_weights": model.pretrained}
        timed = PhaseTimer(counts)
        try:
            method = method_registry.load(cell.method, **json.loads(cell.hparams))
            reason = method.not_applicable(model, dataset.facts())
            if reason:
                with timed("store"):
                    self._write(cell, "not_applicable", error=reason, **extra)
                return "not_applicable"
            corrupting = self.cache.compute_seconds.get("corrupted", 0.0)
            with timed("target"):
                split = cell.scenario.target_split(dataset, self.cache, cell.seed)
                target = dataset.label_free(split)
                task = Task(dataset.n_classes, target, cell.scenario.batches(split.y, cell.seed, target.metadata),
                            cell.seed, model, self.cache,
                            {k: dataset.splits[k] for k in ("train", "id_val") if k in dataset.splits})
            counts["corruption_seconds"] += self.cache.compute_seconds.get("corrupted", 0.0) - corrupting
            seed_globals(cell.seed)
            with timed("method"):
                output = method.run(task)
            with timed("metric"):
                truth = Truth(dataset, split)
                metrics = method.evaluate(output, truth, task)
                details = method.details(output, truth, task) if hasattr(method, "details") else None
            if cell.scoring:  # label-free scores for the selection stage: the task and the output, no truth
                with timed("scoring"):
                    extra.update(cell_scores(json.loads(cell.scoring), method, task, output))
        except FileWriteError:
            raise  # the cache or store cannot be written: every cell would fail alike
        except Exception:
            self._write(cell, "failed", error=traceback.format_exc(), seconds=time.perf_counter() - start, **extra)
            return "failed"
        if details is not None:
            extra["details"] = json.loads(details.to_json(orient="records"))
        with timed("store"):
            self._write(cell, "ok", metrics=metrics, family=method.family, seconds=time.perf_counter() - start,
                        **extra)
        return "ok"

    def _write(self, cell: Cell, status: str, metrics: dict | None = None, error: str | None = None, **extra: Any) -> None:
        record = {"key": cell.key, "status": status, "cell": cell.as_dict(), "identity": cell.identity(), "metrics": metrics or {},
                  "scenario_name": cell.scenario.name, "scenario_group": scenario_group(cell.scenario),
                  "provenance": provenance(), "error": error, "finished": time.time(), **extra}
        if "family" not in record:
            record["family"] = method_registry.registry.get(cell.method).family
        self.store.write(record)



#: the phases of computing a cell whose seconds a run counts (``<phase>_seconds``): materialising the target
#: split and its stream (corrupting it included, also counted alone as ``corruption_seconds``), the method's
#: run (forward passes of the source model it is the first to need included), metrics, label-free scores for
#: selection, and writing the record
CELL_PHASES = ("target", "method", "metric", "scoring", "store")


def new_counts() -> dict[str, Any]:
    """A run's counts before any cell: by status, the forward-pass, dataset-loading and model-building
    timings, and the seconds of each phase of its cells (:data:`CELL_PHASES`)."""
    return {"cached": 0, "ok": 0, "failed": 0, "not_applicable": 0, "elsewhere": 0,
            "forward_passes": 0, "forward_seconds": 0.0, "model_seconds": 0.0, "dataset_seconds": 0.0,
            "corruption_seconds": 0.0,
            **{f"{phase}_seconds": 0.0 for phase in CELL_PHASES}}


class PhaseTimer:
    """``with timed("metric"): ...`` adds the block's wall seconds to ``counts["metric_seconds"]``."""

    def __init__(self, counts: dict[str, Any]):
        self.counts = counts

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.counts[f"{phase}_seconds"] += time.perf_counter() - began


def cell_groups(cells: Iterable[Cell]) -> dict[tuple, list[Cell]]:
    """Cells by (dataset, options, model, seed): the cells that share one dataset, model and forward passes."""
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.dataset, c.dataset_options, c.model, c.seed), []).append(c)
    return groups


def _registries() -> dict[str, Any]:
    return {"methods": method_registry.registry, "models": model_registry, "scorers": scorer_registry.registry}


def plugin_folders() -> dict[str, list[str]]:
    """The folders each plugin package scans, by package (a folder a program added to a package's
    ``__path__`` at run time, as the trust tests do, is one a worker must scan too)."""
    packages = ("shiftbench.methods", "shiftbench.models", "shiftbench.scorers", "shiftbench.datasets")
    return {name: list(importlib.import_module(name).__path__) for name in packages}


def plugin_classes(cells: Iterable[Cell]) -> list[tuple[str, type]]:
    """The method, model and scorer classes of ``cells`` as (registry, class), for worker processes to
    register, so that a plugin registered by hand (a test's, a notebook's) is found there too. They travel
    by reference (module and name); one a worker could not import (defined inside a function) is an error
    here, before anything is computed."""
    cells = list(cells)
    names = {("methods", c.method) for c in cells} | {("models", c.model) for c in cells} | \
        {("scorers", s) for c in cells if c.scoring for s in json.loads(c.scoring)["scorers"]}
    registries = _registries()
    found = []
    for kind, name in sorted(names):
        cls = registries[kind].get(name)
        try:
            pickle.loads(pickle.dumps(cls))
        except Exception as exc:
            raise ShiftbenchError(f"{kind[:-1]} plugin {name!r} ({cls.__module__}.{cls.__qualname__}) cannot be sent "
                                  f"to worker processes ({exc}); define it at the top level of a module, or run with "
                                  "jobs=1") from exc
        if cls.name == name:
            found.append((kind, cls))
    return found


@dataclass
class _Worker:
    """One worker process, the run's end of its pipe, whether it has started up, and the group it is
    computing (None when idle)."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    ready: bool = False
    group: list[Cell] | None = None
    output: dict[str, str] = field(default_factory=dict)


class WorkerPool:
    """``jobs`` worker processes (spawned: a fresh interpreter each, safe with torch's thread pools) that
    compute groups of cells into the runner's store and cache.

    The run's process hands each idle worker one group at a time over the worker's own pipe (no shared
    queue, whose lock a killed worker could take with it), applies the workers' progress and output to the
    run's one bar, and watches every worker's process: one that dies while computing a group is reported at
    once, on stderr, and the cells of its group without a record get a ``failed`` record naming the worker
    and how it died (the run's exit code is then non-zero and the next run computes them); a replacement is
    started while groups remain. An error that would stop a ``jobs=1`` run (a config error, a store that
    cannot be written) stops every worker and is raised here; so is an interrupt. Use it as a context
    manager: leaving it stops the workers (interrupting those still computing)."""

    def __init__(self, runner: Runner, jobs: int, bar: tqdm | LogProgress, plugins: list[tuple[str, type]]):
        self.runner, self.jobs, self.bar, self.plugins = runner, jobs, bar, plugins
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start(self) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=worker_main, args=(theirs,), name=f"shiftbench-worker-{len(self.workers)}")
        process.start()
        theirs.close()
        ours.send((self.runner.settings, plugin_folders()))
        ours.send(self.plugins)  # a message of its own: its classes are found once the folders are known
        self.workers.append(_Worker(process, ours))

    def compute(self, groups: list[list[Cell]], began: float, counts: dict[str, Any]) -> list[Cell]:
        """Compute ``groups`` on the workers, adding to ``counts``; return the cells another live process
        (outside this run) holds. A worker that died is replaced while groups wait for one."""
        pending, held = deque(groups), []
        while pending or any(w.group is not None for w in self.workers):
            idle = sum(w.group is None for w in self.workers)
            for _ in range(min(self.jobs - len(self.workers), len(pending) - idle)):
                self._start()
            for worker in self.workers:
                if worker.ready and worker.group is None and pending:
                    worker.group = pending.popleft()
                    try:
                        worker.conn.send((began, [(c.key, c) for c in worker.group]))
                    except OSError:
                        pass  # it died: its sentinel is ready, and its group's cells are handled as lost
            ready = wait([w.conn for w in self.workers] + [w.process.sentinel for w in self.workers])
            for worker in list(self.workers):
                if worker.conn in ready or worker.process.sentinel in ready:
                    held += self._serve(worker, began, counts)
        return held

    def _serve(self, worker: _Worker, began: float, counts: dict[str, Any]) -> list[Cell]:
        """Apply what ``worker`` sent; handle its death. Return the cells of a finished group held elsewhere."""
        held = []
        try:
            while worker.conn.poll():
                held += self._message(worker, worker.conn.recv(), counts)
        except (EOFError, OSError):
            pass  # the worker is gone: its sentinel says how
        if worker.process.is_alive():
            return held
        worker.process.join()
        self.workers.remove(worker)
        self._flush_output(worker)
        code, pid = worker.process.exitcode, worker.process.pid
        if code == INTERRUPTED:
            raise KeyboardInterrupt
        if not worker.ready:
            raise ShiftbenchError(f"worker process {pid} exited ({exit_reason(code)}) while starting; its output above "
                                  "says why (jobs=1 computes in this process)")
        if worker.group is None:
            write_above(self.bar, f"shiftbench: worker process {pid} died ({exit_reason(code)}) while idle; nothing "
                        "was lost\n", sys.stderr)
            return held
        return held + self._lost(worker, code, began, counts)

    def _message(self, worker: _Worker, message: tuple, counts: dict[str, Any]) -> list[Cell]:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "progress":
            self.bar.update(message[1])
        elif kind == "postfix":
            self.bar.set_postfix_str(message[1], refresh=False)
        elif kind == "output":
            stream, text = message[1], message[2]
            lines, _, rest = (worker.output.get(stream, "") + text).rpartition("\n")
            worker.output[stream] = rest
            if lines:
                write_above(self.bar, lines + "\n", getattr(sys, stream))
        elif kind == "done":
            group_counts, held_keys, hits, misses = message[1:]
            for name, value in group_counts.items():
                counts[name] += value
            self.runner.cache.hits += hits
            self.runner.cache.misses += misses
            held = [c for c in worker.group if c.key in set(held_keys)]
            worker.group = None
            return held
        elif kind == "error":
            self._flush_output(worker)
            if not worker.ready:
                cause = message[2].strip().splitlines()[-1]
                raise ShiftbenchError(f"a worker process could not start: {cause}; run with jobs=1 to compute in this "
                                      "process")
            raise worker_error(message[1], message[2])
        return []

    def _flush_output(self, worker: _Worker) -> None:
        for stream, text in worker.output.items():
            if text:
                write_above(self.bar, text + "\n", getattr(sys, stream))
        worker.output.clear()

    def _lost(self, worker: _Worker, code: int | None, began: float, counts: dict[str, Any]) -> list[Cell]:
        """A worker died while computing a group: count the cells it finished, give the others a ``failed``
        record saying what happened (claims it left released), and say so loudly. Return the cells of the
        group another live process holds (the run waits for them)."""
        pid, group, unfinished, held = worker.process.pid, worker.group, [], []
        first = group[0]
        where = f"{first.dataset} {first.model} seed {first.seed}"
        for cell in group:
            record = self.runner.store.load(cell.key)
            if record is not None and record.get("finished", 0) >= began:
                counts[record["status"]] += 1
                continue
            holder = self.runner.claims.holder(cell.key)
            if holder is not None and holder.get("pid") == pid:
                self.runner.claims.release(cell.key)
            elif not self.runner.claims.is_stale(cell.key):
                held.append(cell)
                continue
            unfinished.append(cell)
        error = (f"WorkerDied: worker process {pid} ({exit_reason(code)}) died while computing the cells of {where}; "
                 "this cell was not finished. Running the same command again computes it.")
        for cell in unfinished:
            self.runner._write(cell, "failed", error=error)
        counts["failed"] += len(unfinished)
        self.bar.update(len(unfinished))
        write_above(self.bar, f"shiftbench: worker process {pid} died ({exit_reason(code)}) while computing the cells "
                    f"of {where}: {len(group) - len(unfinished) - len(held)} of its {len(group)} cells were stored, "
                    f"{len(unfinished)} are recorded as failed (the run goes on; re-run the same command to compute "
                    "them)\n", sys.stderr)
        return held

    def stop(self, grace: float = 15.0) -> None:
        """Stop every worker: idle ones are told to exit, busy ones are interrupted (a cell stops where it is;
        records are written whole or not at all), and any still alive after ``grace`` seconds (or on a second
        interrupt) is killed."""
        try:
            for worker in self.workers:
                try:
                    if worker.group is None:
                        worker.conn.send(None)
                    elif worker.process.is_alive():
                        os.kill(worker.process.pid, signal.SIGINT)
                except (OSError, ValueError):
                    pass
            deadline = time.monotonic() + grace
            for worker in self.workers:
                worker.process.join(max(0.0, deadline - time.monotonic()))
        finally:
            for worker in self.workers:
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                worker.conn.close()
            self.workers = []


def exit_reason(code: int | None) -> str:
    """``-9`` -> ``killed by SIGKILL``; ``1`` -> ``exit code 1``."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def worker_error(pickled: bytes | None, trace: str) -> BaseException:
    """The exception a worker stopped on, as raised there when it can be rebuilt here, else a
    :class:`ShiftbenchError` with the worker's traceback."""
    try:
        exc = pickle.loads(pickled) if pickled is not None else None
    except Exception:
        exc = None
    if isinstance(exc, BaseException):
        return exc
    return ShiftbenchError(f"a worker process stopped on an error:\n{trace}")


def worker_main(conn: Connection) -> None:
    """A worker process: register the run's plugins, then compute the groups the run's process sends
    (``(began, [(key, cell), ...])``) until it sends ``None``. Progress and output go back over ``conn``;
    an error that stops the run goes back as ``("error", pickled exception, traceback)``."""
    signal.signal(signal.SIGINT, _interrupt_once)
    sys.stdout, sys.stderr = RelayStream(conn, "stdout"), RelayStream(conn, "stderr")
    try:
        settings, folders = conn.recv()
        for name, paths in folders.items():
            package = importlib.import_module(name)
            package.__path__.extend(p for p in paths if p not in package.__path__)
        plugins = conn.recv()
        registries = _registries()
        for kind, cls in plugins:
            registries[kind].register(cls)
        runner = Runner(settings)
        bar = RelayProgress(conn)
        conn.send(("ready",))
        while (message := conn.recv()) is not None:
            began, keyed = message
            group = [cell for _, cell in keyed]
            for key, cell in keyed:
                if cell.key != key:
                    raise ShiftbenchError(f"the code of cell {cell.method} on {cell.scenario.name} changed while the run "
                                          "was going (its key differs in a worker); re-run the command")
            counts, hits, misses = new_counts(), runner.cache.hits, runner.cache.misses
            held = runner.run_claimed(group, began, counts, bar)
            sys.stdout.flush()
            sys.stderr.flush()
            conn.send(("done", counts, [c.key for c in held], runner.cache.hits - hits, runner.cache.misses - misses))
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except (EOFError, BrokenPipeError):
        return  # the run's process is gone
    except BaseException as exc:
        try:
            pickled = pickle.dumps(exc)
        except Exception:
            pickled = None
        try:
            sys.stderr.flush()
            conn.send(("error", pickled, traceback.format_exc()))
        except OSError:
            pass
        sys.exit(1)
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


def _interrupt_once(signum: int, frame: Any) -> None:
    """A worker's SIGINT handler: the first interrupt stops the cell where it is; later ones are ignored,
    so that the clean-up (claims released, no temporary file left) runs to its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt
