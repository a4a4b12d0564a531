"""``shiftbench reproduce``: run a registered paper-table reproduction, print ours / paper / delta with the
citation and the exact setting, and write ``<name>.csv`` and ``<name>.md`` under the output folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shiftbench.cache import atomic_write_text
from shiftbench.errors import ShiftbenchError
from shiftbench.reproduce import Reproduction, registry

RESULT_COLUMNS = ["ours", "paper", "delta"]


def list_reproductions() -> str:
    """One paragraph per registered reproduction: name, offline or which data it needs, citation, setting."""
    lines = []
    for name, cls in registry.scan_all().items():
        data = "offline (runs in CI)" if cls.offline else f"needs data: {cls.data_command or 'see its setting'}"
        lines += [f"{name}  [{data}]", f"    {cls.citation}", f"    {cls.setting}", ""]
    for module, tb in registry.import_errors().items():
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


def markdown(repro: Reproduction, table: pd.DataFrame, quick: bool) -> str:
    """The reproduced table with its citation and setting, as markdown."""
    mode = " (quick setting: reduced sizes, not the paper's)" if quick else ""
    return (f"# Reproduction: {repro.name}{mode}\n\n**Paper**: {repro.citation}\n\n**Setting**: {repro.setting}\n\n"
            f"{table.to_markdown(index=False, floatfmt='.2f')}\n\ndelta = ours - paper.\n")


def reproduce(name: str, output_dir: Path | str, quick: bool = False) -> pd.DataFrame:
    """Run reproduction ``name``, print it and write ``<output_dir>/<name>.csv`` and ``.md``."""
    cls = registry.get(name)
    repro = cls()
    out = Path(output_dir)
    table = check_table(name, repro.run(out, quick=quick))
    text = markdown(repro, table, quick)
    suffix = "-quick" if quick else ""
    atomic_write_text(out / f"{name}{suffix}.csv", table.to_csv(index=False))
    atomic_write_text(out / f"{name}{suffix}.md", text)
    print(text)
    print(f"wrote {out / f'{name}{suffix}.csv'} and {out / f'{name}{suffix}.md'}")
    return table
