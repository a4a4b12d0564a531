"""Classification metrics computed in shiftbench (not through ``wilds``, whose group averaging
imports ``torch_scatter``). Names follow WILDS: ``acc_avg``, ``acc_wg``, ``F1-macro_all``."""

from __future__ import annotations

import numpy as np

from shiftbench.arrays import check_labels, check_probs, to_numpy
from shiftbench.metric_facts import MetricFacts, register_metric


def group_accuracies(correct: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean of ``correct`` and group sizes (for groups present), vectorised with bincount."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    counts = np.bincount(groups, minlength=n_groups)
    sums = np.bincount(groups, weights=correct.astype(np.float64), minlength=n_groups)
    present = counts > 0
    return sums[present] / counts[present], counts[present]


def macro_f1(y: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes that occur in ``y`` or ``y_pred`` (sklearn's convention)."""
    cm = np.bincount(y * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(1), cm.sum(0)
    denom = support + predicted
    labels = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[labels].mean()) if labels.any() else 0.0


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    gap = np.abs(np.bincount(bins, weights=correct - conf, minlength=n_bins))
    return float(gap.sum() / max(len(y), 1))


def negative_log_likelihood(y: np.ndarray, probs: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log probability of the true class."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, None))))


register_metric("acc_avg", MetricFacts(proportion=True))
register_metric("acc_wg", MetricFacts(proportion=True))
register_metric("balanced_acc", MetricFacts(proportion=True))
register_metric("F1-macro_all", MetricFacts())
register_metric("ece", MetricFacts(lower_is_better=True))
register_metric("nll", MetricFacts(lower_is_better=True, high=float("inf"), scale=1.0))


def classification_metrics(y, y_pred, y_prob=None, groups=None, n_classes: int | None = None) -> dict[str, float]:
    """acc_avg, balanced_acc, F1-macro_all, acc_wg (worst group; classes if no groups), and with
    probabilities ece and nll."""
    y_prob = None if y_prob is None else check_probs(y_prob, "y_prob")
    if n_classes:
        k = n_classes
    elif y_prob is not None:
        k = y_prob.shape[1]
    else:
        k = int(max(to_numpy(y).max(), to_numpy(y_pred).max())) + 1
    y = check_labels(y, k, "y_true")
    y_pred = check_labels(y_pred, k, "y_pred", n=len(y))
    correct = y == y_pred
    class_acc, _ = group_accuracies(correct, y)
    group_acc = class_acc if groups is None else group_accuracies(correct, np.asarray(groups, dtype=np.int64))[0]
    out = {
        "acc_avg": float(correct.mean()),
        "balanced_acc": float(class_acc.mean()),
        "F1-macro_all": macro_f1(y, y_pred, k),
        "acc_wg": float(group_acc.min()),
    }
    if y_prob is not None:
        out["ece"] = expected_calibration_error(y, y_prob)
        out["nll"] = negative_log_likelihood(y, y_prob)
    return out
