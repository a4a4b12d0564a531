"""A static, self-contained HTML leaderboard: the marked table with an inline column sorter and the
figures embedded as base64 PNG (no external scripts, styles or images, so the file can be mailed or
uploaded as a CI artifact). The page itself, its styles and its sorter are the template
``shiftbench/templates/leaderboard.html``; this module fills in the title, legend, table, notes and figures.

:func:`render_html` renders a :class:`~shiftbench.report.Leaderboard`; :func:`html_page` puts any wide
table (every column it has, oracle rows styled) on such a page, e.g. a selection-aware leaderboard.

Clicking a header sorts by that column (numbers by their leading value, text alphabetically;
clicking again reverses). Opening the page with ``#sort=<column index>`` (``#sort=-<index>`` for
descending) sorts on load, and after loading the body's ``data-images-rendered`` counts the figures
the browser decoded: that is how a headless-browser test checks the page.
"""

from __future__ import annotations

import base64
import html
import re
from importlib import resources
from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from shiftbench.plots import FigureSpec, build_figures, default_figures, png_bytes
from shiftbench.report import Leaderboard, legend

#: the page (styles and the sorter inline), with ``{{name}}`` placeholders filled by :func:`html_page`
PAGE_TEMPLATE = "leaderboard.html"


def page_template() -> str:
    """The text of the page template, a package-data file of ``shiftbench/templates/``."""
    return resources.files("shiftbench").joinpath("templates", PAGE_TEMPLATE).read_text(encoding="utf-8")


def fill(template: str, **values: str) -> str:
    """``template`` with each ``{{name}}`` replaced by ``values[name]``, in one pass (a value holding
    ``{{...}}`` is left as it is)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def figure_tag(fig: Figure, caption: str) -> str:
    """An ``<figure>`` with the figure inlined as a base64 PNG."""
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def is_oracle_row(row: pd.Series) -> bool:
    """Whether a text-table row is labelled as selected with target labels (a cell ending in ``(oracle)``)."""
    return any(str(v).endswith("(oracle)") for v in row)


def table_html(table: pd.DataFrame) -> str:
    """A wide text table (every column it has) as an HTML table with id ``leaderboard``; oracle rows get
    class ``oracle``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        css = ' class="oracle"' if is_oracle_row(row) else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    return f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def html_page(table: pd.DataFrame, legend_text: str, title: str = "shiftbench leaderboard", notes: Sequence[str] = (),
              figures: Sequence[tuple[Figure, str]] = ()) -> str:
    """The whole page around a wide ``table``: title, legend, the sortable table, ``notes`` (records left out,
    failed cells) and the ``(figure, caption)`` pairs."""
    listed = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return fill(page_template(), title=html.escape(title), legend=html.escape(legend_text), table=table_html(table),
                notes=f"<ul class=\"notes\">{listed}</ul>\n" if listed else "",
                figures="\n".join(figure_tag(fig, caption) for fig, caption in figures))


def render_html(board: Leaderboard, figures: Sequence[FigureSpec] | None = None,
                title: str = "shiftbench leaderboard") -> str:
    """The HTML page of ``board``: its marked table compared with its reference, its notes and ``figures``
    (default: :func:`~shiftbench.plots.default_figures` of its metric)."""
    specs = default_figures(board.metric) if figures is None else figures
    legend_text = " ".join([*board.preface, legend(board.metric, board.reference, board.test)])
    return html_page(board.wide(board.long), legend_text, board.title or title, board.notes,
                     [(fig, spec.caption) for spec, fig in build_figures(specs, board.frame)])
