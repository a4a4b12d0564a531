"""The official WILDS evaluation of each dataset, computed in shiftbench with numpy.

``wilds``' own ``eval()`` averages over groups with ``torch_scatter`` (which has no wheel here),
so every metric below is recomputed from its definition: same metric names, same group names
(taken from the WILDS dataset's own ``CombinatorialGrouper``), same conventions for empty groups
(metric 0, count 0) and for worst-group aggregation. ``tests/test_wilds.py`` checks each one
against ``wilds``' ``eval()`` run with an equivalent of its group averaging.

Every evaluator has the signature ``(wilds_dataset, y_true, y_pred, metadata) -> dict`` where
``metadata`` is the (N, len(metadata_fields)) array in WILDS' field order.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from scipy.stats import pearsonr
from sklearn.metrics import average_precision_score

Evaluator = Callable[[Any, np.ndarray, Any, np.ndarray], dict[str, float]]

#: Waterbirds' adjusted average: group accuracies weighted by the training-set group sizes (WILDS).
WATERBIRDS_TRAIN_GROUP_SIZES = {
    "acc_y:landbird_background:land": 3498,
    "acc_y:landbird_background:water": 184,
    "acc_y:waterbird_background:land": 56,
    "acc_y:waterbird_background:water": 1057,
}


def group_means(values: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` per group 0..n_groups-1 (0 for an empty group) and the group sizes."""
    counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
    sums = np.bincount(groups, weights=values.astype(np.float64), minlength=n_groups)
    means = np.divide(sums, counts, out=np.zeros(n_groups), where=counts > 0)
    return means, counts


def group_ids(grouper: Any, metadata: np.ndarray) -> np.ndarray:
    """Group index of each row, by a WILDS ``CombinatorialGrouper``."""
    return grouper.metadata_to_group(torch.as_tensor(np.array(metadata))).numpy().astype(np.int64)


def _worst(values: np.ndarray, worst: Callable) -> float:
    finite = values[~np.isnan(values)]
    return float(worst(finite)) if finite.size else 0.0


def grouped_metric(name: str, per_group: np.ndarray, counts: np.ndarray, grouper: Any,
                   worst: Callable = np.min) -> dict[str, float]:
    """``<name>_<group>`` and ``count_<group>`` for every group, and ``<name>_wg`` over non-empty groups."""
    out: dict[str, float] = {}
    for g in range(grouper.n_groups):
        label = grouper.group_field_str(g)
        out[f"{name}_{label}"] = float(per_group[g])
        out[f"count_{label}"] = float(counts[g])
    out[f"{name}_wg"] = _worst(per_group[counts > 0], worst)
    return out


def elementwise_group_eval(name: str, values: np.ndarray, grouper: Any, metadata: np.ndarray,
                           worst: Callable = np.min) -> dict[str, float]:
    """WILDS' ``standard_group_eval`` for an element-wise metric: ``<name>_avg``, per group, worst group."""
    means, counts = group_means(values, group_ids(grouper, metadata), grouper.n_groups)
    return {f"{name}_avg": float(values.mean()) if len(values) else 0.0,
            **grouped_metric(name, means, counts, grouper, worst)}


def statistic_group_eval(name: str, statistic: Callable[[np.ndarray, np.ndarray], float], y_pred: np.ndarray,
                         y_true: np.ndarray, grouper: Any, metadata: np.ndarray) -> dict[str, float]:
    """WILDS' ``standard_group_eval`` for a whole-set statistic (Pearson r): ``<name>_all``, per group, worst."""
    groups = group_ids(grouper, metadata)
    counts = np.bincount(groups, minlength=grouper.n_groups).astype(np.float64)
    per_group = np.array([statistic(y_pred[groups == g], y_true[groups == g]) if counts[g] else 0.0
                          for g in range(grouper.n_groups)])
    return {f"{name}_all": statistic(y_pred, y_true) if len(y_true) else 0.0,
            **grouped_metric(name, per_group, counts, grouper)}


