"""jobs=N: worker processes write the records jobs=1 writes; a failing cell in a worker fails that cell only;
a killed worker is reported and its cells are recorded as failed, then computed by the next run; an interrupt
leaves nothing half-written and the next run resumes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, OutputAdapter
from shiftbench.hydra_app import CellsFailed, compose, run_experiment, settings_from
from shiftbench.runner import expand_cells, machine_cores
from shiftbench.store import RecordStore


class Exploding(OutputAdapter):
    """Test plugin that raises, naming the process it ran in (module level, so that workers can import it)."""

    name = "test_jobs_exploding"

    def process(self, batch: Batch):
        raise RuntimeError(f"boom in process {os.getpid()}")


class Slow(OutputAdapter):
    """Test plugin that passes the probabilities through, slowly (so that a run can be stopped mid-way)."""

    name = "test_jobs_slow"

    def process(self, batch: Batch):
        time.sleep(0.3)
        return batch.probs


def config(tmp_path: Path, cache_dir: Path, store: str, method: tuple[str, ...], jobs: int) -> dict:
    """Two (dataset, model, seed) groups of two scenarios each."""
    return {
        "dataset": {"name": "digits", "options": {"n_train": 1000, "n_val": 300, "n_test": 300},
                    "models": ["small_cnn"], "stream": {"batch_size": 50, "order": "iid"},
                    "scenarios": [{"target": "test"}, {"target": "id_test", "label_shift": [0.5]}]},
        "method": list(method), "model": None, "seed": [0, 1], "grid": {}, "metric": "acc_avg", "device": "cpu",
        "progress": False, "dry_run": False, "cache_dir": str(cache_dir), "store_dir": str(tmp_path / store),
        "results_dir": str(tmp_path / f"results-{store}"), "jobs": jobs,
    }


def records(cfg: dict) -> dict[str, dict]:
    return {r["key"]: r for r in RecordStore(cfg["store_dir"]).records()}


def without_timing(record: dict) -> dict:
    """A record less when it was computed and how long it took (and the commit, which another session may
    move between two runs)."""
    provenance = {k: v for k, v in record["provenance"].items() if k != "git_commit"}
    return {**{k: v for k, v in record.items() if k not in ("seconds", "finished")}, "provenance": provenance}


def assert_clean(store: Path) -> None:
    """Every record whole and no claim or temporary file left."""
    assert not list((store / "claims").glob("*")), "claims must be released"
    files = sorted((store / "records").iterdir())
    assert [p.suffix for p in files] == [".json"] * len(files), "no temporary files"
    for p in files:
        json.loads(p.read_text())


@pytest.fixture(autouse=True)
def test_plugins():
    with methods.registry.temporarily(Exploding, Slow):
        yield


def test_jobs_defaults_to_the_machine_cores_one_line_errors_for_bad_values(tmp_path):
    cfg = compose([f"store_dir={tmp_path}/s", f"cache_dir={tmp_path}/c"])
    assert cfg["jobs"] is None and settings_from(cfg).jobs == machine_cores()
    assert settings_from({k: v for k, v in cfg.items() if k != "jobs"}).jobs == 1  # a hand-written config
    assert settings_from(compose(["jobs=2", f"cache_dir={tmp_path}/c"])).jobs == 2
    assert settings_from({**cfg, "jobs": 1}).jobs == 1
    for bad in (0, -2, "two", True, 1.5):
        with pytest.raises(ShiftbenchError, match=f"jobs must be a positive integer .*got {bad!r}"):
            settings_from({**cfg, "jobs": bad})


def test_a_plugin_workers_cannot_import_is_an_error_before_anything_is_computed(tmp_path, cache_dir):
    class Local(OutputAdapter):
        name = "test_jobs_local"

        def process(self, batch: Batch):
            return batch.probs

    cfg = config(tmp_path, cache_dir, "local", ("test_jobs_local",), jobs=2)
    with methods.registry.temporarily(Local), pytest.raises(ShiftbenchError, match="'test_jobs_local'.*jobs=1"):
        run_experiment(cfg)
    assert not list((tmp_path / "local" / "records").glob("*"))


@pytest.mark.slow
def test_jobs_2_writes_the_records_of_jobs_1_field_by_field(tmp_path, cache_dir):
    one = config(tmp_path, cache_dir, "one", ("source_only", "bn_adapt"), jobs=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # bn_adapt's batch statistics round differently on 2 threads than in a 1-thread worker
    try:
        counts_one = run_experiment(one)
    finally:
        torch.set_num_threads(threads)
    two = config(tmp_path, cache_dir, "two", ("source_only", "bn_adapt"), jobs=2)
    counts_two = run_experiment(two)
    n = len(expand_cells(one))
    assert counts_one["ok"] == counts_two["ok"] == n == 8
    ours, theirs = records(two), records(one)
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert without_timing(ours[key]) == without_timing(theirs[key]), ours[key]["cell"]
    assert_clean(tmp_path / "two")


@pytest.mark.slow
def test_a_failing_plugin_in_a_worker_fails_its_cells_only(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "mixed", ("source_only", "test_jobs_exploding"), jobs=2)
    with pytest.raises(CellsFailed, match="4 of 8 cells failed") as failed:
        run_experiment(cfg)
    assert failed.value.counts["failed"] == 4 and failed.value.counts["ok"] == 4
    found = records(cfg).values()
    failures = [r for r in found if r["status"] == "failed"]
    assert {r["cell"]["method"] for r in failures} == {"test_jobs_exploding"}
    pids = {int(r["error"].rsplit("boom in process ", 1)[1].split()[0]) for r in failures}
    assert os.getpid() not in pids, "the cells ran in worker processes"
    assert all(r["status"] == "ok" for r in found if r["cell"]["method"] == "source_only")
    assert_clean(tmp_path / "mixed")


def _worker_pid(store: Path, timeout: float = 120.0) -> int:
    """The pid of a worker holding a claim on ``store`` (it is computing a group), once one does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for claim in (store / "claims").glob("*.claim"):
            try:
                pid = json.loads(claim.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                continue
            if pid != os.getpid():
                return pid
        time.sleep(0.02)
    raise AssertionError("no worker claimed a cell")


@pytest.mark.slow
def test_a_killed_worker_is_reported_its_cells_recorded_failed_and_the_next_run_computes_them(tmp_path, cache_dir,
                                                                                            capfd):
    cfg = config(tmp_path, cache_dir, "killed", ("test_jobs_slow",), jobs=2)
    raised = []
    run = threading.Thread(target=lambda: raised.append(_raises(run_experiment, cfg)))
    run.start()
    pid = _worker_pid(tmp_path / "killed")
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=300)
    assert not run.is_alive()
    assert isinstance(raised[0], CellsFailed), raised
    lost = [r for r in records(cfg).values() if r["status"] == "failed"]
    assert lost and all(f"worker process {pid} (killed by SIGKILL)" in r["error"] for r in lost)
    assert len({r["cell"]["seed"] for r in lost}) == 1, "only the killed worker's group"
    assert f"worker process {pid} died (killed by SIGKILL)" in capfd.readouterr().err
    assert_clean(tmp_path / "killed")

    n_stored = len(records(cfg)) - len(lost)
    counts = run_experiment(cfg)  # the failed cells are computed again, the stored ones are kept
    assert counts["cached"] == n_stored and counts["ok"] == len(lost) and counts["failed"] == 0
    assert all(r["status"] == "ok" for r in records(cfg).values()) and len(records(cfg)) == 4


