"""Leaderboard tables built from result records: mean and 95% CI over seeds, per scenario group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from shiftbench.cache import atomic_write_text

ROW_KEYS = ["dataset", "model", "method", "hparams"]


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def per_seed_scores(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Metric averaged over the scenarios of each group, per (row keys, group, seed); plus an ``avg`` group."""
    ok = frame[frame["status"] == "ok"]
    col = f"metric.{metric}"
    if col not in ok:
        return pd.DataFrame(columns=[*ROW_KEYS, "group", "seed", "value"])
    by_group = ok.groupby([*ROW_KEYS, "group", "seed"], dropna=False)[col].mean().rename("value").reset_index()
    overall = by_group.groupby([*ROW_KEYS, "seed"], dropna=False)["value"].mean().reset_index().assign(group="avg")
    return pd.concat([by_group, overall], ignore_index=True)


def leaderboard(frame: pd.DataFrame, metric: str = "acc_avg") -> pd.DataFrame:
    """Long table: one row per (dataset, model, method, hparams, group) with mean, ci95 and n_seeds."""
    scores = per_seed_scores(frame, metric)
    rows = []
    for keys, part in scores.groupby([*ROW_KEYS, "group"], dropna=False):
        mean, half = mean_ci(part["value"].to_numpy())
        rows.append({**dict(zip([*ROW_KEYS, "group"], keys)), "metric": metric, "mean": mean, "ci95": half,
                     "n_seeds": int(part["seed"].nunique())})
    return pd.DataFrame(rows)


def wide(long: pd.DataFrame, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """Leaderboard as text cells ``mean ± ci`` with one column per scenario group, ``avg`` last."""
    if long.empty:
        return pd.DataFrame()
    text = long.assign(cell=[f"{m * scale:.{digits}f} ± {c * scale:.{digits}f}" for m, c in zip(long["mean"], long["ci95"])])
    table = text.pivot_table(index=ROW_KEYS, columns="group", values="cell", aggfunc="first")
    cols = [c for c in table.columns if c != "avg"] + (["avg"] if "avg" in table.columns else [])
    table = table[cols].reset_index()
    table.columns.name = None
    return table.sort_values(["dataset", "model", "method", "hparams"]).reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False) if not table.empty else "(no results)"


def write_tables(frame: pd.DataFrame, out_dir: Path | str, metric: str = "acc_avg") -> dict[str, Path]:
    """Write records.csv (with provenance), leaderboard.csv (long) and leaderboard.md (wide) atomically."""
    out = Path(out_dir)
    long = leaderboard(frame, metric)
    paths = {"records": out / "records.csv", "leaderboard": out / "leaderboard.csv", "markdown": out / "leaderboard.md"}
    atomic_write_text(paths["records"], frame.sort_values("key").to_csv(index=False) if not frame.empty else "")
    atomic_write_text(paths["leaderboard"], long.to_csv(index=False))
    atomic_write_text(paths["markdown"], f"# Leaderboard ({metric}, %, mean ± 95% CI over seeds)\n\n"
                      + to_markdown(wide(long)) + "\n")
    return paths
