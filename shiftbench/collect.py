"""Gather the records a table may use: readable, well-formed, and computed by the current code.

Every table (``run``'s own, ``shiftbench table``, the multirun collector, ``regress``) reads records
through :func:`collect`. A record is *current* when the key its cell would have today equals the key
it was stored under: the key hashes the cell and the code identity (:mod:`shiftbench.identity`),
so a record made by an older plugin, model recipe, dataset adapter or harness no longer matches.
Other records are not shown; :meth:`Collection.notes` says how many and why, and
``shiftbench store gc`` deletes them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from shiftbench.cache import error_line
from shiftbench.runner import Cell
from shiftbench.store import RecordStore, records_frame


def stale_reason(record: dict[str, Any]) -> str | None:
    """Why a well-formed record is not of the current code (None when it is)."""
    cell = record["cell"]
    try:
        current = Cell.from_dict(cell)
        key, identity = current.key, current.identity()
    except Exception as exc:  # a plugin that no longer exists or a scenario field that changed
        return f"its cell cannot be rebuilt today ({error_line(exc)})"
    if key == record["key"]:
        return None
    stored = record.get("identity")
    if not isinstance(stored, dict):
        return "recorded before code identities were stored"
    changed = sorted(k for k, v in identity.items() if stored.get(k) != v)
    return f"{', '.join(changed)} changed since it was recorded" if changed else "its cell key changed"


@dataclass
class Collection:
    """Current records as a frame, and what was left out: stale records and unreadable files."""

    frame: pd.DataFrame
    stores: list[Path]
    stale: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    def notes(self, limit: int = 5) -> list[str]:
        """One line per kind of left-out record, for the terminal and the table's notes."""
        where = ", ".join(map(str, self.stores))
        lines = []
        if self.stale:
            reasons = Counter(reason for _, reason in self.stale)
            detail = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common(3))
            lines.append(f"{len(self.stale)} records in {where} come from other code and are not used ({detail}); "
                         f"`shiftbench store gc --store {self.stores[0]}` removes them")
        for path, problem in self.unreadable[:limit]:
            lines.append(f"unreadable record {path}: {problem}")
        if len(self.unreadable) > limit:
            lines.append(f"... and {len(self.unreadable) - limit} more unreadable records in {where}")
        return lines


def collect(stores: Iterable[Path | str], keys: Iterable[str] | None = None) -> Collection:
    """The current records of ``stores`` (only ``keys`` if given) and everything left out, with reasons.

    With ``keys`` (a run's own cells, whose keys are current by construction), the rest of the store
    is still scanned so that the notes count its stale and unreadable records."""
    roots = [Path(s) for s in stores]
    wanted = None if keys is None else set(keys)
    current: list[dict[str, Any]] = []
    collection = Collection(pd.DataFrame(), roots)
    for root in roots:
        store = RecordStore(root)
        scan = store.scan()
        collection.unreadable.extend(scan.unreadable)
        for record in scan.records:
            reason = stale_reason(record)
            if reason is not None:
                collection.stale.append((store.path(record["key"]), reason))
            elif wanted is None or record["key"] in wanted:
                current.append(record)
    collection.frame = records_frame(current)
    return collection


def garbage(store: Path | str) -> list[tuple[Path, str]]:
    """Files of ``store`` that no table uses: stale records and unreadable files, with the reason."""
    found = collect([store])
    return sorted(found.stale + found.unreadable)
