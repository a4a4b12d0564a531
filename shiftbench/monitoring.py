"""Chunked performance monitoring: chunks by size or period, realised metrics, alert bands, plots.

A monitored model's outputs arrive in **chunks** (fixed-size slices in arrival order, or one chunk
per value of a period column such as the month). A label-free estimator (CBPE, M-CBPE, ATC, DoC)
gives one estimate per chunk; an **alert** fires when an estimate leaves the reference band.
The band is NannyML's default: the realised metric on the reference set, chunked the same way,
mean +- 3 standard deviations (population std), clipped to the metric's range [0, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from shiftbench.errors import ShiftbenchError

#: metric name -> realised value from (labels, uncalibrated scores (n, K), predicted classes, n_classes)
RealisedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]


@dataclass(frozen=True)
class Chunks:
    """Assignment of rows to chunks: ``ids[i]`` is row i's chunk, ``keys`` names the chunks in order."""

    ids: np.ndarray
    keys: list[str]

    def __len__(self) -> int:
        return len(self.keys)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.ids, minlength=len(self.keys))

    def members(self) -> list[np.ndarray]:
        """Row indices of each chunk, in row order."""
        order = np.argsort(self.ids, kind="stable")
        return np.split(order, np.cumsum(self.sizes())[:-1])

    def frame(self) -> pd.DataFrame:
        """One row per chunk: index, key and size (the left columns of an estimate table)."""
        return pd.DataFrame({"chunk": np.arange(len(self.keys)), "key": self.keys, "n": self.sizes()})


def chunk_by_size(n: int, chunk_size: int) -> Chunks:
    """Consecutive chunks of ``chunk_size`` rows; a shorter last chunk is kept (NannyML ``incomplete='keep'``)."""
    if chunk_size < 1:
        raise ShiftbenchError(f"chunk_size must be a positive number of rows; got {chunk_size}")
    ids = np.arange(n) // chunk_size
    starts = np.arange(0, n, chunk_size)
    ends = np.minimum(starts + chunk_size, n) - 1
    return Chunks(ids, [f"[{a}:{b}]" for a, b in zip(starts, ends)])


def chunk_by_period(periods: Any) -> Chunks:
    """One chunk per distinct value of ``periods`` (e.g. ``timestamps.dt.to_period("M")``), in sorted order."""
    values = pd.Series(np.asarray(periods) if not isinstance(periods, pd.Series) else periods.to_numpy())
    if values.isna().any():
        raise ShiftbenchError(f"periods contain {int(values.isna().sum())} missing values; every row needs a period")
    codes, uniques = pd.factorize(values, sort=True)
    return Chunks(codes.astype(np.int64), [str(u) for u in uniques])


def make_chunks(n: int, chunk_size: int | None = None, periods: Any = None) -> Chunks:
    """Chunks by ``periods`` if given, else by ``chunk_size``, else one chunk holding everything."""
    if periods is not None and chunk_size is not None:
        raise ShiftbenchError("give either chunk_size or periods, not both")
    if periods is not None:
        if len(periods) != n:
            raise ShiftbenchError(f"periods has {len(periods)} entries but there are {n} rows")
        return chunk_by_period(periods)
    return chunk_by_size(n, chunk_size or max(n, 1))


def _binary_or_macro(score: Callable[..., float]) -> RealisedMetric:
    """A sklearn label metric, positive class 1 when binary and macro over classes otherwise;
    NaN when labels or predictions hold a single class (as NannyML reports it)."""

    def metric(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
        if len(np.unique(y)) < 2 or len(np.unique(pred)) < 2:
            return np.nan
        if n_classes == 2:
            return float(score(y, pred, zero_division=0))
        return float(score(y, pred, average="macro", labels=np.arange(n_classes), zero_division=0))

    return metric


def _roc_auc(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """ROC AUC of the uncalibrated scores; one-vs-rest macro when multiclass; NaN if a class is missing."""
    if n_classes == 2:
        return float(roc_auc_score(y, scores[:, 1])) if len(np.unique(y)) == 2 else np.nan
    if len(np.unique(y)) < n_classes:
        return np.nan
    return float(roc_auc_score(y, scores, multi_class="ovr", average="macro", labels=np.arange(n_classes)))


REALISED: dict[str, RealisedMetric] = {
    "accuracy": lambda y, scores, pred, k: float(np.mean(y == pred)),
    "precision": _binary_or_macro(precision_score),
    "recall": _binary_or_macro(recall_score),
    "f1": _binary_or_macro(f1_score),
    "roc_auc": _roc_auc,
}


def realised_metrics(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks,
                     metrics: tuple[str, ...]) -> pd.DataFrame:
    """The realised (label-based) value of each metric on each chunk."""
    k = scores.shape[1]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for idx in chunks.members():
            rows.append({m: REALISED[m](y[idx], scores[idx], pred[idx], k) if len(idx) else np.nan for m in metrics})
    return pd.DataFrame(rows, columns=list(metrics))


def reference_band(values: np.ndarray, n_std: float = 3.0, limits: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """NannyML's standard-deviation band: mean +- ``n_std`` population std of reference-chunk values, clipped."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isnan(values)):
        return limits
    centre, spread = np.nanmean(values), np.nanstd(values)
    return max(centre - n_std * spread, limits[0]), min(centre + n_std * spread, limits[1])


def add_alerts(estimates: pd.DataFrame, bands: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Add ``<metric>_lower``, ``<metric>_upper`` and ``<metric>_alert`` columns for each banded metric."""
    out = estimates.copy()
    for metric, (lo, hi) in bands.items():
        out[f"{metric}_lower"], out[f"{metric}_upper"] = lo, hi
        out[f"{metric}_alert"] = (out[metric] < lo) | (out[metric] > hi)
    return out


def plot_estimates(estimates: pd.DataFrame, metric: str = "accuracy", realised: Any = None,
                   path: str | Path | None = None, title: str | None = None) -> Any:
    """Estimated (and, if given, realised) ``metric`` per chunk with the alert band; alerts marked.

    Returns the matplotlib Figure (Agg backend); saved to ``path`` if given.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(estimates)), 3.6))
    x = np.arange(len(estimates))
    ax.plot(x, estimates[metric], marker="o", label=f"estimated {metric}")
    if realised is not None:
        ax.plot(x, np.asarray(realised, dtype=float), marker="s", linestyle="--", label=f"realised {metric}")
    if f"{metric}_lower" in estimates:
        ax.fill_between(x, estimates[f"{metric}_lower"], estimates[f"{metric}_upper"], alpha=0.15,
                        color="tab:green", label="reference band")
        alerts = estimates[f"{metric}_alert"].to_numpy(bool)
        ax.scatter(x[alerts], estimates[metric].to_numpy()[alerts], color="tab:red", zorder=3, s=60, label="alert")
    ax.set_xticks(x, estimates["key"] if "key" in estimates else x, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric}: estimated vs realised per chunk")
    ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
