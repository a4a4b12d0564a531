"""`shiftbench reproduce dw-gcs`: the shipped data, the authors' protocol and the quick table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftbench.cli import main
from shiftbench.reproductions import dw_gcs

ROWS = {"Blood": (748, 3), "BreastCancer": (683, 9), "Haberman": (306, 3), "Ringnorm": (7400, 20)}


@pytest.mark.parametrize("name", dw_gcs.DATASETS)
def test_shipped_data_and_attribution(name):
    X, Z, y = dw_gcs.load(name)
    assert X.shape == ROWS[name] and set(np.unique(y)) == {0, 1}
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0, ddof=1), 1)
    attribution = dw_gcs.data_file(name).parent.joinpath("ATTRIBUTION.md").read_text()
    assert name in attribution and "CC BY 4.0" in attribution


def test_splits_follow_the_protocol():
    X, Z, y = dw_gcs.load("BreastCancer")
    train, test = dw_gcs.split("BreastCancer", X, Z, "feature2", np.random.default_rng([1, 1, 0]))
    assert len(train) == len(test) == 100 and not set(train) & set(test)
    # the selection favours low raw scores on the test side
    assert (X[train, 1] <= 5).mean() < (X[test, 1] <= 5).mean()
    X, Z, y = dw_gcs.load("Haberman")
    again = [dw_gcs.split("Haberman", X, Z, "pc1", np.random.default_rng([2, 3, 4])) for _ in range(2)]
    np.testing.assert_array_equal(again[0][0], again[1][0])
    train, test = again[0]
    assert abs(len(train) - len(test)) < 40 and len(train) + len(test) < len(X) / 2 + 2


def test_the_bandwidth_is_the_authors():
    # their README's table: Blood 0.7491, Haberman 1.3024, Ringnorm 3.8299
    assert dw_gcs.bandwidth(dw_gcs.load("Haberman")[1]) == pytest.approx(1.3024, abs=1e-4)
    assert dw_gcs.bandwidth(dw_gcs.load("Blood")[1]) == pytest.approx(0.7491, abs=1e-4)


def test_authors_figures_cover_every_cell():
    for name in dw_gcs.DATASETS:
        for shift in dw_gcs.SHIFTS:
            for method in ("dwgcs", "kmm_mrc", "mrc"):
                error, repetitions = dw_gcs.THEIRS[(name, shift, method)]
                assert 0 < error < 0.6 and 1 <= repetitions <= dw_gcs.REPETITIONS


def test_quick_reproduction_writes_ours_paper_delta(tmp_path):
    assert main(["reproduce", "dw-gcs", "--quick", "--output", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "dw-gcs-quick" / "table.csv")
    assert table.columns.tolist() == ["dataset", "shift", "method", "splits", "ours", "paper", "delta"]
    assert set(table["method"]) == set(dw_gcs.METHODS) and set(table["shift"]) == {"feature1", "all"}
    theirs = table.dropna(subset=["paper"])
    assert set(theirs["method"]) == {"dwgcs", "kmm_mrc", "mrc"}
    np.testing.assert_allclose(theirs["delta"], theirs["ours"] - theirs["paper"], atol=1e-4)
    records = pd.read_csv(tmp_path / "dw-gcs-quick" / "records.csv")
    assert len(records) == 2 * len(dw_gcs.METHODS) and (records["failed_D"].dropna() == 0).all()
