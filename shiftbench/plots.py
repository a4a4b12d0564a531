"""Leaderboard figures (matplotlib, Agg): accuracy against corruption severity, rank heatmap,
estimated against realised performance. Each returns a Figure, or ``None`` when the records hold
nothing to plot; :func:`png_bytes` turns one into PNG bytes (for files or an HTML page)."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from shiftbench.report import rank_cells, row_keys, seed_scores  # noqa: E402

#: scenario names of corrupted domains: ``<split>-c/<corruption>/<severity>`` before the first ``:``
_CORRUPTED = re.compile(r"^[^:]*-c/(?P<corruption>[^/:+]+)/(?P<severity>\d+)(?::|$)")


def corruption_fields(scenarios: pd.Series) -> pd.DataFrame:
    """``corruption`` and ``severity`` parsed from scenario names (NaN for clean or multi-domain scenarios)."""
    parsed = scenarios.astype(str).str.extract(_CORRUPTED)
    parsed["severity"] = pd.to_numeric(parsed["severity"])
    return parsed


def _label(row: pd.Series, keys: list[str]) -> str:
    extra = [str(row[k]) for k in keys if k not in ("dataset", "model", "method") and row[k] not in ("{}", "", None)]
    return " ".join([row["method"], *extra])


def accuracy_vs_severity(frame: pd.DataFrame, metric: str = "acc_avg") -> Figure | None:
    """Mean metric over corruptions and seeds at each severity, one line per method setting whose cells are
    all ok (see :mod:`shiftbench.report`), one panel per (dataset, model)."""
    col = f"metric.{metric}"
    if frame.empty or col not in frame:
        return None
    keys = row_keys(frame)
    scores = seed_scores(frame, metric)
    complete = scores[(scores["group"] == "avg") & scores["complete"]][keys].drop_duplicates()
    ok = frame[frame["status"] == "ok"]
    if "scorer" in keys:
        ok = ok.assign(scorer=ok["scorer"].fillna("").astype(str))
    ok = ok.merge(complete, on=keys)  # a row with failed or missing cells would be averaged over what is left
    data = pd.concat([ok.reset_index(drop=True), corruption_fields(ok["scenario"]).reset_index(drop=True)], axis=1)
    data = data.dropna(subset=["severity", col])
    if data.empty:
        return None
    panels = list(data.groupby(["dataset", "model"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, ((dataset, model), part) in zip(axes[0], panels):
        for _, rows in part.groupby(keys, dropna=False):
            curve = rows.groupby("severity")[col].mean()
            ax.plot(curve.index, curve.to_numpy() * 100, marker="o", label=_label(rows.iloc[0], keys))
        ax.set(title=f"{dataset} / {model}", xlabel="corruption severity", ylabel=f"{metric} (%)")
        ax.set_xticks(sorted(part["severity"].unique()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def rank_heatmap(long: pd.DataFrame, metric: str = "acc_avg") -> Figure | None:
    """Rank of each method setting (rows) in each (dataset, model, scenario group) (columns); 1 = best."""
    if long.empty:
        return None
    keys = [k for k in row_keys(long) if k not in ("dataset", "model")]
    ranked = long.assign(rank=rank_cells(long, metric)).dropna(subset=["rank"])
    if ranked.empty:
        return None
    ranked = ranked.assign(row=ranked.apply(lambda r: _label(r, keys), axis=1),
                           column=ranked["dataset"] + "/" + ranked["model"] + "\n" + ranked["group"])
    matrix = ranked.pivot_table(index="row", columns="column", values="rank", aggfunc="mean")
    matrix = matrix.loc[matrix.mean(axis=1).sort_values().index]
    fig, ax = plt.subplots(figsize=(1.0 + 1.1 * matrix.shape[1], 1.2 + 0.4 * matrix.shape[0]))
    image = ax.imshow(matrix.to_numpy(), cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
    middle = np.nanmean(matrix.to_numpy())
    for (i, j), value in np.ndenumerate(matrix.to_numpy()):
        if np.isfinite(value):  # dark text on the light (good) end of the colour map
            ax.text(j, i, f"{value:g}", ha="center", va="center", color="black" if value <= middle else "white", fontsize=7)
    fig.colorbar(image, ax=ax, label="rank (1 = best)")
    ax.set_title(f"rank on {metric}")
    fig.tight_layout()
    return fig


def estimated_vs_realised(frame: pd.DataFrame) -> Figure | None:
    """Each performance-estimator cell's mean estimated accuracy against the realised accuracy, per method."""
    needed = ["metric.est_acc", "metric.real_acc"]
    if frame.empty or any(c not in frame for c in needed):
        return None
    data = frame[(frame["status"] == "ok")].dropna(subset=needed)
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for method, rows in data.groupby("method"):
        ax.scatter(rows["metric.real_acc"] * 100, rows["metric.est_acc"] * 100, s=14, alpha=0.8, label=method)
    low = float(min(data[needed].min())) * 100
    ax.plot([low, 100], [low, 100], color="grey", linestyle="--", linewidth=1, label="estimate = realised")
    ax.set(xlabel="realised accuracy (%)", ylabel="estimated accuracy (%)", title="label-free performance estimates")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (and close it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()
