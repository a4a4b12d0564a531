"""Work claiming: one live claim per cell, stale claims (dead owner, old foreign claim) are taken over,
and a run takes over the cells of a worker that died while holding them."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from shiftbench.claims import Claims


def test_a_live_claim_excludes_others_and_release_frees_it(tmp_path):
    first, second = Claims(tmp_path), Claims(tmp_path)
    second.owner = {**second.owner, "pid": second.owner["pid"] + 1}  # another worker on this host...
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        second.owner["pid"] = sleeper.pid  # ...that is alive
        assert second.acquire("k")
        assert not first.acquire("k") and not first.is_stale("k")
        second.release("k")
        assert first.acquire("k")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_claims_of_dead_workers_and_old_foreign_claims_are_stale(tmp_path):
    claims = Claims(tmp_path, stale_after=60.0)
    dead = subprocess.Popen(["true"])
    dead.wait()
    claims.dir.mkdir(parents=True)
    claims.path("dead").write_text(json.dumps({"host": claims.owner["host"], "pid": dead.pid, "started": time.time()}))
    claims.path("old").write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": time.time() - 120}))
    claims.path("young").write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": time.time()}))
    assert claims.is_stale("dead") and claims.acquire("dead")
    assert claims.is_stale("old") and claims.acquire("old")
    assert not claims.is_stale("young") and not claims.acquire("young")
    assert json.loads(claims.path("dead").read_text())["pid"] == claims.owner["pid"]


def test_a_run_takes_over_the_cells_of_a_worker_that_died_holding_them(tmp_path, cache_dir):
    from shiftbench.hydra_app import run_experiment
    from shiftbench.runner import expand_cells

    cfg = {"dataset": {"name": "digits", "options": {"n_train": 1000, "n_val": 300, "n_test": 300},
                       "models": ["small_cnn"], "scenarios": [{"target": "test"}]},
           "method": ["source_only"], "model": None, "seed": [0], "grid": {}, "metric": "acc_avg", "device": "cpu",
           "progress": False, "dry_run": False, "cache_dir": str(cache_dir), "store_dir": str(tmp_path / "store"),
           "results_dir": str(tmp_path / "results")}
    [cell] = expand_cells(cfg)
    other = subprocess.Popen(["sleep", "30"])
    claims = Claims(tmp_path / "store")
    claims.owner = {**claims.owner, "pid": other.pid}
    assert claims.acquire(cell.key)
    killer = threading.Timer(1.5, lambda: (other.kill(), other.wait()))  # dies and is reaped
    killer.start()
    try:
        began = time.time()
        counts = run_experiment(cfg)
    finally:
        killer.cancel()
        other.kill()
        other.wait()
    assert time.time() - began >= 1.0  # it waited for the live worker first
    assert counts["ok"] == 1 and counts["elsewhere"] == 0
    assert not claims.path(cell.key).exists()
