"""Nightly regression: the tolerance rule, the comparison, the report, and `shiftbench regress` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench import regression
from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError, UnknownNameError
from shiftbench.regression import KEY_COLUMNS, Suite, compare, load_suite, report_markdown, tolerances

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baselines" / "smoke.csv"


def table(values: dict[str, float], metric: str = "acc_avg", n: int = 300) -> pd.DataFrame:
    rows = [{"dataset": "digits", "model": "m", "method": method, "hparams": "{}", "scenario": "test:bs64", "seed": 0,
             "metric": metric, "value": v, "n": n, "commit": "c0ffee"} for method, v in values.items()]
    return pd.DataFrame(rows)


def test_tolerance_is_binomial_standard_error_of_a_difference_or_the_floor():
    t = tolerances(table({"a": 0.9, "b": 1.0, "c": 0.5}), abs_tol=0.005, z=3.0)
    assert t[0] == pytest.approx(3.0 * np.sqrt(2 * 0.9 * 0.1 / 300))
    assert t[1] == 0.005  # a perfect cell has no binomial noise: the floor applies
    assert t[2] == pytest.approx(3.0 * np.sqrt(0.5 / 300))
    assert tolerances(table({"a": 0.9}, metric="nll"), abs_tol=0.01, z=3.0)[0] == 0.01


def test_compare_classifies_every_cell():
    old = table({"drop": 0.90, "wobble": 0.90, "rise": 0.80, "gone": 0.70, "fail": 0.70})
    new = table({"drop": 0.80, "wobble": 0.88, "rise": 0.90, "fail": np.nan, "added": 0.5})
    status = compare(old, new).set_index("method")["status"]
    assert status.to_dict() == {"added": "new", "drop": "regressed", "fail": "missing", "gone": "missing",
                                "rise": "improved", "wobble": "ok"}


def test_lower_is_better_metrics_regress_upwards():
    old, new = table({"m": 0.10}, metric="ece"), table({"m": 0.20}, metric="ece")
    assert compare(old, new, abs_tol=0.01)["status"].tolist() == ["regressed"]
    assert compare(new, old, abs_tol=0.01)["status"].tolist() == ["improved"]


def test_report_names_each_moved_cell_with_old_new_and_commit_range():
    suite = Suite("smoke", ["experiment=smoke"])
    comparison = compare(table({"drop": 0.9, "same": 0.9}), table({"drop": 0.7, "same": 0.9}))
    text = report_markdown(suite, comparison, "aaaa111", "bbbb222")
    assert "**REGRESSION**" in text and "`aaaa111` (baseline) .. `bbbb222` (this run)" in text
    moved = text.split("## Cells that moved")[1]
    assert "drop" in moved and "0.9000" in moved and "0.7000" in moved and "same" not in moved


def test_suites_load_and_unknown_names_list_the_valid_ones():
    assert {"smoke", "nightly"} <= set(regression.suite_names())
    suite = load_suite("smoke")
    assert suite.overrides == ["experiment=smoke"] and suite.tolerance["z"] == 3.0
    with pytest.raises(UnknownNameError, match="valid suites: .*smoke"):
        load_suite("weekly")


def test_suites_compose_through_hydra(tmp_path):
    cfg = regression.compose_config(load_suite("smoke"), tmp_path / "store", tmp_path / "results")
    assert cfg["experiment_name"] == "smoke" and cfg["seed"] == [0, 1] and cfg["store_dir"] == str(tmp_path / "store")
    nightly = regression.compose_config(load_suite("nightly"), tmp_path / "store", tmp_path / "results")
    assert nightly["method"] == ["source_only", "bn_adapt", "lame"] and nightly["grid"]["lame"] == {"affinity": ["knn"], "k": [5]}


def test_a_suite_that_does_not_compose_is_a_clear_error(tmp_path):
    with pytest.raises(ShiftbenchError, match="suite .bad.: unknown config key 'no_such_key' in override 'no_such_key.x=1'; valid keys: .*seed"):
        regression.compose_config(Suite("bad", ["no_such_key.x=1"]), tmp_path, tmp_path)


def test_committed_baseline_has_the_documented_columns():
    baseline = pd.read_csv(BASELINE)
    assert list(baseline.columns) == [*KEY_COLUMNS, "value", "n", "commit"]
    assert len(baseline) == 16 and baseline["value"].between(0, 1).all() and not baseline.duplicated(KEY_COLUMNS).any()


def test_missing_baseline_says_how_to_create_it(tmp_path, capsys):
    assert main(["regress", "--suite", "smoke", "--baseline", str(tmp_path / "none.csv")]) == 2
    assert "--update" in capsys.readouterr().err


@pytest.mark.slow
def test_regress_passes_on_the_committed_baseline_and_fails_on_a_moved_cell(tmp_path, capsys):
    store = tmp_path / "store"
    report = tmp_path / "report.md"
    assert main(["regress", "--suite", "smoke", "--store", str(store), "--report", str(report)]) == 0
    assert "**OK**" in report.read_text()
    moved = pd.read_csv(BASELINE)
    moved.loc[3, "value"] = min(1.0, moved.loc[3, "value"] + 0.2)  # the new run now looks 20 points worse
    tampered = tmp_path / "baseline.csv"
    moved.to_csv(tampered, index=False)
    assert main(["regress", "--suite", "smoke", "--store", str(store), "--baseline", str(tampered),
                 "--report", str(report)]) == 1
    text = report.read_text()
    cell = moved.loc[3]
    row = next(line for line in text.splitlines() if line.startswith("| regressed"))
    assert cell["method"] in row and cell["scenario"] in row and f"{cell['value']:.4f}" in row
    updated = tmp_path / "updated.csv"
    assert main(["regress", "--suite", "smoke", "--store", str(store), "--baseline", str(updated), "--update"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(updated)[KEY_COLUMNS], pd.read_csv(BASELINE)[KEY_COLUMNS])


def test_not_applicable_cells_are_not_guarded_and_failed_ones_have_no_value():
    rows = [{"key": k, "status": st, "dataset": "digits", "model": "m", "method": "bn_adapt", "hparams": "{}",
             "scenario": "test:bs64", "seed": 0, "metric.acc_avg": v}
            for k, st, v in [("a", "ok", 0.9), ("b", "not_applicable", np.nan), ("c", "failed", np.nan)]]
    frame = pd.DataFrame(rows)
    frame.loc[1, "model"], frame.loc[2, "seed"] = "no_bn", 1
    table = regression.cell_table(frame, "acc_avg", {"test:bs64": 100}, "abc")
    assert list(table["model"]) == ["m", "m"] and table["value"].isna().tolist() == [False, True]
