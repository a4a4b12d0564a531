"""The runner: resumable after SIGKILL, failures isolated, no duplicates, clear errors on bad names."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest

from shiftbench import methods
from shiftbench.errors import UnknownNameError
from shiftbench.families import Batch, OutputAdapter
from shiftbench.hyperparameters import Float
from shiftbench.hydra_app import CellsFailed, run_experiment
from shiftbench.runner import expand_cells
from shiftbench.store import RecordStore


class SlowTemperature(OutputAdapter):
    """Test plugin: sharpens probabilities with a temperature, slowly (so a run can be killed mid-way)."""

    name = "test_slow_temperature"
    hyperparameters = {"temperature": Float(1.0, above=0)}
    grid = {"temperature": [0.5, 1.0, 2.0]}

    def process(self, batch: Batch):
        time.sleep(0.01)
        p = batch.probs ** (1.0 / self.temperature)
        return p / p.sum(1, keepdims=True)


class Exploding(OutputAdapter):
    """Test plugin that always raises."""

    name = "test_exploding"

    def process(self, batch: Batch):
        raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def test_plugins():
    """The test plugins above, registered for each test of this module only."""
    with methods.registry.temporarily(SlowTemperature, Exploding):
        yield


def test_a_plugin_registered_for_a_test_is_gone_after_it():
    class Passing(OutputAdapter):
        name = "test_passing"

        def process(self, batch: Batch):
            return batch.probs

    with methods.registry.temporarily(Passing, SlowTemperature):
        assert methods.registry.get("test_passing") is Passing
    with pytest.raises(UnknownNameError):
        methods.registry.get("test_passing")
    assert methods.registry.get("test_slow_temperature") is SlowTemperature  # registered before: it stays


def config(tmp_path, cache_dir, store: str, method=("test_slow_temperature",), seeds=(0, 1)) -> dict:
    return {
        "dataset": {"name": "digits", "options": {"n_train": 1000, "n_val": 300, "n_test": 300},
                    "models": ["small_cnn"], "stream": {"batch_size": 50, "order": "iid"},
                    "scenarios": [{"target": "test"}, {"target": "id_test", "label_shift": [0.5, 5.0]}]},
        "method": list(method), "model": None, "seed": list(seeds), "grid": {}, "metric": "acc_avg",
        "device": "cpu", "progress": False, "dry_run": False, "cache_dir": str(cache_dir),
        "store_dir": str(tmp_path / store), "results_dir": str(tmp_path / f"results-{store}"),
    }


def _run_in_child(cfg):
    with methods.registry.temporarily(SlowTemperature, Exploding):  # a spawned process registers its own
        run_experiment(cfg)


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, cache_dir):
    reference = config(tmp_path, cache_dir, "reference")
    run_experiment(reference)  # also trains and caches the models, so the child only runs cells
    n_cells = len(expand_cells(reference))

    interrupted = config(tmp_path, cache_dir, "interrupted")
    records_dir = tmp_path / "interrupted" / "records"
    child = multiprocessing.get_context("spawn").Process(target=_run_in_child, args=(interrupted,))
    child.start()
    deadline = time.time() + 120
    while time.time() < deadline and len(list(records_dir.glob("*.json"))) < n_cells // 3:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    done_before = {p.name: p.stat().st_mtime_ns for p in records_dir.glob("*.json")}
    assert 0 < len(done_before) < n_cells, "the kill must land half-way through the run"

    counts = run_experiment(interrupted)
    assert counts["cached"] == len(done_before)  # finished cells are not recomputed
    assert counts["ok"] == n_cells - len(done_before)
    for name, mtime in done_before.items():
        assert (records_dir / name).stat().st_mtime_ns == mtime

    ours = pd.read_csv(tmp_path / "results-interrupted" / "leaderboard.csv")
    theirs = pd.read_csv(tmp_path / "results-reference" / "leaderboard.csv")
    pd.testing.assert_frame_equal(ours, theirs)
    records = pd.read_csv(tmp_path / "results-interrupted" / "records.csv")
    assert len(records) == n_cells and records["key"].is_unique
    assert not list(records_dir.glob(".*.tmp"))  # atomic writes leave no partial files


def test_failing_plugin_marks_its_cell_and_the_run_goes_on(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "mixed", method=("source_only", "test_exploding"), seeds=(0,))
    with pytest.raises(CellsFailed, match="3 of 6 cells failed") as failed:
        run_experiment(cfg)
    counts = failed.value.counts
    assert counts["failed"] == 3 and counts["ok"] == 3
    records = RecordStore(cfg["store_dir"]).records()
    failed = [r for r in records if r["status"] == "failed"]
    assert all("RuntimeError: boom" in r["error"] for r in failed)
    ok = [r for r in records if r["status"] == "ok"]
    assert all(0.0 <= r["metrics"]["acc_avg"] <= 1.0 for r in ok)
    # failed cells are retried by the next run, finished ones are not
    with pytest.raises(CellsFailed) as failed_again:
        run_experiment(cfg)
    assert failed_again.value.counts["cached"] == 3 and failed_again.value.counts["failed"] == 3


def test_not_applicable_cells_are_recorded_not_failed(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "na", method=("bn_adapt",), seeds=(0,))
    cfg["model"] = ["ccexam_mnist"]  # no BatchNorm layers
    counts = run_experiment(cfg)
    assert counts["not_applicable"] == 3 and counts["failed"] == 0
    assert "no BatchNorm" in RecordStore(cfg["store_dir"]).records()[0]["error"]


def test_a_run_counts_where_its_time_went(tmp_path, cache_dir):
    """Each phase of a cell is timed, corrupting is told apart from the rest of materialising a target, and
    the phases of a cell sum to no more than the seconds its record reports (plus its record write)."""
    cfg = config(tmp_path, cache_dir, "phases", method=("source_only",), seeds=(0,))
    cfg["dataset"]["scenarios"] = [{"target": "id_test", "corruption": "fog", "severity": 2}]
    counts = run_experiment(cfg)
    for phase in ("target", "method", "metric", "store", "dataset"):
        assert counts[f"{phase}_seconds"] > 0, phase
    assert counts["scoring_seconds"] == 0  # no selection stage in this run
    assert 0 < counts["corruption_seconds"] <= counts["target_seconds"]
    (record,) = RecordStore(cfg["store_dir"]).records()
    in_cell = sum(counts[f"{p}_seconds"] for p in ("target", "method", "metric", "scoring"))
    assert in_cell <= record["seconds"]
    again = run_experiment(cfg)  # fully cached: nothing computed, nothing corrupted
    assert again["cached"] == 1 and again["corruption_seconds"] == again["target_seconds"] == 0


def test_the_cache_times_what_it_computes(tmp_path):
    from shiftbench.cache import ArrayCache

    cache = ArrayCache(tmp_path)

    def slow():
        time.sleep(0.05)
        return {"x": np.zeros(3)}

    cache.get_or_compute("corrupted", {"k": 1}, slow)
    cache.get_or_compute("corrupted", {"k": 1}, slow)  # a hit: not timed
    cache.get_or_compute("outputs", {"k": 2}, lambda: {"x": np.ones(2)})
    assert cache.compute_seconds["corrupted"] >= 0.05 and set(cache.compute_seconds) == {"corrupted", "outputs"}


def test_records_carry_provenance(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "prov", method=("source_only",), seeds=(0,))
    run_experiment(cfg)
    rows = pd.read_csv(tmp_path / "results-prov" / "records.csv")
    for column in ("git_commit", "config_hash", "data_hash", "model_hash", "packages", "seed"):
        assert rows[column].notna().all(), column
    assert "torch" in json.loads(rows["packages"][0])


def test_methods_never_receive_target_labels(tmp_path, cache_dir):
    seen = {}

    class Spy(OutputAdapter):
        name = "test_spy"

        def prepare(self, task):
            seen["target"] = task.target

        def process(self, batch: Batch):
            return batch.probs

    with methods.registry.temporarily(Spy):
        run_experiment(config(tmp_path, cache_dir, "spy", method=("test_spy",), seeds=(0,)))
    target = seen["target"]
    assert not hasattr(target, "y")
    assert "y" not in target.metadata.columns
    closure = [c.cell_contents for c in target._inputs.__closure__ or ()]
    assert not any(hasattr(getattr(obj, "__self__", obj), "y") for obj in closure), "inputs must not reach the split"


@pytest.mark.parametrize("field, value, kind", [
    ("method", ["no_such_method"], "method"),
    ("model", ["no_such_model"], "model"),
])
def test_unknown_names_list_the_valid_ones(tmp_path, cache_dir, field, value, kind):
    cfg = config(tmp_path, cache_dir, "bad")
    cfg[field] = value
    with pytest.raises(UnknownNameError, match=f"unknown {kind}.*valid {kind}s: .*"):
        expand_cells(cfg)


def test_unknown_dataset_lists_the_valid_ones(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "bad")
    cfg["dataset"]["name"] = "nope"
    with pytest.raises(UnknownNameError, match="valid datasets: .*digits"):
        expand_cells(cfg)


def test_grid_overrides_expand_and_unknown_hyperparameters_are_rejected(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "grid", seeds=(0,))
    assert len(expand_cells(cfg)) == 3 * 3
    cfg["grid"] = {"test_slow_temperature": {"temperature": [1.0]}}
    assert len(expand_cells(cfg)) == 3
    cfg["grid"] = {"test_slow_temperature": {"temp": [1.0]}}
    with pytest.raises(Exception, match="valid: \\['temperature'\\]"):
        expand_cells(cfg)


def test_bad_method_output_is_caught_at_the_boundary(tmp_path, cache_dir):
    class NaNs(OutputAdapter):
        name = "test_nans"

        def process(self, batch: Batch):
            return np.full_like(batch.probs, np.nan)

    cfg = config(tmp_path, cache_dir, "nans", method=("test_nans",), seeds=(0,))
    with methods.registry.temporarily(NaNs), pytest.raises(CellsFailed):
        run_experiment(cfg)
    errors = [r["error"] for r in RecordStore(cfg["store_dir"]).records()]
    assert all("NaN" in e and "test_nans" in e for e in errors)


def test_an_unreadable_record_is_set_aside_with_a_warning_and_its_cell_recomputed(tmp_path, cache_dir):
    cfg = config(tmp_path, cache_dir, "repair", method=("source_only",), seeds=(0,))
    run_experiment(cfg)
    records = RecordStore(cfg["store_dir"])
    victim = records.path(expand_cells(cfg)[0].key)
    victim.write_text(victim.read_text()[:30])
    with pytest.warns(UserWarning, match=f"unreadable cache file {victim}"):
        counts = run_experiment(cfg)
    assert counts["ok"] == 1 and counts["cached"] == 2
    assert victim.with_name(victim.name + ".corrupt").exists() and records.load(victim.stem)["status"] == "ok"
