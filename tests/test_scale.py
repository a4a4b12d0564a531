"""Scale-out: concurrent workers share one store without loss or duplicates; the submitit launcher
runs a sweep whose records land in the store; the dry run prints an estimated time."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiftbench.hydra_app import run_experiment
from shiftbench.runner import expand_cells
from shiftbench.store import RecordStore
from shiftbench.sweep_estimate import DEFAULT_CELL_SECONDS, DEFAULT_MODEL_SECONDS, estimate_seconds


def config(tmp_path: Path, cache_dir: Path, store: str, methods: list[str], results: str) -> dict:
    return {
        "dataset": {"name": "digits", "options": {"n_train": 1000, "n_val": 300, "n_test": 300},
                    "models": ["small_cnn"], "stream": {"batch_size": 50, "order": "iid"},
                    "scenarios": [{"target": "test"}, {"target": "id_test", "label_shift": [0.5, 5.0]}]},
        "method": methods, "model": None, "seed": [0, 1], "grid": {}, "metric": "acc_avg", "device": "cpu",
        "progress": False, "dry_run": False, "cache_dir": str(cache_dir), "store_dir": str(tmp_path / store),
        "results_dir": str(tmp_path / results),
    }


def _worker(cfg: dict, counts) -> None:
    counts.put(run_experiment(cfg))


@pytest.mark.slow
def test_two_workers_on_one_store_lose_and_duplicate_nothing(tmp_path, cache_dir):
    reference = config(tmp_path, cache_dir, "reference", ["source_only", "bn_adapt"], "ref-results")
    run_experiment(reference)  # trains/caches the models; the reference records to compare with
    first = config(tmp_path, cache_dir, "shared", ["source_only"], "results-1")
    second = config(tmp_path, cache_dir, "shared", ["bn_adapt", "source_only"], "results-2")  # overlaps on source_only
    ctx = multiprocessing.get_context("spawn")
    counts = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(cfg, counts)) for cfg in (first, second)]
    for w in workers:
        w.start()
    done = [counts.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]

    expected = {c.key for c in expand_cells(first)} | {c.key for c in expand_cells(second)}
    assert sum(c["ok"] for c in done) == len(expected)  # claims: no cell computed twice
    assert sum(c["ok"] + c["elsewhere"] + c["cached"] for c in done) == len(expand_cells(first)) + len(expand_cells(second))
    assert not list((tmp_path / "shared" / "claims").glob("*.claim"))  # every claim released
    files = sorted((tmp_path / "shared" / "records").iterdir())
    assert [p.suffix for p in files] == [".json"] * len(files)  # no leftover temporary files
    records = RecordStore(tmp_path / "shared").records()
    assert sorted(r["key"] for r in records) == sorted(expected)  # nothing lost, nothing twice
    assert all(r["status"] == "ok" for r in records)
    ref = {r["key"]: r["metrics"] for r in RecordStore(tmp_path / "reference").records()}
    assert {r["key"]: r["metrics"] for r in records} == ref  # same results as one sequential worker


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep_into_the_store(tmp_path, cache_dir):
    store = tmp_path / "store"
    cmd = [str(Path(sys.executable).with_name("shiftbench")), "run", "-m", "hydra/launcher=submitit_local",
           "experiment=smoke", "seed=0,1", "method=[source_only]", f"store_dir={store}",
           "dataset.scenarios=[{target:test},{target:id_test,label_shift:[0.5]}]",
           f"results_dir={tmp_path / 'results'}", f"cache_dir={cache_dir}", "progress=false",
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "SHIFTBENCH_CACHE_DIR": str(cache_dir)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = RecordStore(store).records()
    assert len(records) == 2 * 2  # two jobs (seeds), two scenarios each
    assert {r["cell"]["seed"] for r in records} == {0, 1} and all(r["status"] == "ok" for r in records)
    assert list((tmp_path / "sweep").glob("**/.submitit")), "jobs must have gone through submitit"
    assert (tmp_path / "results" / "leaderboard.csv").exists()  # collected after the sweep


def test_dry_run_estimates_time_from_stored_timings(tmp_path, cache_dir, capsys):
    cfg = config(tmp_path, cache_dir, "dry", ["source_only", "bn_adapt"], "dry-results")
    cells = expand_cells(cfg)
    store = RecordStore(cfg["store_dir"])
    n_groups = len({(c.dataset, c.model, c.seed) for c in cells})  # models never built are charged their build
    assert estimate_seconds(store, cells) == pytest.approx(
        (DEFAULT_CELL_SECONDS * len(cells) + DEFAULT_MODEL_SECONDS * n_groups, len(cells)))
    done = cells[0]  # one finished source_only cell that took 3 s; another that took 5 s
    for cell, seconds in ((done, 3.0), (cells[1], 5.0)):
        store.write({"key": cell.key, "status": "ok", "cell": cell.as_dict(), "seconds": seconds, "metrics": {}})
    pending = [c for c in cells if c.key not in (cells[0].key, cells[1].key)]
    n_source = sum(c.method == "source_only" for c in pending)
    total, unknown = estimate_seconds(store, pending)
    unbuilt = len({(c.dataset, c.model, c.seed) for c in pending} - {(c.dataset, c.model, c.seed) for c in cells[:2]})
    assert unknown == len(pending) - n_source
    assert total == pytest.approx(4.0 * n_source + DEFAULT_CELL_SECONDS * unknown + DEFAULT_MODEL_SECONDS * unbuilt)
    run_experiment({**cfg, "dry_run": True})
    out = capsys.readouterr().out
    assert f"{len(cells)} cells, 2 cached, {len(pending)} to compute" in out
    with_cache, _ = estimate_seconds(store, pending, cfg["cache_dir"])  # the dry run also reads the cache's costs
    assert f"estimated time: {with_cache:.0f} s" in out
    assert len(store.records()) == 2  # a dry run computes nothing


@pytest.mark.slow
def test_a_joblib_sweep_over_methods_collects_every_job_into_one_table(tmp_path, cache_dir):
    """The end-of-sweep collector must resolve the sweep config (no ``hydra.job.num`` outside a job) and
    tabulate every job's method, not just the last one's."""
    cmd = [str(Path(sys.executable).with_name("shiftbench")), "run", "-m", "experiment=smoke", "experiment_name=mr",
           "method=source_only,bn_adapt", "seed=[0]", f"store_dir={tmp_path / 'store'}",
           "dataset.scenarios=[{target:test}]", f"results_dir={tmp_path / 'results'}", f"cache_dir={cache_dir}",
           "progress=false", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SHIFTBENCH_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Error" not in done.stderr, done.stderr[-3000:]
    import pandas as pd

    board = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert set(board["method"]) == {"source_only", "bn_adapt"}


def test_the_estimate_uses_timings_of_every_store_and_measured_model_builds(tmp_path, cache_dir):
    from shiftbench.sweep_estimate import record_model_cost

    cfg = config(tmp_path, cache_dir, "runs/new", ["source_only"], "r")
    cells = expand_cells(cfg)
    other = RecordStore(tmp_path / "runs" / "other")  # another experiment under the same cache
    for cell in cells[:2]:
        other.write({"key": cell.key, "status": "ok", "cell": cell.as_dict(), "seconds": 2.0, "metrics": {}})
    record_model_cost(tmp_path, "small_cnn", 5.0)
    record_model_cost(tmp_path, "small_cnn", 1.0)  # a cache hit later: the cold build is kept
    total, unknown = estimate_seconds(RecordStore(cfg["store_dir"]), cells, tmp_path)
    built = {(c.dataset, c.model, c.seed) for c in cells[:2]}
    unbuilt = len({(c.dataset, c.model, c.seed) for c in cells} - built)
    assert unknown == 0 and total == pytest.approx(2.0 * len(cells) + 5.0 * unbuilt)


def test_the_estimate_with_workers_shares_whole_model_groups_out():
    from shiftbench.sweep_estimate import makespan

    assert makespan([5.0, 4.0, 3.0, 3.0, 3.0], 1) == 18.0
    # in order, each to the worker free first (the runner's queue): {5, 3}, {4, 3, 3}
    assert makespan([5.0, 4.0, 3.0, 3.0, 3.0], 2) == 10.0
    assert makespan([10.0, 1.0], 4) == 10.0  # a group is never split between workers
    assert makespan([], 2) == 0.0


def test_the_dry_run_estimate_names_the_workers(tmp_path, cache_dir, capsys):
    from shiftbench.sweep_estimate import group_seconds, makespan

    cfg = config(tmp_path, cache_dir, "dry", ["source_only", "bn_adapt"], "dry-results")
    cells = expand_cells(cfg)
    run_experiment({**cfg, "dry_run": True, "jobs": 2})
    out = capsys.readouterr().out
    groups, _ = group_seconds(RecordStore(cfg["store_dir"]), cells, cfg["cache_dir"])
    assert len(groups) > 1
    wall = makespan(groups, 2)
    assert wall < sum(groups)
    assert f"estimated time: {wall:.0f} s ({wall / 60:.1f} min) with 2 workers, {sum(groups):.0f} s on one" in out
