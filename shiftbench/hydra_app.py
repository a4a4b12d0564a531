"""The Hydra application behind ``shiftbench run``: compose the config, run the cells, write tables.

A single run composes the config with Hydra's compose API and runs in this process (no Hydra
output directory, errors reach the CLI as one line). ``-m`` sweeps (:func:`multirun`) go through
Hydra's sweeper and the configured launcher (joblib locally; submitit/Ray on clusters), one job per
override combination; every job writes its own records into the shared store and
:class:`CollectTables` rebuilds the tables from all current records when the sweep ends, and fails
the sweep if any cell failed. An override of a key the config lacks is Hydra's composition error,
translated into one line listing the keys there are (:func:`unknown_key`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from shiftbench.collect import Collection, collect
from shiftbench.errors import ShiftbenchError
from shiftbench.report import check_metric
from shiftbench.experiment_view import ExperimentView
from shiftbench.runner import Cell, Runner, RunSettings, expand_cells, machine_cores
from shiftbench.selection_report import write_results
from shiftbench.sweep_estimate import describe_estimate

if TYPE_CHECKING:
    from hydra._internal.hydra import Hydra

CONFIG_MODULE = "shiftbench.configs"
#: Hydra's ``hydra.job.name`` (the name ``hydra.main`` gave this module's task function)
JOB_NAME = "hydra_app"


class CellsFailed(ShiftbenchError):
    """Some cells of a run failed: their records hold the tracebacks; the run's exit code is 1.
    ``counts`` are the run's counts (as :meth:`Runner.run` returns them), where a run computed them."""

    exit_code = 1

    def __init__(self, n_failed: int, n_cells: int, counts: dict[str, int] | None = None):
        super().__init__(f"{n_failed} of {n_cells} cells failed; fix the cause and re-run the same command "
                         "(finished cells are kept, failed ones are retried)")
        self.counts = counts


@contextmanager
def initialized_hydra(overrides: list[str]) -> Iterator[Hydra]:
    """Hydra initialized on shiftbench's configs for a ``with`` block; an error composing ``overrides``
    inside it leaves as one :class:`ShiftbenchError` line."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with initialize_config_module(config_module=CONFIG_MODULE, job_name=JOB_NAME, version_base="1.3"):
        try:
            yield GlobalHydra.instance().hydra
        except (HydraException, OmegaConfBaseException) as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            error = unknown_key(exc, overrides) or ShiftbenchError(f"the overrides do not give a valid config: {detail}")
            raise error from exc


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved experiment config for ``overrides`` (without Hydra's own settings)."""
    from hydra import compose as hydra_compose

    with initialized_hydra(overrides):
        return OmegaConf.to_container(hydra_compose(config_name="config", overrides=overrides), resolve=True)


def unknown_key(exc: Exception, overrides: list[str]) -> ShiftbenchError | None:
    """Hydra's composition error for an override of a key the config does not have ("Key 'x' is not in
    struct") as one line naming the key and listing the keys beside it (at the top level with the config
    groups); ``None`` for any other error. Call it while Hydra is initialized."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = exc.__cause__
    if not isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or cause.parent_node is None:
        return None
    key = str(cause.full_key)
    parent = key.rpartition(".")[0]
    valid = set(cause.parent_node.keys())
    if not parent:
        valid |= set(GlobalHydra.instance().config_loader().list_groups(""))
    override = next((o for o in overrides if (o.split("=", 1)[0] + ".").startswith(key + ".")), key)
    return ShiftbenchError(f"unknown config key {key!r} in override {override!r}; valid keys"
                           f"{f' of {parent}' if parent else ''}: {', '.join(sorted(valid)) or '(none)'} "
                           "(prefix with + to add a new key)")


def multirun(overrides: list[str]) -> None:
    """``shiftbench run -m``: check every job of the sweep (:func:`check_sweep`), then run them through
    Hydra's configured sweeper and launcher, as ``--multirun`` on Hydra's own command line would. Each job
    computes in its launcher process (``jobs=1``) unless the overrides set ``jobs``."""
    if not any(o.startswith("jobs=") for o in overrides):
        overrides = [*overrides, "jobs=1"]  # each launcher job is a process already: no workers of its own
    check_sweep(overrides)
    with initialized_hydra(overrides) as hydra:
        hydra.multirun(config_name="config", task_function=task, overrides=[*overrides, "hydra.mode=MULTIRUN"])


def check_sweep(overrides: list[str]) -> None:
    """Compose and expand every job of a ``-m`` sweep before launching any, so that a bad value in one
    job is one ``shiftbench: error:`` line naming the job, with nothing computed."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        jobs = [job for batch in BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)
                for job in batch]
    except HydraException as exc:
        raise ShiftbenchError(f"the sweep overrides do not parse: {str(exc).splitlines()[0]}") from exc
    for job in jobs:
        plain = [o for o in job if not o.startswith("hydra/") and not o.startswith("hydra.")]
        try:
            cfg = compose(plain)
            settings_from(cfg)
            experiment_cells(cfg)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"sweep job {' '.join(job)}: {exc}") from exc


def experiment_cells(cfg: dict[str, Any]) -> tuple[list[Cell], ExperimentView]:
    """The cells of a resolved config, with the scoring its selection protocol needs, and how its tables
    present them."""
    view = ExperimentView.from_config(cfg)
    return view.protocol().attach(expand_cells(cfg)), view


def results_folder(cfg: dict[str, Any]) -> Path:
    """Where a run writes its tables: ``results_dir`` (the run's own folder), or with ``publish`` the source
    checkout's ``results/<experiment_name>/``, the committed tables."""
    if not cfg.get("publish"):
        return Path(cfg["results_dir"])
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or not (root / "results").is_dir():
        raise ShiftbenchError(f"publish=true writes into a source checkout's results/ folder, but shiftbench runs from "
                              f"{root}, which is not one; publish from a clone (pip install -e .) or set results_dir=DIR")
    return root / "results" / str(cfg["experiment_name"])


def settings_from(cfg: dict[str, Any]) -> RunSettings:
    """The run settings of a resolved config. ``jobs: null`` (the config's default) is the machine's cores; a
    config without the key (one written by hand, as in a test) computes in this process."""
    jobs = cfg.get("jobs", 1)
    return RunSettings(store_dir=Path(cfg["store_dir"]), cache_dir=Path(cfg["cache_dir"]), device=str(cfg["device"]),
                       progress=bool(cfg["progress"]), jobs=machine_cores() if jobs is None else jobs)


def rerun_command(cfg: dict[str, Any]) -> str:
    """The command that regenerates this run's tables (named in the markdown leaderboard; how progress is
    shown and how many worker processes compute the cells do not change them, so they are left out)."""
    overrides = [o for o in cfg.get("overrides") or []
                 if o != "publish=true" and not o.startswith("progress=") and not o.startswith("jobs=")]
    return "shiftbench run" + (" --publish" if cfg.get("publish") else "") + \
        (" " + " ".join(shlex.quote(o) for o in overrides) if overrides else "")


def run_experiment(cfg: dict[str, Any]) -> dict[str, int] | None:
    """Run (or, with ``dry_run``, describe) the cells of a resolved config; print and write tables.

    Raises :class:`CellsFailed` after writing the tables when any cell failed."""
    cells, view = experiment_cells(cfg)
    runner = Runner(settings_from(cfg))
    pending = runner.pending(cells)
    if cfg.get("dry_run"):
        print(f"{len(cells)} cells, {len(cells) - len(pending)} cached, {len(pending)} to compute")
        print(describe_estimate(runner.store, pending, cfg["cache_dir"], runner.settings.jobs))
        for cell in pending:
            print(f"  {cell.key}  {cell.dataset} {cell.scenario.name} {cell.model} {cell.method} {cell.hparams} seed={cell.seed}")
        return None
    check_writable(results_folder(cfg), "results dir")
    if pending:  # a fully cached re-run reads the store and the cache only
        check_prediction_metric(pending, cfg["metric"])
        check_writable(Path(cfg["store_dir"]) / "records", "store dir")
    view.save(cfg["store_dir"])  # `shiftbench table` over this store then shows the table this run shows
    counts = runner.run(cells)
    elsewhere = f", {counts['elsewhere']} computed by another worker" if counts["elsewhere"] else ""
    print(f"cells: {counts['cached']} cached, {counts['ok']} computed, {counts['not_applicable']} not applicable, "
          f"{counts['failed']} failed{elsewhere}; forward-pass cache: {runner.cache.hits} hits, {runner.cache.misses} misses "
          f"({counts['forward_seconds']:.1f} s in forward passes, {counts['model_seconds']:.1f} s building models)")
    n_failed = publish(collect([cfg["store_dir"]], keys=[c.key for c in cells]), cfg, view)
    if n_failed:
        raise CellsFailed(n_failed, len(cells), counts)
    return counts


