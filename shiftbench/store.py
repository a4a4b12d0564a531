"""Result records, one JSON file per cell named by the cell's hash (DomainBed style).

Each record is written atomically, so an interrupted run leaves only whole records; two workers
writing the same cell write the same file name, so nothing is duplicated. A record with status
``ok`` or ``not_applicable`` is final; a ``failed`` one is retried by the next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from shiftbench.cache import atomic_write_text
from shiftbench.errors import ShiftbenchError
from shiftbench.scenarios import Scenario

FINAL_STATUSES = ("ok", "not_applicable")


#: fields every record must have, and what ``cell`` must hold
RECORD_FIELDS = ("key", "status", "cell")
CELL_FIELDS = ("dataset", "dataset_options", "scenario", "model", "method", "hparams", "seed")
STATUSES = ("ok", "failed", "not_applicable")
#: every scenario field and its default, for records that leave fields at their defaults out
SCENARIO_DEFAULTS = {name: f.default for name, f in Scenario.__dataclass_fields__.items()}


def record_problem(record: Any) -> str | None:
    """Why ``record`` is not a well-formed result record, or None."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        return f"missing fields {missing}"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    cell = record["cell"]
    if not isinstance(cell, dict) or any(f not in cell for f in CELL_FIELDS):
        return f"its cell lacks fields {[f for f in CELL_FIELDS if not isinstance(cell, dict) or f not in cell]}"
    if record["status"] == "ok" and not isinstance(record.get("metrics"), dict):
        return "status ok without a metrics object"
    return None


@dataclass
class StoreScan:
    """What a store holds: well-formed ``records`` and the files that are not (path, reason)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


class RecordStore:
    """The records of one experiment under ``root/records/<key>.json``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.dir = self.root / "records"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The well-formed record of ``key``, or None (missing, truncated or malformed)."""
        record, _ = _read(self.path(key))
        return record

    def write(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.path(record["key"]), json.dumps(record, indent=1, sort_keys=True, default=str))

    def scan(self, keys: Iterable[str] | None = None) -> StoreScan:
        """All records (or those of ``keys`` that exist), sorted by key, and every unreadable file."""
        paths = sorted(self.dir.glob("*.json")) if keys is None else [self.path(k) for k in sorted(set(keys))]
        scan = StoreScan()
        for p in paths:
            record, problem = _read(p)
            if record is not None:
                scan.records.append(record)
            elif problem is not None:
                scan.unreadable.append((p, problem))
        return scan

    def records(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The well-formed records (see :meth:`scan` for the files that are not)."""
        return self.scan(keys).records


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None), or (None, why it is unusable); (None, None) for a file that does not exist."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    problem = record_problem(record)
    if problem is None and record["key"] != path.stem:
        problem = f"its key {record['key']!r} does not match its file name"
    return (None, f"malformed: {problem}") if problem else (record, None)


def traceback_cause(error: Any) -> str:
    """The line of a stored traceback (or reason) that says what went wrong: its last non-empty line."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


#: the columns a records frame is sorted by: what a cell is, never its key
CELL_ORDER = ["dataset", "dataset_options", "model", "method", "hparams", "scenario", "seed"]


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per record: cell fields, one ``scenario.<field>`` column per scenario field (the tidy form
    figures and grouping use), ``metric.<name>`` and ``score.<scorer>`` columns (label-free selection
    scores), ``details`` (a method's per-chunk rows, or None), status and provenance columns.

    ``dataset`` is the dataset's name; when the records hold one dataset name with different options (two
    biased samples of one source), each gets its options in the name, so that they stay separate rows."""
    rows = []
    for r in records:
        cell = r["cell"]
        row = {"key": r["key"], "status": r["status"], "dataset": cell["dataset"],
               "dataset_options": json.dumps(cell["dataset_options"], sort_keys=True), "model": cell["model"],
               "method": cell["method"], "family": r.get("family", ""),
               "hparams": json.dumps(cell["hparams"], sort_keys=True), "scenario": r.get("scenario_name", ""),
               "group": r.get("scenario_group", ""), "seed": cell["seed"], "details": r.get("details")}
        row.update({f"scenario.{k}": v for k, v in {**SCENARIO_DEFAULTS, **cell["scenario"]}.items()})
        row.update({f"metric.{k}": v for k, v in (r.get("metrics") or {}).items()})
        row.update({f"score.{k}": v for k, v in (r.get("scores") or {}).items()})
        prov = r.get("provenance", {})
        row.update({"git_commit": prov.get("git_commit"), "config_hash": r["key"], "data_hash": r.get("data_hash"),
                    "model_hash": r.get("model_hash"), "model_weights": r.get("model_weights"),
                    "packages": json.dumps(prov.get("packages", {}), sort_keys=True), "seconds": r.get("seconds"),
                    "error": traceback_cause(r.get("error"))})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # rows in cell order, not key order: a table (and its floating-point sums) must not change when only the
    # code identity in the keys does
    frame = frame.sort_values(CELL_ORDER, kind="stable").reset_index(drop=True)
    return frame.assign(dataset=dataset_labels(frame["dataset"], frame["dataset_options"]))


def dataset_labels(names: pd.Series, options: pd.Series) -> pd.Series:
    """Dataset names, with ``[key=value,...]`` options added where one name occurs with different options."""
    ambiguous = options.groupby(names).transform("nunique") > 1

    def label(name: str, opts: str) -> str:
        values = json.loads(opts)
        return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(values.items()))}]" if values else name

    return pd.Series([label(n, o) if a else n for n, o, a in zip(names, options, ambiguous)], index=names.index)


def group_labels(frame: pd.DataFrame, fields: list[str]) -> pd.Series:
    """Table columns made of scenario fields (an experiment's ``report.group_by``): each record's values of
    ``fields`` joined by ``/`` (``gaussian_noise/iid``), ``-`` for an unset field."""
    missing = [f for f in fields if f"scenario.{f}" not in frame.columns]
    if missing:
        raise ShiftbenchError(f"report.group_by names {missing}, which are not scenario fields; scenario fields: "
                              f"{', '.join(sorted(c[len('scenario.'):] for c in frame.columns if c.startswith('scenario.')))}")

    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        return f"{value:g}" if isinstance(value, float) else str(value)

    return frame[[f"scenario.{f}" for f in fields]].apply(lambda row: "/".join(map(text, row)), axis=1)
