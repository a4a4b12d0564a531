"""Calendar chunks (``Scenario.chunk_by``): one chunk per value of a visible metadata column, in sorted
order; label and invisible columns refused in one line; per-chunk details stored in a runner record."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiftbench.dataset import load_for_seed
from shiftbench.datasets.nycflights import NYCFlights
from shiftbench.errors import ShiftbenchError
from shiftbench.models import build_model
from shiftbench.chunk_figure import chunk_estimates_figure
from shiftbench.scenarios import Scenario, batch_labels, check_chunk_columns, expand_scenarios
from shiftbench.store import RecordStore

MONTHS = np.array([7, 5, 12, 5, 7, 6, 12, 12, 6, 5, 7, 7])
Y = np.arange(len(MONTHS)) % 2
VISIBLE = pd.DataFrame({"month": MONTHS, "origin": ["EWR", "JFK", "LGA"] * 4})


def one_line_error(call) -> str:
    with pytest.raises(ShiftbenchError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_one_chunk_per_month_in_sorted_order():
    batches = Scenario(chunk_by="month").batches(Y, seed=0, visible=VISIBLE)
    assert batch_labels(batches) == ["5", "6", "7", "12"]
    for label, index in zip(batch_labels(batches), batches):
        assert sorted(index) == list(np.flatnonzero(MONTHS == int(label)))
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(len(MONTHS)))


def test_order_within_a_chunk_follows_order_and_seed():
    sorted_chunks = Scenario(chunk_by="month", order="class_sorted").batches(Y, 0, VISIBLE)
    assert all(np.all(np.diff(Y[index]) >= 0) for index in sorted_chunks)
    many = np.repeat([1, 2], 50)
    iid = [Scenario(chunk_by="month").batches(np.zeros(100, int), seed, pd.DataFrame({"month": many}))
           for seed in (1, 1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(iid[0], iid[1]))
    assert not np.array_equal(iid[0][0], iid[2][0])
    assert sorted(iid[0][0]) == list(range(50))


def test_domain_sequence_is_chunked_per_domain():
    y = np.concatenate([Y, Y])
    visible = pd.concat([VISIBLE, VISIBLE], ignore_index=True)
    batches = Scenario(corruption="fog+snow", severity=2, chunk_by="month").batches(y, 0, visible)
    assert batch_labels(batches) == [f"{d}/{m}" for d in ("fog", "snow") for m in (5, 6, 7, 12)]
    assert all(index.min() >= len(Y) for index in batches[4:])


def test_name_and_cell_fields():
    chunked = Scenario(target="test", chunk_by="month")
    assert chunked.name == "test:by-month"
    assert chunked.as_dict()["chunk_by"] == "month"
    assert "chunk_by" not in Scenario(target="test").as_dict()  # existing scenarios keep their cell keys
    assert batch_labels(Scenario(batch_size=5).batches(Y, 0)) == ["0", "1", "2"]


def test_stream_batch_size_gives_way_but_an_explicit_one_is_refused():
    (s,) = expand_scenarios([{"target": "test", "chunk_by": "month"}], defaults={"batch_size": 1000, "order": "iid"})
    assert s.chunk_by == "month" and s.name == "test:by-month"
    assert "batch_size" in one_line_error(lambda: expand_scenarios([{"chunk_by": "month", "batch_size": 64}]))
    assert "batch_size" in one_line_error(lambda: Scenario(chunk_by="month", batch_size=500))
    assert "dirichlet" in one_line_error(lambda: Scenario(chunk_by="month", order="dirichlet"))


def test_label_and_invisible_columns_are_refused_in_one_line():
    assert "label column" in one_line_error(lambda: Scenario(chunk_by="y"))
    assert "label column" in one_line_error(lambda: expand_scenarios([{"chunk_by": "label"}]))
    message = one_line_error(lambda: check_chunk_columns([Scenario(chunk_by="dep_delay")], NYCFlights))
    assert "'dep_delay'" in message and "month" in message
    check_chunk_columns([Scenario(chunk_by="month"), Scenario()], NYCFlights)
    message = one_line_error(lambda: Scenario(chunk_by="carrier").batches(Y, 0, VISIBLE))
    assert "'carrier'" in message and "month, origin" in message
    assert "visible" in one_line_error(lambda: Scenario(chunk_by="month").batches(Y, 0))


def test_runner_stores_per_month_details(tmp_path, cache_dir):
    from shiftbench.hydra_app import run_experiment

    options = {"max_per_month": 60}
    cfg = {"dataset": {"name": "nycflights", "options": options, "models": ["tabular_logistic"],
                       "stream": {"batch_size": 1000, "order": "iid"},
                       "scenarios": [{"target": "test", "chunk_by": "month"}]},
           "method": ["reference_accuracy"], "model": None, "seed": [0], "grid": {}, "metric": "mae_acc",
           "device": "cpu", "progress": False, "dry_run": False, "cache_dir": str(cache_dir),
           "store_dir": str(tmp_path / "store"), "results_dir": str(tmp_path / "results")}
    run_experiment(cfg)
    (record,) = RecordStore(tmp_path / "store").records()
    details = pd.DataFrame(record["details"])
    assert record["scenario_name"] == "test:by-month"
    assert list(details["label"]) == [str(m) for m in range(6, 13)] and list(details["chunk"]) == list(range(7))

    dataset = load_for_seed("nycflights", options, 0)
    model = build_model("tabular_logistic", dataset, 0, cache_dir)
    predicted = lambda split: model.forward_arrays(split.inputs())["logits"].argmax(1)
    test, reference = dataset.split("test"), dataset.split("id_val")
    correct = pd.Series(predicted(test) == test.y).groupby(test.metadata["month"].to_numpy())
    np.testing.assert_allclose(details["realised"], correct.mean().to_numpy(), atol=1e-12)
    assert list(details["n"]) == list(correct.size())
    np.testing.assert_allclose(details["estimate"], np.mean(predicted(reference) == reference.y), atol=1e-12)
    assert record["metrics"]["mae_acc"] == pytest.approx(np.mean(np.abs(details["estimate"] - details["realised"])))
    assert json.loads(json.dumps(record["details"])) == record["details"]


def details_record(method: str, seed: int, scenario: str, months: list[int], estimate: list[float],
                   realised: list[float]) -> dict:
    return {"status": "ok", "dataset": "nycflights", "model": "tabular_logistic", "method": method, "hparams": "{}",
            "seed": seed, "scenario": scenario, "scenario.chunk_by": "month",
            "details": [{"chunk": i, "label": str(m), "n": 10, "estimate": e, "realised": r}
                        for i, (m, e, r) in enumerate(zip(months, estimate, realised))]}


def test_monitoring_figure_draws_means_over_seeds_in_calendar_order():
    frame = pd.DataFrame([
        details_record("doc", 0, "test:by-month", [6, 12, 10], [0.7, 0.5, 0.6], [0.8, 0.4, 0.6]),
        details_record("doc", 1, "test:by-month", [6, 12, 10], [0.9, 0.7, 0.6], [0.6, 0.6, 0.6]),
        details_record("doc", 0, "val:by-month", [5], [0.75], [0.7]),
        details_record("doc", 1, "val:by-month", [5], [0.85], [0.9]),
    ])
    fig = chunk_estimates_figure(frame)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "6", "10", "12"]
    realised, doc = ax.get_lines()
    np.testing.assert_allclose(realised.get_ydata(), [80, 70, 60, 50])
    np.testing.assert_allclose(doc.get_ydata(), [80, 80, 60, 60])
    assert chunk_estimates_figure(frame.assign(**{"scenario.chunk_by": None})) is None
    assert chunk_estimates_figure(frame.drop(columns="details")) is None
