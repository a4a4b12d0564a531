"""The HTML page: the same cells as the text table, marks and legend against the chosen reference, every
column of any wide table (the seam for selection-aware tables), oracle rows styled, the figures it is given."""

from __future__ import annotations

from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pandas as pd

from leaderboard_fixtures import estimator_records, synthetic_records, write_store
from shiftbench.cli import main
from shiftbench.leaderboard_html import html_page, render_html
from shiftbench.plots import FigureSpec
from shiftbench.report import aggregate, marked_wide
from shiftbench.store import records_frame


class Page(HTMLParser):
    """Header cells, body rows (class and cell texts), legend text and the number of images of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []
        self.legend = ""
        self.images = 0
        self._where: str | None = None
        self._in_body = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_body |= tag == "tbody"
        if tag == "tr" and self._in_body:
            self.rows.append((attrs.get("class") or "", []))
        if tag == "th":
            self.header.append("")
        if tag in ("th", "td") or (tag == "p" and attrs.get("class") == "legend"):
            self._where = {"th": "head", "td": "cell", "p": "legend"}[tag]
        self.images += tag == "img"

    def handle_endtag(self, tag):
        self._in_body &= tag != "tbody"
        if tag in ("th", "td", "p"):
            self._where = None

    def handle_data(self, data):
        if self._where == "head":
            self.header[-1] += data
        elif self._where == "cell":
            self.rows[-1][1].append(data)
        elif self._where == "legend":
            self.legend += data


def test_the_page_shows_the_text_tables_cells():
    board = aggregate(records_frame(synthetic_records()))
    page = Page(render_html(board, figures=[]))
    wide = marked_wide(board.long)
    assert page.header == list(wide.columns)
    assert [cells for _, cells in page.rows] == [[str(v) for v in row] for row in wide.itertuples(index=False)]
    assert page.images == 0


def test_cli_html_follows_the_reference_in_marks_and_legend(tmp_path):
    store = write_store(tmp_path / "store", synthetic_records())  # better -> lame, worse -> tent, same -> bn_adapt
    out = tmp_path / "board.html"
    assert main(["table", "--format", "html", "--reference", "tent", "--store", str(store), "--output", str(out)]) == 0
    page = Page(out.read_text())
    assert "significantly better/worse than tent" in page.legend
    avg = page.header.index("avg")
    marks = {cells[2]: cells[avg][-1] for _, cells in page.rows if cells[0] == "digits"}
    assert marks["lame"] == marks["source_only"] == marks["bn_adapt"] == "▲"  # all better than tent
    assert marks["tent"].isdigit()  # the reference itself is never marked


def test_any_wide_table_renders_with_all_its_columns_and_oracle_rows_styled():
    wide = pd.DataFrame({"dataset": ["digits"] * 3, "model": ["m"] * 3, "method": ["lame", "lame", "lame (oracle)"],
                         "scorer": ["entropy", "source_val", "oracle"], "chosen": ["k=5 (3/3)", "k=3 (2/3)", "best"],
                         "avg": ["71.0", "70.2", "72.4"], "gap to oracle": ["1.4", "2.2", ""]})
    page = Page(html_page(wide, "legend text"))
    assert page.header == list(wide.columns) and page.legend == "legend text"
    assert [css for css, _ in page.rows] == ["", "", "oracle"]
    assert page.rows[0][1] == ["digits", "m", "lame", "entropy", "k=5 (3/3)", "71.0", "1.4"]


def test_the_page_embeds_the_default_figures_and_those_it_is_given():
    frame = records_frame(synthetic_records() + estimator_records())
    board = aggregate(frame)
    assert Page(render_html(board)).images == 3  # severity curves, rank heatmap, estimated vs realised

    def one_panel(records: pd.DataFrame):
        fig, ax = plt.subplots()
        ax.plot(records["seed"], records["seed"])
        return fig

    text = render_html(board, figures=[FigureSpec("extra.png", "an added figure", one_panel),
                                       FigureSpec("none.png", "nothing to plot", lambda records: None)])
    assert Page(text).images == 1 and "an added figure" in text and "nothing to plot" not in text
