"""Trustworthy tables on the real command line: an edited plugin's old records are not mixed in, a plugin
failing on part of its cells gets no average and no rank and fails the run, broken records are reported.

Each command runs in a fresh ``python`` process whose ``shiftbench.methods`` package also scans a temporary
folder, so a test can write and then edit a plugin file exactly as a user edits ``methods/NAME.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

CLI = ("import sys, shiftbench.methods as m; m.__path__.append(sys.argv.pop(1)); "
       "from shiftbench.cli import main; sys.exit(main(sys.argv[1:]))")

PLUGIN = '''
import numpy as np
from shiftbench.families import OutputAdapter


class EditMe(OutputAdapter):
    """Test plugin whose body the test rewrites."""

    name = "test_edit_me"

    def process(self, batch):
        probs = batch.probs
        {body}
'''
#: version A keeps the source model's predictions, version B shifts every prediction to the next class
SAME, SHIFTED = "return probs", "return np.roll(probs, 1, axis=1)"

HALF_FAILING = '''
from shiftbench.families import OutputAdapter


class HalfFailing(OutputAdapter):
    """Test plugin that keeps the source predictions on the clean target and fails on the label-shifted one."""

    name = "test_half_failing"

    def prepare(self, task):
        if task.target.name == "id_test":
            raise RuntimeError("fails on id_test")

    def process(self, batch):
        return batch.probs
'''


def shiftbench(plugins: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIFTBENCH_CACHE_DIR": os.environ["SHIFTBENCH_CACHE_DIR"]}
    return subprocess.run([sys.executable, "-c", CLI, str(plugins), *args], capture_output=True, text=True,
                          timeout=600, env=env)


def run_args(tmp_path: Path, store: str, methods: str) -> list[str]:
    return ["run", f"method=[{methods}]", "model=[small_cnn]", "seed=[0,1]", "progress=false",
            "+dataset.options.n_train=1000", "+dataset.options.n_val=300", "+dataset.options.n_test=300",
            "dataset.scenarios=[{target:test},{target:id_test,label_shift:0.5}]",
            f"store_dir={tmp_path / store}", f"results_dir={tmp_path / ('results-' + store)}"]


def table(plugins: Path, store: Path) -> tuple[pd.DataFrame, str]:
    out = store.parent / f"{store.name}-table.csv"
    proc = shiftbench(plugins, "table", "--format", "csv", "--store", str(store), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    columns = ["method", "group", "mean", "n_seeds", "n_cells", "n_expected", "complete", "rank"]
    return pd.read_csv(out)[columns].sort_values(["method", "group"]).reset_index(drop=True), proc.stderr


def test_an_edited_plugin_recomputes_its_own_cells_and_its_old_records_leave_the_table(tmp_path, cache_dir):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    source = plugins / "test_edit_me.py"
    source.write_text(PLUGIN.format(body=SAME))
    first = shiftbench(plugins, *run_args(tmp_path, "store", "source_only,test_edit_me"))
    assert first.returncode == 0, first.stderr

    source.write_text(PLUGIN.format(body=SHIFTED))
    second = shiftbench(plugins, *run_args(tmp_path, "store", "source_only,test_edit_me"))
    assert second.returncode == 0, second.stderr
    assert "cells: 4 cached, 4 computed" in second.stdout  # source_only kept, the edited plugin recomputed

    fresh = shiftbench(plugins, *run_args(tmp_path, "fresh", "source_only,test_edit_me"))
    assert fresh.returncode == 0, fresh.stderr
    mixed, notes = table(plugins, tmp_path / "store")
    alone, _ = table(plugins, tmp_path / "fresh")
    pd.testing.assert_frame_equal(mixed, alone)
    edited = mixed[(mixed["method"] == "test_edit_me") & (mixed["group"] == "avg")]["mean"].iloc[0]
    source_only = mixed[(mixed["method"] == "source_only") & (mixed["group"] == "avg")]["mean"].iloc[0]
    assert edited < source_only - 0.3  # the new code's numbers, not an average with the old ones
    assert "4 records" in notes and "method_code changed" in notes

    dry = shiftbench(plugins, "store", "gc", "--dry-run", "--store", str(tmp_path / "store"))
    assert dry.returncode == 0 and dry.stdout.count("would remove") == 4
    gc = shiftbench(plugins, "store", "gc", "--store", str(tmp_path / "store"))
    assert gc.returncode == 0 and len(list((tmp_path / "store" / "records").glob("*.json"))) == 8


def test_a_plugin_failing_on_half_its_cells_gets_no_average_no_rank_and_fails_the_run(tmp_path, cache_dir):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "test_half_failing.py").write_text(HALF_FAILING)
    proc = shiftbench(plugins, *run_args(tmp_path, "store", "source_only,test_half_failing"))
    assert proc.returncode == 1, proc.stderr
    assert "2 of 8 cells failed" in proc.stderr and "re-run the same command" in proc.stderr
    assert "FAILED 2 cells: RuntimeError: fails on id_test" in proc.stderr  # grouped by cause, one line each
    board = (tmp_path / "results-store" / "leaderboard.md").read_text()
    row = next(line for line in board.splitlines() if line.startswith("|") and "test_half_failing" in line)
    assert "0/2 cells" in row and "2/4 cells" in row  # coverage instead of values on id_test and avg
    long, _ = table(plugins, tmp_path / "store")
    failing = long[long["method"] == "test_half_failing"].set_index("group")
    assert failing.loc["test", "complete"] and not failing.loc["avg", "complete"]
    assert pd.isna(failing.loc["avg", "mean"]) and pd.isna(failing.loc["avg", "rank"])
    source_only = long[(long["method"] == "source_only") & (long["group"] == "avg")].iloc[0]
    assert source_only["rank"] == 1 and source_only["n_seeds"] == 2


def test_truncated_and_empty_records_are_reported_by_path(tmp_path, cache_dir):
    from leaderboard_fixtures import synthetic_records, write_store

    store = write_store(tmp_path / "store", synthetic_records(datasets=("digits",)))
    files = sorted((store / "records").glob("*.json"))
    truncated = files[0]
    truncated.write_text(truncated.read_text()[:40])
    (store / "records" / "empty.json").write_text(json.dumps({}))
    proc = shiftbench(tmp_path, "table", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    assert f"unreadable record {truncated}" in proc.stderr and "empty.json: malformed" in proc.stderr
    assert "unreadable record" in proc.stdout  # in the table's notes as well
    # the method that lost a cell is not averaged over what is left
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| digits") and "cells" in line)
    assert "20/21 cells" in row
