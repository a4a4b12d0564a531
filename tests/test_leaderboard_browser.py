"""The HTML leaderboard in a real headless browser (Debian's chromium): the table renders, the figures
decode, and the inline sorter reorders rows."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leaderboard_fixtures import estimator_records, synthetic_frame, synthetic_records
from shiftbench.leaderboard_html import render_html
from shiftbench.report import aggregate
from shiftbench.store import records_frame

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH; install it with "
                                "`apt-get install -y chromium` (.ci/run does this)")


class TableRows(HTMLParser):
    """Collects the text of each body row of the table with id ``leaderboard`` and the body's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.body: dict[str, str] = {}
        self.table: dict[str, str] = {}
        self._in_body = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if tag == "table" and attrs.get("id") == "leaderboard":
            self.table = attrs
        self._in_body |= tag == "tbody"
        if self._in_body and tag == "tr":
            self.rows.append([])
        if self._in_body and tag == "td":
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        self._in_body &= tag != "tbody"
        self._in_cell &= tag != "td"

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


def dump_dom(page: Path, fragment: str, profile: Path) -> TableRows:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--dump-dom", page.as_uri() + fragment]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = TableRows()
    parsed.feed(proc.stdout)
    return parsed


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    frame = records_frame(synthetic_records() + estimator_records())
    path = tmp_path_factory.mktemp("html") / "leaderboard.html"
    path.write_text(render_html(aggregate(frame)))
    return path


def avg_value(row: list[str], column: int) -> float:
    return float(re.match(r"-?\d+(\.\d+)?", row[column]).group(0))


def test_page_renders_table_and_figures(page, tmp_path):
    dom = dump_dom(page, "", tmp_path / "profile")
    assert len(dom.rows) == 8  # 2 datasets x 4 methods
    assert dom.body.get("data-images-rendered") == "3"  # severity curves, rank heatmap, estimated vs realised
    assert "data-sorted" not in dom.table


def test_sorter_orders_rows_by_the_chosen_column(page, tmp_path):
    frame = synthetic_frame()
    n_keys = 4  # dataset, model, method, hparams
    avg_column = n_keys + frame["group"].nunique()  # the "avg" column comes after the group columns
    dom = dump_dom(page, f"#sort=-{avg_column}", tmp_path / "profile")
    assert dom.table.get("data-sorted") == f"{avg_column}:desc"
    values = [avg_value(r, avg_column) for r in dom.rows]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert dom.rows[0][2] == "better" and dom.rows[-1][2] == "worse"
    by_method = dump_dom(page, "#sort=2", tmp_path / "profile2")
    assert [r[2] for r in by_method.rows] == sorted(r[2] for r in by_method.rows)
