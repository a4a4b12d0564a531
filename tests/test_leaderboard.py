"""Leaderboards: CIs, paired tests against source-only, average ranks, oracle marks, CLI (renderers: test_report_renderers.py,
figures: test_plots.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from leaderboard_fixtures import synthetic_frame, synthetic_records, write_store
from shiftbench.cli import main
from shiftbench.report import average_ranks, compare_with_reference, full_leaderboard, marked_wide, paired_p_value


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame()


def test_paired_test_matches_scipy_on_matched_cells(frame):
    comparison = compare_with_reference(frame)
    row = comparison[(comparison["dataset"] == "digits") & (comparison["method"] == "better")
                     & (comparison["group"] == "id_test-c")].iloc[0]
    cells = frame[(frame["dataset"] == "digits") & (frame["group"] == "id_test-c")]
    a = cells[cells["method"] == "better"].sort_values(["scenario", "seed"])["metric.acc_avg"].to_numpy()
    b = cells[cells["method"] == "source_only"].sort_values(["scenario", "seed"])["metric.acc_avg"].to_numpy()
    assert row["n_pairs"] == 18
    assert row["delta"] == pytest.approx((a - b).mean())
    assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    wilcoxon = compare_with_reference(frame, test="wilcoxon")
    w = wilcoxon[(wilcoxon["dataset"] == "digits") & (wilcoxon["method"] == "better") & (wilcoxon["group"] == "id_test-c")]
    assert w["p_value"].iloc[0] == pytest.approx(stats.wilcoxon(a - b).pvalue)


def test_paired_p_value_edge_cases():
    assert paired_p_value(np.zeros(5)) == 1.0
    assert np.isnan(paired_p_value(np.full(4, 0.02)))  # the same gain in every cell: zero variance, no test
    assert np.isnan(paired_p_value(np.array([0.1])))  # one pair: no test


def test_significant_cells_are_marked_in_the_right_direction(frame):
    long = full_leaderboard(frame)
    avg = long[long["group"] == "avg"].set_index(["dataset", "method"])["significant"]
    assert (avg.xs("better", level="method") == 1).all()
    assert (avg.xs("worse", level="method") == -1).all()
    assert (avg.xs("source_only", level="method") == 0).all()
    text = marked_wide(long)
    cell = text[(text["dataset"] == "digits") & (text["method"] == "better")]["avg"].iloc[0]
    assert cell.endswith("▲") and "±" in cell
    assert text[(text["dataset"] == "digits") & (text["method"] == "worse")]["avg"].iloc[0].endswith("▼")


def test_mean_and_ci_over_seeds(frame):
    long = full_leaderboard(frame)
    row = long[(long["dataset"] == "digits") & (long["method"] == "better") & (long["group"] == "test")].iloc[0]
    values = frame[(frame["dataset"] == "digits") & (frame["method"] == "better") & (frame["group"] == "test")]
    v = values.sort_values("seed")["metric.acc_avg"].to_numpy()
    assert row["mean"] == pytest.approx(v.mean())
    assert row["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3))


def test_average_rank_across_datasets(frame):
    long = full_leaderboard(frame)
    ranks = average_ranks(long, "acc_avg").set_index("method")
    assert ranks.loc["better", "avg_rank"] == 1.0 and ranks.loc["worse", "avg_rank"] == 4.0
    assert ranks.loc["source_only", "avg_rank"] + ranks.loc["same", "avg_rank"] == pytest.approx(5.0)
    assert (ranks["n_tasks"] == 2).all()
    # lower-is-better metrics rank the other way round
    err = frame.assign(**{"metric.ece": 1.0 - frame["metric.acc_avg"]})
    assert average_ranks(full_leaderboard(err, "ece"), "ece").set_index("method").loc["better", "avg_rank"] == 1.0


def test_oracle_rows_are_marked_and_not_ranked():
    frame = synthetic_frame(datasets=("digits",))
    oracle = frame[frame["method"] == "better"].assign(scorer="oracle", key=lambda f: f["key"] + "-oracle")
    selected = frame[frame["method"] == "better"].assign(scorer="entropy", key=lambda f: f["key"] + "-entropy")
    frame = pd.concat([frame.assign(scorer=None), selected, oracle], ignore_index=True)
    long = full_leaderboard(frame)
    marked = long[long["oracle"]]
    assert set(marked["method"]) == {"better"} and marked["rank"].isna().all()
    text = marked_wide(long)
    assert "better (oracle)" in set(text["method"]) and "scorer" in text.columns
    assert len(text) == 6  # the four methods without a scorer, better selected by entropy, better by the oracle
    assert set(text["scorer"]) == {"", "entropy", "oracle"}


@pytest.mark.parametrize("fmt,needle", [("md", "▲"), ("csv", "p_value"), ("latex", r"\toprule"), ("html", "<table")])
def test_cli_table_formats(tmp_path, fmt, needle):
    store = write_store(tmp_path / "store", synthetic_records())
    out = tmp_path / f"board.{fmt}"
    assert main(["table", "--format", fmt, "--store", str(store), "--output", str(out)]) == 0
    assert needle in out.read_text()
    if fmt == "csv":
        long = pd.read_csv(out)
        assert {"mean", "ci95", "delta", "p_value", "significant", "avg_rank", "oracle"} <= set(long.columns)


def test_cli_table_without_records_says_what_to_do(tmp_path, capsys):
    assert main(["table", "--store", str(tmp_path / "empty")]) == 2
    assert "run `shiftbench run` first" in capsys.readouterr().err


def test_avg_column_is_tested_on_group_means_so_marks_agree_with_the_shown_average():
    """A method far better on the many corruption cells but worse on the one clean group: pooling every cell
    would call it better while its displayed average (mean over groups) is lower."""
    frame = synthetic_frame(datasets=("digits",))
    corrupted = frame["group"] == "id_test-c"
    tweak = (frame["method"] == "better") & ~corrupted
    frame.loc[tweak, "metric.acc_avg"] -= 0.2  # better by 0.06 on 6 corruption cells, worse by 0.14 on the clean one
    long = full_leaderboard(frame)
    avg = long[(long["group"] == "avg") & (long["method"] == "better")].iloc[0]
    ref = long[(long["group"] == "avg") & (long["method"] == "source_only")].iloc[0]
    assert avg["delta"] == pytest.approx(avg["mean"] - ref["mean"])
    assert avg["delta"] < 0 and avg["n_pairs"] == 6  # 2 groups x 3 seeds


def _one_group(values_by_method: dict[str, list[float]]) -> pd.DataFrame:
    """Records of one (dataset, model, group, scenario) with the given per-seed accuracies per method."""
    from leaderboard_fixtures import synthetic_records

    base = synthetic_records(datasets=("digits",), seeds=(0,))[0]
    records = []
    for method, values in values_by_method.items():
        for seed, value in enumerate(values):
            cell = {**base["cell"], "method": method, "seed": seed}
            records.append({**base, "key": f"{method}-{seed}", "cell": cell, "metrics": {"acc_avg": value}})
    from shiftbench.store import records_frame

    return records_frame(records)


def test_fewer_than_three_seeds_show_their_values_and_identical_seeds_one_replicate():
    long = full_leaderboard(_one_group({"source_only": [0.7, 0.7, 0.7], "lame": [0.8, 0.9, 0.85], "tent": [0.5]}))
    test = long[long["group"] == "test"].set_index("method")
    assert test.loc["source_only", "n_eff"] == 1 and np.isnan(test.loc["source_only", "ci95"])
    text = marked_wide(long).set_index("method")
    assert text.loc["source_only", "test"] == "70.0 (1 eff. of 3)"
    assert text.loc["tent", "test"] == "1/3 cells"  # seeds 1 and 2 are missing
    assert text.loc["source_only", "seeds"] == 3 and text.loc["lame", "seeds"] == 3
    two = full_leaderboard(_one_group({"source_only": [0.7, 0.72], "lame": [0.8, 0.9]}))
    lame = two[(two["group"] == "test") & (two["method"] == "lame")].iloc[0]
    assert lame["n_seeds"] == 2 and np.isnan(lame["ci95"])
    cell = marked_wide(two).set_index("method").loc["lame", "test"]
    assert "±" not in cell and cell.startswith("85.0 (80.0, 90.0)")


def test_intervals_never_leave_the_metric_range():
    long = full_leaderboard(_one_group({"source_only": [1.0, 0.99, 0.94, 1.0]}))
    row = long[long["group"] == "test"].iloc[0]
    assert row["mean"] + row["ci95"] > 1.0 and row["high"] == 1.0 and row["low"] == pytest.approx(row["mean"] - row["ci95"])
    cell = marked_wide(long)["test"].iloc[0]
    assert cell.endswith(", 100.0]") and "±" not in cell


def test_seed_invariant_differences_earn_no_mark():
    """Identical pseudo-replicates (a deterministic method on a fixed target) must not look significant."""
    long = full_leaderboard(_one_group({"source_only": [0.70, 0.70, 0.70], "lame": [0.75, 0.75, 0.75]}))
    lame = long[(long["group"] == "test") & (long["method"] == "lame")].iloc[0]
    assert lame["n_pairs"] == 1 and np.isnan(lame["p_value"]) and lame["significant"] == 0


def test_an_incomplete_row_is_never_ranked_above_a_complete_one():
    frame = synthetic_frame(datasets=("digits",))
    drop = (frame["method"] == "better") & (frame["scenario"] == "test:bs64") & (frame["seed"] == 0)
    frame.loc[drop, "status"] = "failed"
    long = full_leaderboard(frame)
    better = long[long["method"] == "better"].set_index("group")
    assert not better.loc["test", "complete"] and not better.loc["avg", "complete"]
    assert better["rank"].loc[["test", "avg"]].isna().all() and better.loc["id_test-c", "rank"] == 1
    assert better.loc["avg", "n_cells"] == 20 and better.loc["avg", "n_expected"] == 21
    assert long[(long["group"] == "avg") & long["rank"].notna()]["method"].nunique() == 3


def test_equal_values_from_different_data_are_a_coincidence_not_one_replicate():
    frame = _one_group({"source_only": [0.088, 0.088, 0.088]})
    same = full_leaderboard(frame.assign(data_hash="d", model_hash="m"))
    assert same[same["group"] == "test"]["n_eff"].iloc[0] == 1
    drawn = full_leaderboard(frame.assign(data_hash=["d0", "d1", "d2"], model_hash="m"))
    row = drawn[drawn["group"] == "test"].iloc[0]
    assert row["n_eff"] == 3 and row["ci95"] == pytest.approx(0.0, abs=1e-12)
    assert marked_wide(drawn)["test"].iloc[0] == "8.8 ± 0.0"


def test_a_table_does_not_depend_on_the_order_or_keys_of_its_records():
    """Records are read in key order, and keys change with the code; the frame (and every sum behind a
    table) follows the cells instead, so renaming every key changes no figure, not even in the last bit."""
    from shiftbench.store import records_frame

    records = synthetic_records(noise=0.05)
    rekeyed = [{**r, "key": f"{i:020d}"} for i, r in enumerate(reversed(records))]
    a, b = records_frame(records), records_frame(rekeyed)
    cells = ["dataset", "model", "method", "hparams", "scenario", "seed", "metric.acc_avg"]
    pd.testing.assert_frame_equal(a[cells], b[cells], check_exact=True)
    pd.testing.assert_frame_equal(full_leaderboard(a, "acc_avg"), full_leaderboard(b, "acc_avg"), check_exact=True)