def _raises(function, *args) -> BaseException | None:
    try:
        function(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        return exc
    return None


def _run_in_child(cfg: dict) -> None:
    with methods.registry.temporarily(Slow):  # a spawned process registers its own
        run_experiment(cfg)


@pytest.mark.slow
def test_an_interrupt_stops_the_workers_leaves_nothing_half_written_and_the_next_run_resumes(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "interrupted", ("test_jobs_slow",), jobs=2)
    store = tmp_path / "interrupted"
    child = multiprocessing.get_context("spawn").Process(target=_run_in_child, args=(cfg,))
    child.start()
    worker = _worker_pid(store)
    os.kill(child.pid, signal.SIGINT)  # what Ctrl-C sends (to the run; its workers are stopped by it)
    child.join(timeout=120)
    assert child.exitcode not in (None, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # the worker is gone too
    assert_clean(store)
    stored = records(cfg)
    assert all(r["status"] == "ok" for r in stored.values()) and len(stored) < 4

    counts = run_experiment(cfg)
    assert counts["cached"] == len(stored) and counts["ok"] == 4 - len(stored)
    assert all(r["status"] == "ok" for r in records(cfg).values()) and len(records(cfg)) == 4


def test_sweep_jobs_compute_in_their_launcher_process_unless_the_sweep_sets_jobs(monkeypatch):
    from shiftbench import hydra_app

    seen = []

    def stop(overrides):
        seen.append(list(overrides))
        raise ShiftbenchError("checked")

    monkeypatch.setattr(hydra_app, "check_sweep", stop)
    for overrides in (["seed=0,1"], ["seed=0,1", "jobs=2"]):
        with pytest.raises(ShiftbenchError, match="checked"):
            hydra_app.multirun(overrides)
    assert seen == [["seed=0,1", "jobs=1"], ["seed=0,1", "jobs=2"]]
