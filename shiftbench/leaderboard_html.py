"""A static, self-contained HTML leaderboard: the marked table with an inline column sorter and the
figures embedded as base64 PNG (no external scripts, styles or images, so the file can be mailed or
uploaded as a CI artifact).

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
from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from shiftbench.plots import FigureSpec, build_figures, default_figures, png_bytes
from shiftbench.report import Leaderboard, legend

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
tr.oracle td { font-style: italic; background: #fff6e0; }
figure { display: inline-block; margin: 1em 1em 0 0; }
p.legend { max-width: 60em; font-size: 0.85em; color: #555; }
"""

_SORTER = """
(function () {
  var table = document.getElementById("leaderboard");
  function key(text) {
    var m = text.trim().match(/^-?\\d+(\\.\\d+)?/);
    return m ? [0, parseFloat(m[0]), ""] : [1, 0, text.trim().toLowerCase()];
  }
  function sortBy(index, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index].textContent), y = key(b.cells[index].textContent);
      var c = x[0] - y[0] || x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.className = i === index ? (descending ? "desc" : "asc") : "";
    });
    table.setAttribute("data-sorted", index + (descending ? ":desc" : ":asc"));
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    th.addEventListener("click", function () { sortBy(i, th.className === "asc"); });
  });
  var m = window.location.hash.match(/^#sort=(-?)(\\d+)$/);
  if (m) { sortBy(parseInt(m[2], 10), m[1] === "-"); }
  window.addEventListener("load", function () {
    var shown = Array.prototype.filter.call(document.images, function (im) { return im.naturalWidth > 0; });
    document.body.setAttribute("data-images-rendered", String(shown.length));
  });
})();
"""


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
    body = "\n".join(figure_tag(fig, caption) for fig, caption in figures)
    listed = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p class=\"legend\">{html.escape(legend_text)}</p>\n"
            f"{table_html(table)}\n" + (f"<ul class=\"notes\">{listed}</ul>\n" if listed else "")
            + f"<section id=\"figures\">{body}</section>\n<script>{_SORTER}</script>\n</body></html>\n")


def render_html(board: Leaderboard, figures: Sequence[FigureSpec] | None = None,
                title: str = "shiftbench leaderboard") -> str:
    """The HTML page of ``board``: its marked table compared with its reference, its notes and ``figures``
    (default: :func:`~shiftbench.plots.default_figures` of its metric)."""
    specs = default_figures(board.metric) if figures is None else figures
    legend_text = " ".join([*board.preface, legend(board.metric, board.reference, board.test)])
    return html_page(board.wide(board.long), legend_text, board.title or title, board.notes,
                     [(fig, spec.caption) for spec, fig in build_figures(specs, board.frame)])
