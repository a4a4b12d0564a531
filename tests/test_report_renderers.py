"""The markdown, CSV and LaTeX renderers of one aggregation: the same numbers, from the records' definition."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from leaderboard_fixtures import synthetic_records
from shiftbench.report import aggregate, failure_notes, render_csv, render_latex, render_markdown
from shiftbench.store import records_frame


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return synthetic_records()


def expected_avg(records: list[dict], dataset: str, method: str) -> float:
    """Definition of ``avg``: per seed, the mean over groups of the mean over each group's scenarios; then the
    mean over seeds."""
    cells: dict[int, dict[str, list[float]]] = {}
    for r in records:
        if (r["cell"]["dataset"], r["cell"]["method"]) == (dataset, method):
            cells.setdefault(r["cell"]["seed"], {}).setdefault(r["scenario_group"], []).append(r["metrics"]["acc_avg"])
    return float(np.mean([np.mean([np.mean(v) for v in groups.values()]) for groups in cells.values()]))


def markdown_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """(dataset, method) -> cells of each row of the markdown table."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    header = rows[0]
    return {(r[0], r[2]): dict(zip(header, r)) for r in rows[1:]}


def test_markdown_page_has_legend_table_notes_and_command(records):
    board = aggregate(records_frame(records), notes=["3 records in s come from other code"])
    text = render_markdown(board, command="shiftbench run seed=[0,1,2]")
    assert text.startswith("# Leaderboard (acc_avg)\n\nRegenerate: `shiftbench run seed=[0,1,2]`\n")
    assert "significantly better/worse than source_only (paired t-test" in text
    assert text.rstrip().endswith("Notes:\n\n- 3 records in s come from other code")
    rows = markdown_rows(text)
    assert len(rows) == 8
    better = rows[("digits", "better")]
    assert better["avg"].startswith(f"{100 * expected_avg(records, 'digits', 'better'):.1f} ± ")
    assert better["avg"].endswith("▲") and rows[("digits", "worse")]["avg"].endswith("▼")
    assert not rows[("digits", "same")]["avg"].endswith(("▲", "▼"))
    assert "Notes:" not in render_markdown(aggregate(records_frame(records)))


def test_csv_is_the_long_table_with_the_definitions_numbers(records):
    long = pd.read_csv(io.StringIO(render_csv(aggregate(records_frame(records)))))
    assert len(long) == 2 * 4 * 3  # datasets x methods x (id_test-c, test, avg)
    row = long[(long["dataset"] == "other") & (long["method"] == "better") & (long["group"] == "avg")].iloc[0]
    assert row["mean"] == pytest.approx(expected_avg(records, "other", "better"))
    assert row["significant"] == 1 and row["reference"] == "source_only" and row["n_seeds"] == 3


def test_latex_has_the_markdown_cells_in_math_mode(records):
    board = aggregate(records_frame(records))
    latex = render_latex(board)
    assert latex.startswith(r"\begin{tabular}") and r"\toprule" in latex and "±" not in latex
    body = [line for line in latex.splitlines() if line.startswith(("digits", "other"))]
    assert len(body) == 8
    rows = markdown_rows(render_markdown(board))
    better = next(line for line in body if line.startswith("digits & m & better"))
    expected = rows[("digits", "better")]["avg"].replace("±", r"$\pm$").replace("▲", r"$^{\blacktriangle}$")
    assert expected in better and r"\{\}" in better  # the empty hparams escaped
    assert "source\\_only" in latex


def test_every_renderer_follows_the_reference(records):
    board = aggregate(records_frame(records), reference="worse")
    assert "significantly better/worse than worse" in render_markdown(board)
    rows = markdown_rows(render_markdown(board))
    assert rows[("digits", "source_only")]["avg"].endswith("▲")
    assert not rows[("digits", "worse")]["avg"].endswith("▲")
    long = pd.read_csv(io.StringIO(render_csv(board)))
    assert set(long["reference"]) == {"worse"}
    assert (long[long["method"] == "source_only"]["significant"] == 1).all()
    assert r"$^{\blacktriangledown}$" not in render_latex(board)  # nothing is worse than the worst method


def test_failed_cells_are_noted():
    records = synthetic_records(datasets=("digits",))
    records[0].update(status="failed", metrics=None, error="RuntimeError: boom")
    frame = records_frame(records)
    notes = failure_notes(frame)
    assert len(notes) == 1 and notes[0].startswith(f"1 of {len(frame)} cells failed")
    assert failure_notes(records_frame(synthetic_records(datasets=("digits",)))) == []
