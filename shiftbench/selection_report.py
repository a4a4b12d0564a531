"""Selection-aware leaderboards: per method, the setting each scorer chose, its held-out score, and the
oracle beside it with the gap (how much the method loses to realistic selection).

Built on the one aggregation of :mod:`shiftbench.report` (coverage, seeds, tests, ranks) applied to the
rows a :class:`~shiftbench.protocols.Protocol` selected; this module only adds the ``chosen`` and ``gap``
columns and the page around the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from shiftbench.metric_facts import metric_facts
from shiftbench.cache import atomic_write_text
from shiftbench.protocols import ORACLE, NoSelection, Protocol, Selected, chosen_text, setting_text
from shiftbench.report import (REFERENCE_METHOD, Leaderboard, aggregate, full_leaderboard, marked_wide, render_csv,
                               render_markdown, row_keys)
from shiftbench.results_folder import write_tables


def selection_leaderboard(selected: Selected, metric: str, reference: str = REFERENCE_METHOD,
                          test: str = "ttest") -> pd.DataFrame:
    """:func:`~shiftbench.report.full_leaderboard` of the selected rows, with ``chosen`` (how often each setting
    was picked) and ``gap`` (the oracle's ``avg`` minus the row's, in the metric's direction: what realistic
    selection loses; NaN for the oracle itself, rows without a choice, and incomplete rows)."""
    frame = selected.frame
    long = full_leaderboard(frame, metric, reference, test)
    if long.empty:
        return long.assign(chosen=pd.Series(dtype=str), gap=pd.Series(dtype=float))
    keys = row_keys(frame)
    chosen = pd.DataFrame([{**dict(zip(keys, key)), "chosen": chosen_text(rows, selected.unit)}
                           for key, rows in frame.groupby(keys, dropna=False, sort=False)], columns=[*keys, "chosen"])
    long = long.merge(chosen, on=keys, how="left")
    long.loc[long["scorer"] == ORACLE, "chosen"] = "best per scenario and seed"
    single = long["scorer"] == ""
    long.loc[single, "chosen"] = [setting_text(h) for h in long.loc[single, "hparams"]]
    sign = metric_facts(metric).sign
    avg = long[(long["group"] == "avg") & long["complete"]]
    oracle = avg[avg["scorer"] == ORACLE].set_index(["dataset", "model", "method"])["mean"]
    index = pd.MultiIndex.from_frame(long[["dataset", "model", "method"]])
    best = pd.Series(oracle.reindex(index).to_numpy(), index=long.index)
    mine = long["mean"].where((long["group"] == "avg") & long["complete"])
    long["gap"] = (sign * (best - mine)).where((long["scorer"] != ORACLE) & (long["scorer"] != ""))
    return long


def selection_wide(long: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """The text table: :func:`~shiftbench.report.marked_wide` plus ``chosen`` and ``gap to oracle``."""
    table = marked_wide(long, digits)
    if table.empty:
        return table
    keys = row_keys(long)
    scale = metric_facts(str(long["metric"].iloc[0])).scale
    per_row = long.groupby(keys, dropna=False).agg(chosen=("chosen", "first"), gap=("gap", "max")).reset_index()
    per_row["method"] = np.where(per_row["scorer"] == ORACLE, per_row["method"] + " (oracle)", per_row["method"])
    table = table.merge(per_row, on=keys, how="left")
    table["gap to oracle"] = [f"{g * scale:.{digits}f}" if np.isfinite(g) else "" for g in table.pop("gap")]
    order = ["dataset", "model", "method", "scorer", "chosen"]
    rest = [c for c in table.columns if c not in order and c != "hparams"]
    oracle_last = table["scorer"].eq(ORACLE).astype(int)
    table = table.assign(_o=oracle_last).sort_values(["dataset", "model", "method", "_o", "scorer"], kind="stable")
    return table[[*order, *rest]].reset_index(drop=True)


COLUMNS_LEGEND = ("scorer: who chose the row's setting (empty: the method has one setting). chosen: the settings "
                  "picked, with how often (per seed, or per scenario and seed). gap to oracle: the oracle's avg minus "
                  "the row's, in the metric's direction (what realistic selection loses).")


def selection_board(frame: pd.DataFrame, protocol: Protocol, metric: str, reference: str = REFERENCE_METHOD,
                    test: str = "ttest", notes: Sequence[str] = ()) -> Leaderboard:
    """The leaderboard of ``frame`` under ``protocol``: selection-aware (rows per scorer, ``chosen``, ``gap``)
    when it selects, else :func:`~shiftbench.report.aggregate` (every setting a row)."""
    if isinstance(protocol, NoSelection):
        several = not frame.empty and frame.groupby("method")["hparams"].nunique().max() > 1
        return aggregate(frame, metric, reference, test, [protocol.describe(), *notes] if several else notes)
    long = selection_leaderboard(protocol.select(frame, metric), metric, reference, test)
    return Leaderboard(frame, long, metric, reference, test, tuple(notes), wide=selection_wide,
                       preface=(protocol.describe(), COLUMNS_LEGEND),
                       title=f"Leaderboard ({metric}, selection: {protocol.name})")


def write_results(frame: pd.DataFrame, protocol: Protocol, out_dir: Path | str, metric: str, notes: Sequence[str] = (),
                  command: str | None = None, reference: str = REFERENCE_METHOD) -> dict[str, Path]:
    """A run's results folder (:func:`~shiftbench.results_folder.write_tables`) with the protocol's leaderboard;
    a selecting protocol's per-setting tables are kept beside it as ``settings.md`` / ``settings.csv``."""
    out = Path(out_dir)
    board = selection_board(frame, protocol, metric, reference, notes=notes)
    paths = write_tables(frame, out, metric, notes, command, board=board)
    if not isinstance(protocol, NoSelection):
        settings = selection_board(frame, NoSelection([]), metric, reference, notes=notes)
        paths["settings"], paths["settings_markdown"] = out / "settings.csv", out / "settings.md"
        atomic_write_text(paths["settings"], render_csv(settings))
        atomic_write_text(paths["settings_markdown"], render_markdown(settings, command))
    return paths
