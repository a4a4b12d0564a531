"""A run's results folder, and the table formats of ``shiftbench table``.

The folder holds ``records.csv`` (every cell with its provenance), ``leaderboard.csv`` (the long
table), ``leaderboard.md`` (what ``shiftbench run`` prints, and ``shiftbench table --format md``
prints for the same records) and one PNG per figure that has something to plot. The figures are a
list of :class:`~shiftbench.plots.FigureSpec`, so a caller adds its own without editing this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import pandas as pd

from shiftbench.cache import atomic_write_bytes, atomic_write_text
from shiftbench.report import Leaderboard, aggregate, render_csv, render_latex, render_markdown

if TYPE_CHECKING:
    from shiftbench.plots import FigureSpec


def render_html(board: Leaderboard) -> str:
    """:func:`shiftbench.leaderboard_html.render_html` (imported here: matplotlib, for the text formats' sake)."""
    from shiftbench.leaderboard_html import render_html as render

    return render(board)


#: ``shiftbench table --format`` -> the renderer of that format
RENDERERS: dict[str, Callable[[Leaderboard], str]] = {"md": render_markdown, "csv": render_csv, "latex": render_latex,
                                                      "html": render_html}


def write_tables(frame: pd.DataFrame, out_dir: Path | str, metric: str = "acc_avg", notes: Sequence[str] = (),
                 command: str | None = None, figures: Sequence[FigureSpec] | None = None,
                 board: Leaderboard | None = None) -> dict[str, Path]:
    """Write the results folder of the records in ``frame`` atomically: records.csv, leaderboard.csv,
    leaderboard.md (with ``notes`` and the ``command`` that regenerates it) and ``figures`` (default:
    :func:`~shiftbench.plots.default_figures` of ``metric``). Returns the written paths by name:
    ``records``, ``leaderboard``, ``markdown`` and each figure's file stem. ``board`` is the leaderboard to
    write when the caller has built another one than :func:`~shiftbench.report.aggregate` of ``frame``
    (a selection leaderboard)."""
    from shiftbench.plots import build_figures, default_figures, png_bytes  # matplotlib

    out = Path(out_dir)
    board = aggregate(frame, metric, notes=notes) if board is None else board
    paths = {"records": out / "records.csv", "leaderboard": out / "leaderboard.csv", "markdown": out / "leaderboard.md"}
    records = frame.drop(columns=["details"], errors="ignore")  # per-chunk rows: in the store and the figures
    atomic_write_text(paths["records"], records.sort_values("key").to_csv(index=False) if not frame.empty else "")
    atomic_write_text(paths["leaderboard"], render_csv(board))
    atomic_write_text(paths["markdown"], render_markdown(board, command))
    specs = default_figures(metric) if figures is None else figures
    for spec, fig in build_figures(specs, frame):
        paths[Path(spec.file_name).stem] = out / spec.file_name
        atomic_write_bytes(paths[Path(spec.file_name).stem], png_bytes(fig))
    return paths
