"""The nycflights dataset: source months vs later months, features known at scheduling time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftbench import datasets
from shiftbench.datasets._flights import data_dir


@pytest.fixture(scope="module")
def flights():
    return datasets.load("nycflights", max_per_month=2000)


def test_splits_follow_the_calendar(flights):
    months = {k: set(s.metadata["month"]) for k, s in flights.splits.items()}
    assert months["train"] == months["id_val"] == months["id_test"] == {1, 2, 3, 4}
    assert months["val"] == {5} and months["test"] == set(range(6, 13))
    assert sum(len(s) for s in flights.splits.values()) == 12 * 2000


def test_labels_are_arrival_delay_over_15_minutes(flights):
    raw = pd.read_csv(data_dir() / "flights.csv.zip", usecols=["arr_delay"]).dropna()
    assert flights.split("test").y.mean() == pytest.approx((raw["arr_delay"] > 15).mean(), abs=0.03)
    x = flights.split("train").x
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.shape[1] == 29
    # one-hot carrier and origin blocks: exactly one active column each
    assert (x[:, -3:].sum(1) == 1).all() and (x[:, -19:-3].sum(1) == 1).all()


def test_evaluate_groups_by_origin(flights):
    s = flights.split("val")
    metrics = flights.evaluate(s, s.y)
    assert metrics["acc_avg"] == 1.0 and metrics["acc_wg"] == 1.0
