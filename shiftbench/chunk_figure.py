"""The per-chunk monitoring figure of a leaderboard: estimated against realised accuracy per calendar chunk,
drawn from the ``details`` that performance-estimator cells store (:meth:`PerformanceEstimator.details`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd


def calendar_chunk_details(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-chunk ``details`` of a records frame's finished calendar-chunk cells (scenarios with
    ``chunk_by``), one row per (cell, chunk): dataset, model, method, hparams, seed, scenario, chunk_by and
    the detail fields (label, n, estimate, realised). A cell's details are a list of dicts (or their JSON text)."""
    needed = ["details", "scenario.chunk_by"]
    if frame.empty or any(c not in frame for c in needed):
        return pd.DataFrame()
    cells = frame[(frame["status"] == "ok") & frame["scenario.chunk_by"].notna() & frame["details"].notna()]
    rows = [{"dataset": cell["dataset"], "model": cell["model"], "method": cell["method"], "hparams": cell["hparams"],
             "seed": cell["seed"], "scenario": cell["scenario"], "chunk_by": cell["scenario.chunk_by"], **detail}
            for _, cell in cells.iterrows()
            for detail in (json.loads(cell["details"]) if isinstance(cell["details"], str) else cell["details"])]
    return pd.DataFrame(rows)


def _calendar_order(chunks: pd.DataFrame) -> pd.DataFrame:
    """The distinct (scenario, label) chunks in calendar order: by label, numerically where every label is a number."""
    chunks = chunks[["scenario", "label"]].drop_duplicates()
    numeric = pd.to_numeric(chunks["label"], errors="coerce")
    key = numeric if numeric.notna().all() else chunks["label"].astype(str)
    return chunks.assign(_key=key.to_numpy()).sort_values(["_key", "scenario"]).drop(columns="_key")


def _setting_label(method: str, hparams: str) -> str:
    """A method setting in a legend: ``atc score=negative_entropy``."""
    values = json.loads(hparams)
    return " ".join([method, *(f"{k}={v}" for k, v in sorted(values.items()))])


def chunk_estimates_figure(frame: pd.DataFrame) -> Any:
    """Estimated and realised accuracy per calendar chunk (e.g. NYC flights by month) from a records frame's
    ``details``: one panel per (dataset, model), one line per estimator setting and the realised accuracy,
    each the mean over the seeds. Returns a matplotlib Figure (Agg), or ``None`` when no finished cell of a
    ``chunk_by`` scenario has details."""
    details = calendar_chunk_details(frame)
    if details.empty:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = list(details.groupby(["dataset", "model"], sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(9.5 * len(panels), 4.2), squeeze=False)
    for ax, ((dataset, model), part) in zip(axes[0], panels):
        order = pd.MultiIndex.from_frame(_calendar_order(part))
        realised = part.groupby(["scenario", "label", "seed"])["realised"].first().groupby(["scenario", "label"]).mean()
        x = np.arange(len(order))
        ax.plot(x, realised.reindex(order).to_numpy() * 100, color="black", linestyle="--", marker="s", linewidth=2,
                label="realised")
        for (method, hparams), rows in part.groupby(["method", "hparams"], sort=True):
            estimate = rows.groupby(["scenario", "label"])["estimate"].mean().reindex(order)
            ax.plot(x, estimate.to_numpy() * 100, marker="o", markersize=4, label=_setting_label(method, hparams))
        labels = order.get_level_values("label")
        ticks = labels if labels.is_unique else [f"{s} {lab}" for s, lab in order]
        ax.set_xticks(x, ticks, rotation=45 if len(x) > 12 else 0, ha="right" if len(x) > 12 else "center", fontsize=8)
        chunk_by = ", ".join(sorted(part["chunk_by"].astype(str).unique()))
        ax.set(xlabel=chunk_by, ylabel="accuracy (%)",
               title=f"{dataset} / {model}\nestimated and realised accuracy per {chunk_by}, mean of "
                     f"{part['seed'].nunique()} seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig
