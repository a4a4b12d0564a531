"""Leaderboard figures (matplotlib, Agg), built on the aggregation of :mod:`shiftbench.report` and on the
records' ``scenario.<field>`` columns: accuracy against corruption severity, rank heatmap, estimated
against realised performance. Each returns a Figure, or ``None`` when the records hold nothing to plot;
:func:`png_bytes` turns one into PNG bytes (for files or an HTML page).

A :class:`FigureSpec` pairs a builder (records frame -> Figure or None) with its file name and caption;
the results folder writes, and the HTML page embeds, whatever list of them it is given
(:func:`default_figures` unless the caller adds its own).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from shiftbench.metric_facts import metric_facts  # noqa: E402
from shiftbench.chunk_figure import chunk_estimates_figure  # noqa: E402
from shiftbench.report import full_leaderboard, rank_cells, row_keys, seed_scores  # noqa: E402


@dataclass(frozen=True)
class FigureSpec:
    """A figure of a leaderboard: how to build it from the records, the file it is written to, its caption."""

    file_name: str
    caption: str
    build: Callable[[pd.DataFrame], Figure | None]


def single_corruption_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells whose target is one corruption at one severity, with ``scenario.severity`` as a number.

    Clean targets have no corruption; a continual stream over several corruptions (``"a+b+c"``) or a
    severity schedule (``"1+3+5"``) is no point of a severity curve either."""
    if frame.empty or "scenario.corruption" not in frame:
        return frame.iloc[0:0]
    corruption = frame["scenario.corruption"]
    sequence = (corruption.astype(str).str.contains("+", regex=False)
                | frame["scenario.severity"].astype(str).str.contains("+", regex=False))
    single = corruption.notna() & ~sequence
    cells = frame[single].assign(**{"scenario.severity": pd.to_numeric(frame.loc[single, "scenario.severity"])})
    return cells.dropna(subset=["scenario.severity"])


def stream_fields(cells: pd.DataFrame) -> list[str]:
    """The ``scenario.<field>`` columns other than corruption and severity whose values differ among ``cells``
    (streams that a severity curve must not average together)."""
    curve_axes = ("scenario.corruption", "scenario.severity")
    fields = [c for c in cells.columns if c.startswith("scenario.") and c not in curve_axes]
    return [c for c in fields if cells[c].astype(str).nunique() > 1]


def _label(row: pd.Series, keys: list[str]) -> str:
    """A leaderboard row's name in a legend: the method and its non-default keys (hparams, scorer)."""
    extra = [str(row[k]) for k in keys if k not in ("dataset", "model", "method") and row[k] not in ("{}", "", None)]
    return " ".join([row["method"], *extra])


def _field_text(row: pd.Series, column: str) -> str:
    """``field=value`` of one ``scenario.<field>`` column (``none`` where the field is unset)."""
    value = row[column]
    return f"{column[len('scenario.'):]}={'none' if pd.isna(value) else value}"


def accuracy_vs_severity(frame: pd.DataFrame, metric: str = "acc_avg") -> Figure | None:
    """Mean metric over corruptions and seeds at each severity, one line per method setting whose cells are
    all ok (see :mod:`shiftbench.report`) and per stream (the scenario fields that differ, e.g. the order),
    one panel per (dataset, model)."""
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
    data = single_corruption_cells(ok).dropna(subset=[col])
    if data.empty:
        return None
    scale = metric_facts(metric).scale
    panels = list(data.groupby(["dataset", "model"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, ((dataset, model), part) in zip(axes[0], panels):
        streams = stream_fields(part)
        for _, rows in part.groupby([*keys, *streams], dropna=False):
            first = rows.iloc[0]
            label = " ".join([_label(first, keys), *(_field_text(first, c) for c in streams)])
            curve = rows.groupby("scenario.severity")[col].mean()
            ax.plot(curve.index, curve.to_numpy() * scale, marker="o", label=label)
        ax.set(title=f"{dataset} / {model}", xlabel="corruption severity",
               ylabel=f"{metric} (%)" if scale == 100 else metric)
        ax.set_xticks(sorted(part["scenario.severity"].unique()))
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


def default_figures(metric: str = "acc_avg") -> list[FigureSpec]:
    """The figures every leaderboard gets (each is skipped where the records hold nothing to plot)."""
    return [FigureSpec(f"{metric}_vs_severity.png", f"{metric} against corruption severity",
                       partial(accuracy_vs_severity, metric=metric)),
            FigureSpec(f"{metric}_rank_heatmap.png", f"rank per (dataset, model, scenario group) on {metric}",
                       lambda frame: rank_heatmap(full_leaderboard(frame, metric), metric)),
            FigureSpec("estimated_vs_realised.png", "estimated against realised accuracy (performance estimators)",
                       estimated_vs_realised),
            FigureSpec("accuracy_per_chunk.png", "estimated and realised accuracy per calendar chunk",
                       chunk_estimates_figure)]


def build_figures(specs: Sequence[FigureSpec], frame: pd.DataFrame) -> list[tuple[FigureSpec, Figure]]:
    """Each spec with its figure of ``frame``, leaving out those with nothing to plot."""
    built = [(spec, spec.build(frame)) for spec in specs]
    return [(spec, fig) for spec, fig in built if fig is not None]


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (and close it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()