def macro_recall_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """Macro recall and F1 over the classes present in ``y_true`` (scikit-learn with
    ``labels=unique(y_true)``; a class never predicted has precision 0)."""
    labels = np.unique(y_true)
    tp = np.array([np.sum((y_true == c) & (y_pred == c)) for c in labels], dtype=np.float64)
    support = np.array([np.sum(y_true == c) for c in labels], dtype=np.float64)
    predicted = np.array([np.sum(y_pred == c) for c in labels], dtype=np.float64)
    return float(np.mean(tp / support)), float(np.mean(2 * tp / (support + predicted)))


def pearson_r(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Pearson correlation of two vectors (NaN when undefined, as scipy gives it)."""
    if len(y_true) < 2:
        return float("nan")
    return float(pearsonr(np.ravel(y_pred), np.ravel(y_true))[0])


# ---- per-dataset evaluators ---------------------------------------------------------------


def accuracy_by_eval_grouper(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """camelyon17 (by slide), rxrx1 (by cell type), celebA (by male x y): acc_avg, per group, acc_wg."""
    return elementwise_group_eval("acc", (y_pred == y_true).astype(np.float64), ds._eval_grouper, metadata)


def waterbirds(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """Accuracy by (background, y), reported as ``adj_acc_avg`` (train-weighted groups) instead of acc_avg."""
    out = accuracy_by_eval_grouper(ds, y_true, y_pred, metadata)
    weights = WATERBIRDS_TRAIN_GROUP_SIZES
    out["adj_acc_avg"] = sum(out[k] * w for k, w in weights.items()) / sum(weights.values())
    del out["acc_avg"]
    return out


def iwildcam(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """acc_avg, recall-macro_all and the official F1-macro_all (classes present in the split)."""
    recall, f1 = macro_recall_f1(y_true, y_pred)
    return {"acc_avg": float(np.mean(y_pred == y_true)), "recall-macro_all": recall, "F1-macro_all": f1}


def fmow(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """Accuracy by year (acc_worst_year) and by region (official acc_worst_region, region 'Other' excluded)."""
    correct = (y_pred == y_true).astype(np.float64)
    out = elementwise_group_eval("acc", correct, ds._eval_groupers["year"], metadata)
    out["acc_worst_year"] = out.pop("acc_wg")
    region = ds._eval_groupers["region"]
    means, counts = group_means(correct, group_ids(region, metadata), region.n_groups)
    kept = []
    for g in range(region.n_groups):
        label = region.group_field_str(g)
        out[f"acc_{label}"], out[f"count_{label}"] = float(means[g]), float(counts[g])
        if counts[g] > 0 and "Other" not in label:
            kept.append(float(means[g]))
    out["acc_worst_region"] = min(kept) if kept else 0.0
    return out


def civilcomments(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """acc_avg and, per identity, accuracy on its toxic and non-toxic comments; acc_wg is the worst of
    those 16 groups (an empty group counts as 0, as in WILDS)."""
    correct = (y_pred == y_true).astype(np.float64)
    out = {"acc_avg": float(correct.mean()) if len(correct) else 0.0}
    worst = None
    for identity, grouper in zip(ds._identity_vars, ds._eval_groupers):
        means, counts = group_means(correct, group_ids(grouper, metadata), grouper.n_groups)
        for g in range(grouper.n_groups):
            label = grouper.group_field_str(g)
            if f"{identity}:1" in label:
                out[f"acc_{label}"], out[f"count_{label}"] = float(means[g]), float(counts[g])
                worst = float(means[g]) if worst is None else min(worst, float(means[g]))
    out["acc_wg"] = worst
    return out


def amazon(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """By user (official scheme): acc_avg, per-user accuracy, the official 10th_percentile_acc and acc_wg."""
    correct = (y_pred == y_true).astype(np.float64)
    out = elementwise_group_eval("acc", correct, ds._eval_grouper, metadata)
    if ds.split_scheme == "user":
        counts = np.array([out[f"count_{ds._eval_grouper.group_field_str(g)}"] for g in range(ds._eval_grouper.n_groups)])
        accs = np.array([out[f"acc_{ds._eval_grouper.group_field_str(g)}"] for g in range(ds._eval_grouper.n_groups)])
        out["10th_percentile_acc"] = float(np.percentile(accs[counts > 0], 10))
    return out


def poverty(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """MSE (worst = largest) and Pearson r (official r_wg: worst of urban / rural) by urban."""
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_true), -1)
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    sq = ((y_pred - y_true) ** 2).mean(axis=1)
    return {**elementwise_group_eval("mse", sq, ds._eval_grouper, metadata, worst=np.max),
            **statistic_group_eval("r", pearson_r, y_pred, y_true, ds._eval_grouper, metadata)}


def py150(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """Token accuracy on class and method names (official ``acc``), overall and per token type."""
    tok_type = np.asarray(metadata)[:, 1:-1]
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred)

    def acc(mask: np.ndarray) -> float:
        return float(np.mean(y_pred[mask] == y_true[mask])) if mask.any() else 0.0

    types = ds._TYPE2ID
    headline = acc((tok_type == types["class"]) | (tok_type == types["method"]))
    out = {"acc": headline, "Acc (Class-Method)": headline, "Acc (Overall)": acc(~np.isnan(y_true))}
    out.update({f"Acc ({name})": acc(tok_type == tid) for name, tid in types.items() if name != "masked"})
    return out


def ogb_molpcba(ds: Any, y_true, y_pred, metadata) -> dict[str, float]:
    """OGB's ``ap``: mean over tasks with both classes among labelled molecules of the average precision."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    aps = []
    for t in range(y_true.shape[1]):
        col = y_true[:, t]
        if np.sum(col == 1) > 0 and np.sum(col == 0) > 0:
            labelled = ~np.isnan(col)
            aps.append(average_precision_score(col[labelled], y_pred[labelled, t]))
    if not aps:
        from shiftbench.errors import ShiftbenchError

        raise ShiftbenchError("ogb-molpcba: no task has both positive and negative labels in this split; AP is undefined")
    return {"ap": float(np.mean(aps))}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (x1, y1, x2, y2): (M, 4) x (N, 4) -> (M, N)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def detection_accuracy(true_boxes: np.ndarray, pred_boxes: np.ndarray, iou_threshold: float = 0.5) -> float:
    """Global Wheat's per-image accuracy TP / (TP + FP + FN): each prediction is matched to its
    highest-IoU box if IoU >= threshold; boxes matched at least once are TP, unmatched or duplicate
    predictions FP, unmatched boxes FN."""
    n_true, n_pred = len(true_boxes), len(pred_boxes)
    if n_true == 0:
        return 0.0 if n_pred else 1.0
    if n_pred == 0:
        return 0.0
    iou = box_iou(np.asarray(true_boxes, dtype=np.float64), np.asarray(pred_boxes, dtype=np.float64))
    match = iou.argmax(axis=0)
    matched = match[iou.max(axis=0) >= iou_threshold]
    tp = len(np.unique(matched))
    fp = (n_pred - len(matched)) + (len(matched) - tp)
    fn = n_true - tp
    return tp / (tp + fp + fn)


def globalwheat(ds: Any, y_true, y_pred, metadata, score_threshold: float = 0.5) -> dict[str, float]:
    """Detection accuracy per image (predictions with score > 0.5, IoU 0.5) by session, and
    ``detection_acc_avg_dom`` (mean over non-empty sessions)."""
    per_image = np.array([
        detection_accuracy(np.asarray(t["boxes"]).reshape(-1, 4),
                           np.asarray(p["boxes"]).reshape(-1, 4)[np.asarray(p["scores"]) > score_threshold])
        for t, p in zip(y_true, y_pred)])
    out = elementwise_group_eval("detection_acc", per_image, ds._eval_grouper, metadata)
    sessions = [out[k] for k in out if k.startswith("detection_acc_session:")
                and out[f"count_session:{k.split(':')[1]}"] > 0]
    out["detection_acc_avg_dom"] = float(np.mean(sessions))
    return out
