"""Result records, one JSON file per cell named by the cell's hash (DomainBed style).

Each record is written atomically, so an interrupted run leaves only whole records; two workers
writing the same cell write the same file name, so nothing is duplicated. A record with status
``ok`` or ``not_applicable`` is final; a ``failed`` one is retried by the next run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from shiftbench.cache import atomic_write_text

FINAL_STATUSES = ("ok", "not_applicable")


class RecordStore:
    """The records of one experiment under ``root/records/<key>.json``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.dir = self.root / "records"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(self, key: str) -> bool:
        record = self.load(key)
        return record is not None and record.get("status") in FINAL_STATUSES

    def write(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.path(record["key"]), json.dumps(record, indent=1, sort_keys=True, default=str))

    def records(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All records (or those of ``keys`` that exist), sorted by key."""
        if keys is None:
            paths = sorted(self.dir.glob("*.json"))
        else:
            paths = [self.path(k) for k in sorted(set(keys))]
        out = []
        for p in paths:
            try:
                out.append(json.loads(p.read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                continue
        return out


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: cell fields, ``metric.<name>`` columns, status and provenance columns."""
    rows = []
    for r in records:
        cell = r["cell"]
        row = {"key": r["key"], "status": r["status"], "dataset": cell["dataset"], "model": cell["model"],
               "method": cell["method"], "family": r.get("family", ""),
               "hparams": json.dumps(cell["hparams"], sort_keys=True), "scenario": r.get("scenario_name", ""),
               "group": r.get("scenario_group", ""), "seed": cell["seed"]}
        row.update({f"metric.{k}": v for k, v in (r.get("metrics") or {}).items()})
        prov = r.get("provenance", {})
        row.update({"git_commit": prov.get("git_commit"), "config_hash": r["key"], "data_hash": r.get("data_hash"),
                    "model_hash": r.get("model_hash"), "model_weights": r.get("model_weights"),
                    "packages": json.dumps(prov.get("packages", {}), sort_keys=True), "seconds": r.get("seconds")})
        rows.append(row)
    return pd.DataFrame(rows)
