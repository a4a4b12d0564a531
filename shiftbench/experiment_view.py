"""How an experiment presents its records: its selection protocol, the table's columns and its metric.

``shiftbench run`` saves the view beside the record store (``experiment.json``), so that
``shiftbench table`` over that store shows the same table the run showed: the same selection, the same
columns, the same rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from shiftbench.cache import atomic_write_text
from shiftbench.errors import ShiftbenchError
from shiftbench.collect import Collection
from shiftbench.protocols import Protocol
from shiftbench.report import REFERENCE_METHOD, failure_notes, sampling_error_notes
from shiftbench.store import group_labels

FILE_NAME = "experiment.json"


@dataclass(frozen=True)
class ExperimentView:
    """An experiment's ``selection`` block, ``report.group_by`` (scenario fields that make the table's
    columns; empty: the scenario groups the runner records), ``metric`` and ``report.reference`` (the method
    every row is tested against)."""

    selection: dict[str, Any]
    group_by: tuple[str, ...] = ()
    metric: str = "acc_avg"
    reference: str = REFERENCE_METHOD

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ExperimentView:
        from shiftbench.runner import as_list  # a run's config: the runner is imported already

        report = cfg.get("report") or {}
        group_by = report.get("group_by") or []
        if isinstance(group_by, str) or not all(isinstance(f, str) for f in group_by):
            raise ShiftbenchError(f"report.group_by must be a list of scenario fields (e.g. [corruption, order]); "
                                  f"got {group_by!r}")
        reference = report.get("reference")
        if reference is not None and reference not in as_list(cfg.get("method")):
            raise ShiftbenchError(f"report.reference={reference} is not a method of this run ({cfg.get('method')}); "
                                  "add it to method=[...] or set report.reference to one of them")
        view = cls(dict(cfg.get("selection") or {}), tuple(group_by), str(cfg["metric"]),
                   str(reference or REFERENCE_METHOD))
        view.protocol()  # a bad selection block fails here, before anything is computed
        return view

    def protocol(self) -> Protocol:
        return Protocol.from_config(self.selection)

    def frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its ``group`` column made of the ``group_by`` fields (unchanged without them)."""
        if not self.group_by or frame.empty:
            return frame
        return frame.assign(group=group_labels(frame, list(self.group_by)))

    def present(self, found: Collection) -> tuple[pd.DataFrame, list[str]]:
        """The records frame and the notes of every table of ``found``: ``shiftbench run``'s and
        ``shiftbench table``'s alike (what the columns are, failed cells, records left out)."""
        frame = self.frame(found.frame)
        columns = [f"columns: the scenarios' {' / '.join(self.group_by)} ('-': not set); avg: their mean"]
        return frame, [*(columns if self.group_by else []), *failure_notes(frame), *sampling_error_notes(frame),
                       *found.notes()]

    def save(self, store_dir: Path | str) -> None:
        atomic_write_text(Path(store_dir) / FILE_NAME, json.dumps(
            {"selection": self.selection, "group_by": list(self.group_by), "metric": self.metric,
             "reference": self.reference}, indent=1))

    @classmethod
    def load(cls, store_dir: Path | str) -> ExperimentView | None:
        """The view a run saved beside ``store_dir`` (None when no run saved one there)."""
        path = Path(store_dir) / FILE_NAME
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text())
            return cls(saved["selection"], tuple(saved["group_by"]), saved["metric"],
                       saved.get("reference", REFERENCE_METHOD))
        except (ValueError, KeyError, TypeError) as exc:
            raise ShiftbenchError(f"unreadable {path} ({exc}); re-run the experiment to rewrite it") from exc
