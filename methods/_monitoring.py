"""Chunked performance monitoring for the CBPE plugins: realised metrics per chunk, alert bands, plots.

A monitored model's outputs arrive in **chunks** (:mod:`shiftbench.chunks`: fixed-size slices in arrival
order, or one chunk per value of a period column such as the month). A label-free estimator (CBPE, M-CBPE, ATC, DoC)
gives one estimate per chunk; an **alert** fires when an estimate leaves the reference band.
The band is NannyML's default: the realised metric on the reference set, chunked the same way,
mean +- 3 standard deviations (population std), clipped to the metric's range [0, 1]. Where the
reference is too small for ``MIN_REFERENCE_CHUNKS`` chunks of that size (e.g. monthly chunks larger
than the reference), it is cut into that many smaller chunks and the std is rescaled to the
monitored chunk size by sqrt(reference chunk size / chunk size), the standard-error scaling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from shiftbench.chunks import Chunks

#: fewest reference chunks a band's standard deviation is computed from
MIN_REFERENCE_CHUNKS = 6


def score_columns(n_classes: int) -> list[int]:
    """Class columns a metric is computed over: the positive class when binary, all classes otherwise."""
    return [1] if n_classes == 2 else list(range(n_classes))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (sklearn's ``zero_division=0``)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den != 0)


#: one-vs-rest metric from per-(chunk, class) TP, FP, FN counts (expected or realised)
CONFUSION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "precision": lambda tp, fp, fn: _ratio(tp, tp + fp),
    "recall": lambda tp, fp, fn: _ratio(tp, tp + fn),
    "f1": lambda tp, fp, fn: _ratio(tp, tp + 0.5 * (fp + fn)),
}


def confusion_by_chunk(q: np.ndarray, pred: np.ndarray, chunks: Chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN per (chunk, class), one-vs-rest, where q (n, K) is each row's class membership:
    one-hot labels give the realised counts, calibrated probabilities the expected ones (CBPE)."""
    m, k = len(chunks), q.shape[1]
    cell = chunks.ids * k + pred
    tp = np.bincount(cell, weights=q[np.arange(len(q)), pred], minlength=m * k).reshape(m, k)
    n_pred = np.bincount(cell, minlength=m * k).reshape(m, k)
    mass = np.bincount((chunks.ids[:, None] * k + np.arange(k)).ravel(), weights=q.ravel(),
                       minlength=m * k).reshape(m, k)
    return tp, n_pred - tp, mass - tp


def equal_size_groups(chunks: Chunks) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(chunk indices, row-index matrix (chunks, size)) for each group of equally sized chunks,
    so that per-chunk sorts and ranks run as one batched call per size."""
    members = chunks.members()
    sizes = np.array([len(i) for i in members])
    for size in np.unique(sizes[sizes > 0]):
        which = np.flatnonzero(sizes == size)
        yield which, np.stack([members[c] for c in which])


def realised_roc_auc(y: np.ndarray, scores: np.ndarray, chunks: Chunks) -> np.ndarray:
    """ROC AUC of the scores per chunk (Mann-Whitney with mid-ranks, equal to sklearn's), macro
    one-vs-rest when multiclass; NaN where a chunk lacks a class (binary: either; multiclass: any)."""
    columns = score_columns(scores.shape[1])
    out = np.full(len(chunks), np.nan)
    for which, rows in equal_size_groups(chunks):
        positive = y[rows][:, :, None] == np.asarray(columns)
        ranks = rankdata(scores[rows][:, :, columns], axis=1)
        n_pos = positive.sum(1)
        n_neg = rows.shape[1] - n_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (np.where(positive, ranks, 0.0).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        valid = ((n_pos > 0) & (n_neg > 0)).all(1)
        out[which] = np.where(valid, auc.mean(1), np.nan)
    return out


def _realised_accuracy(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks) -> np.ndarray:
    correct = np.bincount(chunks.ids, weights=(y == pred).astype(np.float64), minlength=len(chunks))
    return _ratio(correct, chunks.sizes().astype(np.float64))


def _realised_confusion_metric(name: str) -> Callable[..., np.ndarray]:
    """Realised precision / recall / F1 per chunk from one-hot confusion counts; NaN where the
    labels or the predictions of a chunk hold a single class (as NannyML reports it)."""

    def metric(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks) -> np.ndarray:
        k, m = scores.shape[1], len(chunks)
        tp, fp, fn = confusion_by_chunk(np.eye(k)[y], pred, chunks)
        n_classes = lambda v: (np.bincount(chunks.ids * k + v, minlength=m * k).reshape(m, k) > 0).sum(1)
        value = CONFUSION_METRICS[name](tp, fp, fn)[:, score_columns(k)].mean(1)
        return np.where((n_classes(y) < 2) | (n_classes(pred) < 2), np.nan, value)

    return metric


#: metric -> realised values per chunk from (labels, raw scores (n, K), predictions, chunks)
REALISED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, Chunks], np.ndarray]] = {
    "accuracy": _realised_accuracy,
    **{name: _realised_confusion_metric(name) for name in CONFUSION_METRICS},
    "roc_auc": lambda y, scores, pred, chunks: realised_roc_auc(y, scores, chunks),
}


def realised_metrics(y: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks,
                     metrics: tuple[str, ...]) -> pd.DataFrame:
    """The realised (label-based) value of each metric per chunk, with sklearn's definitions
    (binary: positive class 1; multiclass: macro over all classes, zero_division=0). Vectorised."""
    return pd.DataFrame({m: REALISED[m](y, scores, pred, chunks) for m in metrics}, columns=list(metrics))


METRICS = tuple(REALISED)


def reference_band(values: np.ndarray, n_std: float = 3.0, limits: tuple[float, float] = (0.0, 1.0),
                   scale: float = 1.0) -> tuple[float, float]:
    """NannyML's standard-deviation band: mean +- ``n_std`` population std of reference-chunk values
    (times ``scale``, for reference chunks smaller than the monitored ones), clipped to ``limits``."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isnan(values)):
        return limits
    centre, spread = np.nanmean(values), np.nanstd(values) * scale
    return max(centre - n_std * spread, limits[0]), min(centre + n_std * spread, limits[1])


def add_alerts(estimates: pd.DataFrame, bands: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Add ``<metric>_lower``, ``<metric>_upper`` and ``<metric>_alert`` columns for each banded metric (built
    as one frame and joined once: adding them one by one costs more than CBPE's arithmetic on a chunk)."""
    n, added = len(estimates), {}
    for metric, (lo, hi) in bands.items():
        values = estimates[metric].to_numpy()
        added[f"{metric}_lower"], added[f"{metric}_upper"] = np.full(n, lo), np.full(n, hi)
        added[f"{metric}_alert"] = (values < lo) | (values > hi)
    return pd.concat([estimates, pd.DataFrame(added, index=estimates.index)], axis=1)


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
    ax.set_title(title or f"{metric}: estimated vs realised per chunk", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


