"""`shiftbench reproduce`: list, run a registered reproduction, print and write ours / paper / delta."""

from __future__ import annotations

import pandas as pd
import pytest

from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.reproduction import Reproduced, Reproduction
from shiftbench.reproduction_report import check_table, reproduce
from shiftbench.reproductions import registry


class TinyTable(Reproduction):
    """A two-cell 'paper table' whose numbers are computed here: the accuracy of always predicting the
    majority class on fixed label vectors (published as 60 and 75)."""

    name = "test-tiny-table"
    citation = "Nobody (2026). A paper for tests."
    setting = "majority-class accuracy on two fixed label vectors of 5 and 8 examples"
    labels = {"five": [0, 0, 0, 1, 1], "eight": [1, 1, 1, 1, 1, 1, 0, 0]}
    paper = {"five": 60.0, "eight": 75.0}

    def run(self, quick: bool = False) -> Reproduced:
        rows, records = [], []
        for key, y in self.labels.items():
            ours = 100.0 * pd.Series(y).value_counts().max() / len(y)
            rows.append({"table": key, "ours": ours, "paper": self.paper[key], "delta": ours - self.paper[key]})
            records += [{"table": key, "example": i, "label": label} for i, label in enumerate(y)]
        return Reproduced(pd.DataFrame(rows), pd.DataFrame(records), "Majority class of each vector.")


class NeedsDownload(TinyTable):
    """The same table on data that must be fetched first."""

    name = "test-needs-download"
    offline = False
    data_command = "shiftbench data download wilds/camelyon17"


@pytest.fixture(autouse=True)
def test_reproductions():
    """The two test reproductions, registered for each test of this module only."""
    with registry.temporarily(TinyTable, NeedsDownload):
        yield


def test_reproduce_prints_and_writes_ours_paper_delta(tmp_path, capsys):
    assert main(["reproduce", "test-tiny-table", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert TinyTable.citation in out and TinyTable.setting in out
    folder = tmp_path / "test-tiny-table"
    table = pd.read_csv(folder / "table.csv")
    assert table.columns.tolist() == ["table", "ours", "paper", "delta"]
    assert table["ours"].tolist() == [60.0, 75.0] and (table["delta"] == 0).all()
    text = (folder / "table.md").read_text()
    assert "| five" in text and "Majority class of each vector." in text
    assert "Regenerate with `shiftbench reproduce test-tiny-table`" in text
    # records: the rows behind the table, with provenance columns
    records = pd.read_csv(folder / "records.csv")
    assert len(records) == 5 + 8 and {"git_commit", "packages", "python", "platform"} <= set(records.columns)
    assert records.groupby("table")["label"].agg(lambda y: 100 * y.value_counts().max() / len(y)).to_dict() == {
        "five": 60.0, "eight": 75.0}
    assert '"numpy"' in records["packages"].iloc[0]


def test_list_shows_each_reproduction_with_its_data_needs(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "test-tiny-table  [offline (runs in CI)]" in out and TinyTable.citation in out
    assert "test-needs-download  [needs data: shiftbench data download wilds/camelyon17]" in out


def test_table_without_ours_paper_delta_is_rejected():
    with pytest.raises(ShiftbenchError, match=r"without columns \['paper', 'delta'\]"):
        check_table("broken", pd.DataFrame({"cell": ["a"], "ours": [1.0]}))


def test_unknown_reproduction_lists_the_valid_ones(capsys):
    assert main(["reproduce", "no-such-paper"]) == 2
    assert "test-tiny-table" in capsys.readouterr().err


OFFLINE = [name for name, cls in registry.scan_all().items() if cls.offline and not name.startswith("test-")]


@pytest.mark.slow
@pytest.mark.parametrize("name", OFFLINE)
def test_offline_reproductions_run_quick(tmp_path, name):
    table = reproduce(name, tmp_path, quick=True)
    assert not table.empty and table["ours"].notna().all() and table["paper"].notna().any()
    assert (table["delta"] - (table["ours"] - table["paper"])).abs().max() < 1e-6
    folder = tmp_path / f"{name}-quick"
    assert {p.name for p in folder.iterdir()} == {"table.md", "table.csv", "records.csv"}
    assert f"shiftbench reproduce {name} --quick" in (folder / "table.md").read_text()
