"""Gather the records a table may use: readable, well-formed, and computed by the current code.

Every table (``run``'s own, ``shiftbench table``, the multirun collector, ``regress``) reads records
through :func:`collect`. A record is *current* when the key its cell would have today equals the key
it was stored under: the key hashes the cell and the code identity (:mod:`shiftbench.identity`),
so a record made by an older plugin, model recipe, dataset adapter or harness no longer matches.
Other records are not shown; :meth:`Collection.notes` says how many and why, and
``shiftbench store gc`` deletes them.

In a process that has not imported the plugins (``shiftbench table``, ``store gc``), today's code hashes
come from the plugin index's module names (:func:`indexed_key`), so a store of current records is read
without importing a plugin; a record that does not match is judged by the registries, as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from shiftbench.cache import error_line
from shiftbench.identity import cell_key, identity_of_codes, module_code, scoring_of_codes
from shiftbench.plugin_index import Catalog, catalog, plugins_imported
from shiftbench.store import RecordStore, records_frame

#: record ``cell`` field -> the plugin kind it names
PLUGIN_FIELDS = {"method": "methods", "model": "models", "dataset": "datasets"}


def stale_reason(record: dict[str, Any], index: Catalog | None = None) -> str | None:
    """Why a well-formed record is not of the current code (None when it is).

    With the plugin ``index``, a record whose key :func:`indexed_key` reproduces is current without
    importing anything; every other record is judged by the live registries, as without it."""
    if index is not None and indexed_key(record["cell"], index) == record["key"]:
        return None
    from shiftbench.runner import Cell  # imports torch and the plugins a cell names

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


def indexed_key(cell: dict[str, Any], index: Catalog) -> str | None:
    """The key of the record of ``cell`` (a record's ``cell`` field) under today's code, as
    :attr:`shiftbench.runner.Cell.key` computes it (``cell`` being ``Cell.as_dict()``), with the plugins' code
    hashes computed from their module names in ``index`` (:func:`~shiftbench.identity.module_code`), so
    without importing them. None when a plugin is not in the index under that name (a dataset name a family
    claims, a plugin without a source file) or ``cell`` is malformed: then only the registries can tell."""
    try:
        codes = [module_code(index.section(kind)[cell[field]]["module"]) for field, kind in PLUGIN_FIELDS.items()]
        scorers = tuple(module_code(index.section("scorers")[name]["module"])
                        for name in (cell["scoring"]["scorers"] if cell.get("scoring") else ()))
    except Exception:  # noqa: BLE001 - a name the index lacks, a malformed cell, a kind that failed to load
        return None
    if None in codes or None in scorers:
        return None
    identity = identity_of_codes(*codes, cell["scenario"].get("corruption") is not None)
    if cell.get("scoring"):
        identity["scoring_code"] = scoring_of_codes(scorers)
    return cell_key(cell, identity)


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
    index = None if plugins_imported() else catalog()  # where the plugins are imported, they are the truth
    for root in roots:
        store = RecordStore(root)
        scan = store.scan()
        collection.unreadable.extend(scan.unreadable)
        for record in scan.records:
            reason = stale_reason(record, index)
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