def publish(found: Collection, cfg: dict[str, Any], view: ExperimentView) -> int:
    """Print the leaderboard of ``found`` (selection-aware when the experiment selects) and write it with the
    records under ``results_dir``; report what was left out and every failed cell; return how many failed."""
    frame, notes = view.present(found)
    failed = frame[frame["status"] == "failed"] if not frame.empty else frame
    report_failures(failed, Path(cfg["store_dir"]))
    check_metric(frame, cfg["metric"])
    paths = write_results(frame, view.protocol(), results_folder(cfg), cfg["metric"], notes, rerun_command(cfg),
                          view.reference)
    print("\n" + paths["markdown"].read_text())
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return len(failed)


def report_failures(failed, store_dir: Path, shown: int = 3) -> None:
    """Failed cells grouped by cause: the cause's one line, how many cells, a few of them with their record."""
    for cause, cells in failed.groupby("error", sort=False):
        print(f"FAILED {len(cells)} cells: {cause or '(no error recorded)'}", file=sys.stderr)
        for _, row in cells.head(shown).iterrows():
            print(f"  {row['method']} {row['hparams']} on {row['scenario']} ({row['model']}, seed {row['seed']}): "
                  f"{store_dir / 'records' / (row['key'] + '.json')}", file=sys.stderr)
        if len(cells) > shown:
            print(f"  ... and {len(cells) - shown} more with the same cause", file=sys.stderr)


def check_writable(folder: Path | str, what: str) -> None:
    """Fail before computing when ``folder`` cannot be created or written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".shiftbench-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ShiftbenchError(f"cannot write the {what} {folder}: {exc.strerror or exc}; choose another folder "
                              f"(e.g. {what.replace(' ', '_')}=/path/you/own)") from exc


def check_prediction_metric(cells: list, metric: str) -> None:
    """Before computing: when every method predicts classes, the metric must be one the dataset's
    ``evaluate`` reports (asked on a few examples of the first target, with perfect predictions).
    Runs with other families (estimators report their own metrics) are checked after the run."""
    from shiftbench import methods
    from shiftbench.dataset import load_for_seed
    from shiftbench.families import PredictionMethod

    if not all(issubclass(methods.registry.get(c.method), PredictionMethod) for c in cells):
        return
    first = cells[0]
    dataset = load_for_seed(first.dataset, json.loads(first.dataset_options), first.seed)
    split = dataset.split(first.scenario.target)
    sample = split.subset(np.arange(min(len(split), 32)))
    probs = np.eye(dataset.n_classes)[sample.y] if split.task == "classification" else None
    available = sorted(dataset.evaluate(sample, sample.y, probs))
    if metric not in available:
        raise ShiftbenchError(f"dataset {first.dataset!r} does not report metric {metric!r}; its metrics: "
                              f"{', '.join(available)} (metric=NAME)")


def task(cfg: DictConfig) -> None:
    """Hydra task function: one job of a ``-m`` sweep (failures are counted by :class:`CollectTables`)."""
    try:
        run_experiment(OmegaConf.to_container(cfg, resolve=True))
    except CellsFailed as exc:
        print(f"shiftbench: {exc}", file=sys.stderr)


class CollectTables(Callback):
    """After a multirun, rebuild the tables from every current record in the shared store."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
        cfg = OmegaConf.to_container(config, resolve=False)
        cfg.pop("hydra", None)  # its job fields (hydra.job.num) exist only inside a job
        cfg = {**OmegaConf.to_container(OmegaConf.create(cfg), resolve=True), "overrides": ["-m", *overrides]}
        if cfg.get("dry_run"):  # the jobs described their cells and computed nothing: no tables to rebuild
            return
        found = collect([cfg["store_dir"]])
        try:
            n_failed = publish(found, cfg, ExperimentView.from_config(cfg))
            if n_failed:
                raise CellsFailed(n_failed, len(found.frame))
        except ShiftbenchError as exc:
            print(f"shiftbench: error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
