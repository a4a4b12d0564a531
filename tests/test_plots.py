"""Figures: their axes data come from the records' scenario fields and the aggregation's complete rows."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from leaderboard_fixtures import estimator_records, synthetic_records
from shiftbench import plots
from shiftbench.report import full_leaderboard
from shiftbench.store import records_frame


def severity_means(records: list[dict], dataset: str, method: str, **stream) -> dict[int, float]:
    """Definition of a severity curve: per severity, the mean metric over every single-corruption cell."""
    by_severity: dict[int, list[float]] = {}
    for r in records:
        scenario, cell = r["cell"]["scenario"], r["cell"]
        if (cell["dataset"], cell["method"]) != (dataset, method) or "+" in str(scenario.get("corruption")):
            continue
        if scenario.get("severity") is not None and all(scenario.get(k, "iid") == v for k, v in stream.items()):
            by_severity.setdefault(scenario["severity"], []).append(r["metrics"]["acc_avg"])
    return {s: float(np.mean(v)) for s, v in sorted(by_severity.items())}


def lines_of(fig, panel: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {line.get_label(): line.get_data() for line in fig.axes[panel].get_lines()}


def with_scenario(records: list[dict], group: str, name: str, value: float | None = None, **fields) -> list[dict]:
    """Copies of the corrupted records with other scenario fields (a new group), optionally another value."""
    out = []
    for r in records:
        if r["scenario_group"] != "id_test-c":
            continue
        new = copy.deepcopy(r)
        new["cell"]["scenario"].update(fields)
        new.update(key=f"{r['key']}-{group}", scenario_group=group, scenario_name=f"{r['scenario_name']}:{name}")
        if value is not None:
            new["metrics"] = {"acc_avg": value}
        out.append(new)
    return out


def test_severity_curve_has_the_severities_and_the_mean_over_corruptions_and_seeds():
    records = synthetic_records()
    fig = plots.accuracy_vs_severity(records_frame(records))
    assert [ax.get_title() for ax in fig.axes] == ["digits / m", "other / m"]
    lines = lines_of(fig, panel=1)
    assert set(lines) == {"source_only", "better", "worse", "same"}
    for method in lines:
        x, y = lines[method]
        expected = severity_means(records, "other", method)
        assert list(x) == list(expected) == [1, 3, 5]
        assert y == pytest.approx([100 * v for v in expected.values()])


def test_a_continual_stream_over_several_corruptions_is_no_point_of_the_curve():
    records = synthetic_records(datasets=("digits",))
    continual = with_scenario(records, "continual", "continual", value=0.0, corruption="gaussian_noise+contrast")
    fig = plots.accuracy_vs_severity(records_frame(records + continual))
    x, y = lines_of(fig)["better"]
    expected = severity_means(records, "digits", "better")
    assert list(x) == [1, 3, 5] and y == pytest.approx([100 * v for v in expected.values()])


def test_streams_that_differ_get_their_own_lines():
    records = synthetic_records(datasets=("digits",))
    sorted_stream = with_scenario(records, "sorted", "class_sorted", order="class_sorted")
    for r in sorted_stream:
        r["metrics"] = {"acc_avg": r["metrics"]["acc_avg"] - 0.1}
    lines = lines_of(plots.accuracy_vs_severity(records_frame(records + sorted_stream)))
    assert {"better order=iid", "better order=class_sorted"} <= set(lines) and len(lines) == 8
    for order, stream in (("iid", records), ("class_sorted", sorted_stream)):
        expected = severity_means(stream, "digits", "better", order=order)
        assert lines[f"better order={order}"][1] == pytest.approx([100 * v for v in expected.values()])


def test_a_row_with_a_failed_cell_has_no_curve():
    records = synthetic_records(datasets=("digits",))
    failed = next(r for r in records if r["cell"]["method"] == "worse" and r["cell"]["scenario"]["severity"] == 3)
    failed.update(status="failed", metrics=None, error="RuntimeError: boom")
    assert set(lines_of(plots.accuracy_vs_severity(records_frame(records)))) == {"source_only", "better", "same"}


def test_no_corrupted_cells_no_severity_figure():
    clean = [r for r in synthetic_records() if r["cell"]["scenario"]["corruption"] is None]
    assert plots.accuracy_vs_severity(records_frame(clean)) is None


def test_rank_heatmap_holds_the_ranks_of_the_long_table():
    long = full_leaderboard(records_frame(synthetic_records()))
    image = plots.rank_heatmap(long).axes[0].images[0].get_array()
    assert image.shape == (4, 6)  # 4 methods x (2 datasets x (id_test-c, test, avg))
    assert image[0].tolist() == [1.0] * 6 and image[-1].tolist() == [4.0] * 6  # better first, worse last


def test_estimated_against_realised_plots_each_estimator_cell():
    fig = plots.estimated_vs_realised(records_frame(estimator_records()))
    offsets = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(offsets, [[88, 90], [60, 70], [55, 50]])
    assert plots.estimated_vs_realised(records_frame(synthetic_records())) is None  # no estimator records


def test_default_figures_are_built_where_there_is_something_to_plot():
    built = plots.build_figures(plots.default_figures("acc_avg"), records_frame(synthetic_records()))
    assert [spec.file_name for spec, _ in built] == ["acc_avg_vs_severity.png", "acc_avg_rank_heatmap.png"]
    assert plots.png_bytes(built[0][1]).startswith(b"\x89PNG")
