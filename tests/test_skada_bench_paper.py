"""The SKADA-Bench reproductions' ``paper`` column holds only figures skada-bench publishes: its v1.0.0
``outputs/shallow_results/simulated/shallow_simulated_results.csv``, whose supervised, importance-weighted and
(for the scorer table's methods and shifts) other scorers' rows are committed as
``tests/fixtures/skada_bench_simulated_published.csv`` (numbers only); and the splits are skada-bench's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench import scorers
from shiftbench.reproductions.skada_bench_scorers import PAPER_SCORERS
from shiftbench.reproductions.skada_bench_simulated import (METHODS, PAPER, SHIFT_SETTINGS, TARGET_ONLY, compare,
                                                            run_shift)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "skada_bench_simulated_published.csv"
#: the published file's names -> ours
METHOD = {"Train Src": "source_only", "Train Tgt": "target_only"}
SHIFT = {"concept_drift": "conditional_shift"}
SCORER = {"supervised": "oracle", "circular_validation": "circular", "deep_embedded_validation": "dev",
          "mix_val_both": "mixval", "soft_neighborhood_density": "snd"}
#: skada-bench's published target-test accuracy of "Train Src" on covariate_shift, random_state 0, per outer split
#: (the first five entries of that row's ``target_accuracy-test-identity``)
SOURCE_ONLY_COVARIATE_SEED0 = [0.85, 0.85, 0.88125, 0.8375, 0.8875]


@pytest.fixture(scope="module")
def published() -> dict[tuple[str, str, str], float]:
    rows = pd.read_csv(FIXTURE)
    return {(METHOD.get(r.estimator, r.estimator), SHIFT.get(r.shift, r.shift), SCORER.get(r.scorer, r.scorer)): value
            for r, value in zip(rows.itertuples(), rows["target_accuracy-test-mean"])}


def test_paper_figures_are_the_published_ones_at_full_precision(published):
    assert set(PAPER) <= set(published)
    assert {k: PAPER[k] for k in PAPER} == {k: published[k] for k in PAPER}
    assert {shift for _, shift, _ in published} == set(SHIFT_SETTINGS)


def test_scorer_table_figures_are_the_published_ones(published):
    assert PAPER_SCORERS and {k: PAPER_SCORERS[k] for k in PAPER_SCORERS} == {k: published[k] for k in PAPER_SCORERS}
    assert {scorer for _, _, scorer in PAPER_SCORERS} == {"oracle", "importance_weighted", "circular", "dev", "mixval",
                                                         "prediction_entropy", "snd"}


@pytest.mark.parametrize("name, figures", [("skada-bench-simulated", PAPER), ("skada-bench-scorers", PAPER_SCORERS)])
def test_committed_tables_hold_only_published_figures_and_their_records_means(name, figures):
    folder = ROOT / "results" / "reproduced" / name
    table, records = pd.read_csv(folder / "table.csv"), pd.read_csv(folder / "records.csv")
    check_paper_column(table, figures)
    means = records.groupby(["method", "shift", "scorer"])["target_accuracy"].mean()
    for r in table.itertuples():
        assert r.ours == round(100 * means[(r.method, r.shift, r.scorer)], 3), (r.method, r.shift, r.scorer)


def test_outer_and_inner_splits_are_skada_benchs_own():
    """Source-only on the covariate shift, generator seed 0: the published per-split accuracies, split for split."""
    rows = run_shift("covariate_shift", ["source_only"], {"oracle": scorers.load("oracle")}, 0, 5, 5, 1.0)
    assert rows["target_accuracy"].round(6).tolist() == SOURCE_ONLY_COVARIATE_SEED0


def test_published_file_has_no_importance_weighted_figure_for_the_references(published):
    for method in ("source_only", "target_only"):
        assert not any((method, shift, "importance_weighted") in d
                       for shift in SHIFT_SETTINGS for d in (published, PAPER))


def check_paper_column(table: pd.DataFrame, published: dict) -> None:
    """Every row's ``paper`` is the published figure (in %, 3 decimals) of its cell, or empty where none is."""
    for r in table.itertuples():
        key = (r.method, r.shift, r.scorer)
        if key in published:
            assert r.paper == round(100 * published[key], 3), key
            assert abs(r.delta - (r.ours - r.paper)) < 1e-6, key
        else:
            assert pd.isna(r.paper) and pd.isna(r.delta), key


def test_compare_puts_only_published_figures_in_paper(published):
    rng = np.random.default_rng(0)
    cells = [(m, s, c) for m in [*METHODS, TARGET_ONLY] for s in SHIFT_SETTINGS
             for c in ("oracle", "importance_weighted")]
    long = pd.DataFrame([{"method": m, "shift": s, "scorer": c, "target_accuracy": rng.uniform()}
                         for m, s, c in cells for _ in range(3)])
    table = compare(long)
    assert len(table) == len(cells) and table["ours"].notna().all()
    check_paper_column(table, published)
    assert table["paper"].notna().sum() == sum(key[2] in ("oracle", "importance_weighted") for key in published)


def test_every_paper_method_has_published_figures_and_every_left_out_cell_a_cost():
    from shiftbench.reproductions.skada_bench_simulated import COSTS, PUBLISHED, TOO_COSTLY

    assert set(PUBLISHED["oracle"]) == set(METHODS) | {"target_only"}
    assert set(PUBLISHED["importance_weighted"]) == set(METHODS) - {"source_only"}
    assert {m for m, _ in TOO_COSTLY} <= set(COSTS) and set(COSTS) <= set(METHODS)
