"""The SKADA-Bench reproductions' ``paper`` column holds only figures skada-bench publishes: its v1.0.0
``outputs/shallow_results/simulated/shallow_simulated_results.csv``, whose supervised and importance-weighted
rows are committed as ``tests/fixtures/skada_bench_simulated_published.csv`` (numbers only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench.reproductions.skada_bench_simulated import METHODS, PAPER, SHIFT_SETTINGS, TARGET_ONLY, compare

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "skada_bench_simulated_published.csv"
#: the published file's names -> ours
METHOD = {"Train Src": "source_only", "Train Tgt": "target_only"}
SHIFT = {"concept_drift": "conditional_shift"}
SCORER = {"supervised": "oracle"}


@pytest.fixture(scope="module")
def published() -> dict[tuple[str, str, str], float]:
    rows = pd.read_csv(FIXTURE)
    return {(METHOD.get(r.estimator, r.estimator), SHIFT.get(r.shift, r.shift), SCORER.get(r.scorer, r.scorer)): value
            for r, value in zip(rows.itertuples(), rows["target_accuracy-test-mean"])}


def test_paper_figures_are_the_published_ones_at_full_precision(published):
    assert set(PAPER) <= set(published)
    assert {k: PAPER[k] for k in PAPER} == {k: published[k] for k in PAPER}
    assert {shift for _, shift, _ in published} == set(SHIFT_SETTINGS)


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
    assert table["paper"].notna().sum() == len(published)


def test_every_paper_method_has_published_figures_and_every_left_out_cell_a_cost():
    from shiftbench.reproductions.skada_bench_simulated import COSTS, PUBLISHED, TOO_COSTLY

    assert set(PUBLISHED["oracle"]) == set(METHODS) | {"target_only"}
    assert set(PUBLISHED["importance_weighted"]) == set(METHODS) - {"source_only"}
    assert {m for m, _ in TOO_COSTLY} <= set(COSTS) and set(COSTS) <= set(METHODS)
