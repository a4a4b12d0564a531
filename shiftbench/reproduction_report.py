"""``shiftbench reproduce``: run a registered paper-table reproduction, print ours / paper / delta with the
citation and the exact setting, and write its folder ``<output>/<name>/`` (``<name>-quick/`` for the
reduced setting): ``table.md`` (citation, setting, table, notes and the command that regenerates it),
``table.csv`` (ours / paper / delta) and ``records.csv`` (the rows behind the table, with provenance)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pandas as pd

from shiftbench import reproductions
from shiftbench.cache import atomic_write_text
from shiftbench.errors import ShiftbenchError
from shiftbench.provenance import provenance
from shiftbench.reproduction import Reproduced, Reproduction

RESULT_COLUMNS = ["ours", "paper", "delta"]


def list_reproductions() -> str:
    """One paragraph per registered reproduction: name, offline or which data it needs, citation, setting."""
    lines = []
    for name, cls in reproductions.registry.scan_all().items():
        data = "offline (runs in CI)" if cls.offline else f"needs data: {cls.data_command or 'see its setting'}"
        lines += [f"{name}  [{data}]", f"    {cls.citation}", f"    {cls.setting}", ""]
    for module, tb in reproductions.registry.import_errors().items():
        lines.append(f"warning: reproduction module {module!r} failed to import:\n{tb}")
    return "\n".join(lines) if lines else "(no reproductions registered)"


def check_table(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The table a reproduction returned: key columns then ours, paper, delta (delta = ours - paper)."""
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise ShiftbenchError(f"reproduction {name!r} returned a table without columns {missing}; "
                              f"it must have key columns followed by {RESULT_COLUMNS}")
    keys = [c for c in table.columns if c not in RESULT_COLUMNS]
    return table[[*keys, *RESULT_COLUMNS]]


def command(name: str, quick: bool) -> str:
    """The command line that regenerates a reproduction's folder."""
    return f"shiftbench reproduce {name}{' --quick' if quick else ''}"


def with_provenance(repro: Reproduction, records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with the provenance columns: git commit, package versions (shiftbench's and the
    reproduction's own ``packages``), Python and platform."""
    prov = provenance()
    versions = dict(prov["packages"])
    for package in repro.packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "absent"
    return records.assign(git_commit=prov["git_commit"], packages=json.dumps(versions, sort_keys=True),
                          python=prov["python"], platform=prov["platform"])


def markdown(repro: Reproduction, result: Reproduced, quick: bool) -> str:
    """The reproduced table with its citation, setting, notes and regenerating command, as markdown."""
    mode = " (quick setting: reduced sizes, not the paper's)" if quick else ""
    notes = f"{result.notes.strip()}\n\n" if result.notes.strip() else ""
    return (f"# Reproduction: {repro.name}{mode}\n\n**Paper**: {repro.citation}\n\n**Setting**: {repro.setting}\n\n"
            f"{result.table.to_markdown(index=False, floatfmt='.2f')}\n\ndelta = ours - paper.\n\n{notes}"
            f"Regenerate with `{command(repro.name, quick)}` (records.csv holds the rows behind the table, with "
            "the git commit and package versions).\n")


def reproduce(name: str, output_dir: Path | str, quick: bool = False) -> pd.DataFrame:
    """Run reproduction ``name``, print it and write ``table.md``, ``table.csv`` and ``records.csv`` to
    ``<output_dir>/<name>/`` (``<name>-quick/`` when ``quick``); returns the table."""
    repro = reproductions.load(name)
    result = repro.run(quick=quick)
    result = Reproduced(check_table(name, result.table), with_provenance(repro, result.records), result.notes)
    folder = Path(output_dir) / f"{name}{'-quick' if quick else ''}"
    text = markdown(repro, result, quick)
    atomic_write_text(folder / "table.csv", result.table.to_csv(index=False))
    atomic_write_text(folder / "records.csv", result.records.to_csv(index=False))
    atomic_write_text(folder / "table.md", text)
    print(text)
    print(f"wrote {folder}/table.md, table.csv and records.csv")
    return result.table
