"""The results folder: records, the long and the markdown leaderboard of one aggregation, and the figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from leaderboard_fixtures import synthetic_records
from shiftbench.plots import FigureSpec
from shiftbench.report import aggregate, render_csv, render_markdown
from shiftbench.results_folder import write_tables
from shiftbench.store import records_frame


def test_the_folder_holds_records_tables_and_default_figures(tmp_path):
    frame = records_frame(synthetic_records())
    paths = write_tables(frame, tmp_path, "acc_avg", ["a note"], "shiftbench run seed=[0,1,2]")
    assert set(paths) == {"records", "leaderboard", "markdown", "acc_avg_vs_severity", "acc_avg_rank_heatmap"}
    assert all(p.parent == tmp_path and p.exists() for p in paths.values())
    records = pd.read_csv(paths["records"])
    assert len(records) == len(frame) and list(records["key"]) == sorted(frame["key"])
    board = aggregate(frame, "acc_avg", notes=["a note"])
    assert paths["leaderboard"].read_text() == render_csv(board)
    assert paths["markdown"].read_text() == render_markdown(board, "shiftbench run seed=[0,1,2]")
    assert paths["acc_avg_vs_severity"].read_bytes().startswith(b"\x89PNG")


def test_callers_choose_the_figures(tmp_path):
    def seeds_plot(records: pd.DataFrame):
        fig, ax = plt.subplots()
        ax.hist(records["seed"])
        return fig

    figures = [FigureSpec("seeds.png", "seeds", seeds_plot)]
    paths = write_tables(records_frame(synthetic_records()), tmp_path, figures=figures)
    assert set(paths) == {"records", "leaderboard", "markdown", "seeds"}
    assert paths["seeds"] == tmp_path / "seeds.png" and not (tmp_path / "acc_avg_vs_severity.png").exists()
