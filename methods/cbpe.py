"""Confidence-based performance estimation: CBPE (NannyML) and M-CBPE (Białek et al. 2024).

**CBPE.** On a labelled reference set, each class score (binary: the positive-class score;
multiclass: each one-vs-rest column) is recalibrated by isotonic regression if that lowers the
expected calibration error, judged exactly as NannyML judges it: skip if the reference holds one
class or the score's ROC AUC exceeds 0.999; else 10 stratified shuffle splits (test size 0.1,
random_state 42), isotonic fits on each train part, and the ECE of the pooled test parts before vs
after calibration, with 10 equal-count bins over the sorted scores. Multiclass calibrated columns
are renormalised to sum to one (uniform where all are zero). On an unlabelled chunk, calibrated
probabilities q stand in for the labels: expected TP = sum of q over rows predicted positive,
FP = sum of 1 - q there, FN = sum of q over rows predicted negative; accuracy = mean q of the
predicted class; precision, recall, F1 from these expected counts (macro over classes one-vs-rest);
ROC AUC from the curve whose true-positive mass is the calibrated q, ordered by the uncalibrated
score (cumulative sums rounded to 5 decimals, as NannyML does). All chunks are estimated in one
vectorised pass (bincounts over chunk x class, one batched sort per chunk size for ROC AUC).

**M-CBPE** (multi-calibrated CBPE; Białek, Kivimäki, Kuberski, Perrakis 2024, "Estimating Model
Performance Under Covariate Shift Without Labels", arXiv:2401.08348, later renamed PAPE). Under covariate
shift the reference calibration no longer holds on the chunk; the calibrator is refitted for each chunk on
the reference weighted by the density ratio w(x) = p_chunk(x) / p_ref(x). The choices made here:

- density ratio from a domain classifier (reference = 0, chunk = 1) on the covariates,
  ``classifier="logistic"`` (standardised features, L2 logistic regression; stable for the small
  chunks of a stream) or ``"gbm"`` (histogram gradient boosting, the paper's LightGBM analogue);
- reference rows are scored **out of fold** (``n_folds``-fold cross-fitting over reference + chunk),
  so the classifier cannot memorise the rows it weights;
- the classifier's probabilities become ratios by ``ratio`` (``_density_ratio``): ``"clip"``,
  w = P(chunk|x) / P(ref|x) * n_ref / n_chunk with probabilities clipped to [1e-6, 1 - 1e-6], ratios
  clipped at ``max_ratio`` times their mean and normalised to mean 1 (weight clipping bounds the variance
  that a few extreme ratios would otherwise cause); or ``"paper"``, the importance-weighting recipe of
  the authors' published code (NannyML/paper_mcbpe), n_ref / n_chunk * p / max(0.05, 1 - p), floored at 0.001;
- calibrator: weighted isotonic regression per class score (always applied: the weighted fit is
  the point of the method), multiclass columns renormalised as in CBPE; then the CBPE formulas.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.extmath import _approximate_mode

from shiftbench.arrays import check_labels, check_matrix, check_probs, to_numpy
from shiftbench.chunks import Chunks, make_chunks
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Outputs, PerformanceEstimator
from shiftbench.methods._density_ratio import (DENSITY_RATIO_HYPERPARAMETERS, N_FOLDS, RATIO_TREATMENT,
                                                density_ratios)
from shiftbench.methods._monitoring import (CONFUSION_METRICS, METRICS, MIN_REFERENCE_CHUNKS, add_alerts,
                                            confusion_by_chunk, equal_size_groups, realised_metrics, reference_band,
                                            score_columns)
from shiftbench.validation import check_int


# ----------------------------------------------------------------------------- inputs


def as_score_matrix(proba: Any, name: str = "proba") -> np.ndarray:
    """(N, K) class probabilities, N >= 1; a 1-D positive-class score becomes the binary matrix [1 - p, p]."""
    p = to_numpy(proba, name)
    if p.ndim == 1:
        p = check_matrix(p[:, None], name, min_rows=1).astype(np.float64)
        if (p < 0).any() or (p > 1).any():
            raise ShiftbenchError(f"{name}: binary scores must lie in [0, 1]; did you pass logits?")
        return np.hstack([1.0 - p, p])
    return check_probs(p, name, min_rows=1).astype(np.float64)


def predicted_classes(pred: Any, scores: np.ndarray, name: str = "pred") -> np.ndarray:
    """The monitored model's predicted classes; the argmax of ``scores`` when not given."""
    if pred is None:
        return scores.argmax(1)
    return check_labels(pred, scores.shape[1], name, n=len(scores))


# ----------------------------------------------------------------------------- calibration


def _equal_count_edges(n: int, n_bins: int) -> np.ndarray:
    """Edges of NannyML's equal-count bins over n sorted values (at least 2 values per bin)."""
    if n <= 2 * n_bins:
        n_bins = n // 2
        if n_bins < 2:
            raise ShiftbenchError(f"reference_proba is too small to judge calibration ({n} test rows); give more rows")
    edges = np.arange(0, n + 1, n // n_bins)
    edges[-1] = n
    return edges


def binned_calibration_error(y: np.ndarray, p: np.ndarray, edges: np.ndarray) -> float:
    """Expected calibration error over equal-count bins of the sorted scores (bins given by ``edges``)."""
    order = np.argsort(p)
    p, y = p[order], y[order].astype(np.float64)
    lefts, counts = edges[:-1], np.diff(edges)
    gap = np.abs(np.add.reduceat(p, lefts) / counts - np.add.reduceat(y, lefts) / counts)
    return float(np.sum(counts / len(p) * gap))


def isotonic() -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", increasing=True)


#: share of the reference held out by each of NannyML's stratified calibration splits, and the fewest reference
#: rows for which that share (rounded up) holds the two rows a split of both classes needs
CALIBRATION_TEST_SIZE = 0.1
MIN_CALIBRATION_ROWS = 11


def stratified_shuffle_splits(y: np.ndarray, n_splits: int, test_size: float,
                              seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) indices of scikit-learn's ``StratifiedShuffleSplit(n_splits, test_size=test_size,
    random_state=seed)`` on labels ``y``, drawn from the same random stream in the same order (so identical),
    with the per-class parts joined as arrays rather than through Python lists; ``y`` holds every class twice."""
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    n_test = int(np.ceil(test_size * len(y)))
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    splits = []
    for _ in range(n_splits):
        n_i = _approximate_mode(class_counts, len(y) - n_test, rng)
        t_i = _approximate_mode(class_counts - n_i, n_test, rng)
        parts = [members.take(rng.permutation(len(members)), mode="clip") for members in class_indices]
        train = np.concatenate([part[:n] for part, n in zip(parts, n_i)])
        test = np.concatenate([part[n:n + t] for part, n, t in zip(parts, n_i, t_i)])
        splits.append((rng.permutation(train), rng.permutation(test)))
    return splits


def needs_calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10, n_splits: int = 10) -> bool:
    """Whether isotonic recalibration lowers the ECE of binary score ``p`` (NannyML's rule)."""
    if len(np.unique(y)) == 1 or roc_auc_score(y, p) > 0.999:
        return False
    if np.bincount(y).min() < 2:
        raise ShiftbenchError("a class has a single reference example, too few to judge calibration with "
                              "stratified splits; give a reference_y with at least 2 examples of every class present")
    if len(y) < MIN_CALIBRATION_ROWS:
        raise ShiftbenchError(f"reference_proba has {len(y)} rows, too few to judge calibration: each stratified "
                              f"test split ({CALIBRATION_TEST_SIZE:.0%}) needs both classes; give at least "
                              f"{MIN_CALIBRATION_ROWS} rows")
    ys, raw, cal = [], [], []
    for train, test in stratified_shuffle_splits(y, n_splits, CALIBRATION_TEST_SIZE, 42):
        ys.append(y[test])
        raw.append(p[test])
        cal.append(isotonic().fit(p[train], y[train]).predict(p[test]))
    ys, raw, cal = np.concatenate(ys), np.concatenate(raw), np.concatenate(cal)
    edges = _equal_count_edges(len(raw), n_bins)
    return binned_calibration_error(ys, raw, edges) > binned_calibration_error(ys, cal, edges)


def calibrated_matrix(scores: np.ndarray, calibrators: dict[int, IsotonicRegression | None]) -> np.ndarray:
    """Apply per-column calibrators (``None`` = identity) and renormalise rows (binary: [1 - q, q])."""
    k = scores.shape[1]
    if k == 2:
        c = calibrators[1]
        q = scores[:, 1] if c is None else c.predict(scores[:, 1])
        return np.column_stack([1.0 - q, q])
    q = np.column_stack([scores[:, j] if calibrators[j] is None else calibrators[j].predict(scores[:, j])
                         for j in range(k)])
    total = q.sum(1, keepdims=True)
    return np.divide(q, total, out=np.full_like(q, 1.0 / k), where=total != 0)


# ----------------------------------------------------------------------------- estimation formulas


def estimated_roc_auc(q: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks) -> np.ndarray:
    """Expected ROC AUC per chunk (macro over score columns): positive mass q ordered by the raw
    scores, as NannyML computes it; equal-size chunks are sorted in one batched argsort."""
    columns = score_columns(q.shape[1])
    out = np.full(len(chunks), np.nan)
    for which, rows in equal_size_groups(chunks):
        size = rows.shape[1]
        order = np.argsort(scores[rows][:, :, columns], axis=1)[:, ::-1]
        tps = np.cumsum(np.take_along_axis(q[rows][:, :, columns], order, axis=1), axis=1)
        fps = np.arange(1, size + 1)[None, :, None] - tps
        pad = np.zeros((len(which), 1, len(columns)))
        tps, fps = np.round(np.concatenate([pad, tps], 1), 5), np.round(np.concatenate([pad, fps], 1), 5)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[which] = np.trapezoid(tps / tps[:, -1:], fps / fps[:, -1:], axis=1).mean(1)
    return out


def _estimated_accuracy(q: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks) -> np.ndarray:
    """Mean calibrated probability of the predicted class per chunk."""
    mass = np.bincount(chunks.ids, weights=q[np.arange(len(q)), pred], minlength=len(chunks))
    return mass / np.maximum(chunks.sizes(), 1)


def _estimated_confusion_metric(name: str) -> Callable[..., np.ndarray]:
    """Precision / recall / F1 per chunk from expected TP, FP, FN (macro over score columns)."""

    def metric(q: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks) -> np.ndarray:
        tp, fp, fn = confusion_by_chunk(q, pred, chunks)
        return CONFUSION_METRICS[name](tp, fp, fn)[:, score_columns(q.shape[1])].mean(1)

    return metric


#: metric -> estimates per chunk from (calibrated q (n, K), raw scores (n, K), predictions, chunks)
ESTIMATED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, Chunks], np.ndarray]] = {
    "accuracy": _estimated_accuracy,
    **{name: _estimated_confusion_metric(name) for name in CONFUSION_METRICS},
    "roc_auc": estimated_roc_auc,
}


def estimate_metrics(q: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks,
                     metrics: tuple[str, ...]) -> pd.DataFrame:
    """CBPE estimates of ``metrics`` for every chunk at once, next to the chunks' keys and sizes."""
    return chunks.frame().assign(**{m: ESTIMATED[m](q, scores, pred, chunks) for m in metrics})


# ----------------------------------------------------------------------------- estimators


class ConfidenceBasedEstimator:
    """Shared fit/estimate flow: validate, calibrate (per subclass), estimate all chunks, add the alert band."""

    def __init__(self, metrics: tuple[str, ...] = ("accuracy", "f1", "roc_auc")):
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise ShiftbenchError(f"unknown metrics {unknown or '(none given)'}; valid metrics: {', '.join(METRICS)}")
        self.metrics = metrics

    def _fit_reference(self, proba: Any, y: Any, pred: Any) -> None:
        self.reference_scores_ = as_score_matrix(proba, "reference_proba")
        self.n_classes_ = self.reference_scores_.shape[1]
        self.reference_y_ = check_labels(y, self.n_classes_, "reference_y", n=len(self.reference_scores_))
        self.reference_pred_ = predicted_classes(pred, self.reference_scores_, "reference_pred")
        self._bands_by_size: dict[tuple[int, tuple[str, ...]], dict[str, tuple[float, float]]] = {}

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_scores_"):
            raise ShiftbenchError(f"{type(self).__name__} is not fitted; call .fit(...) with the labelled reference first")

    def _inputs(self, proba: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        scores = as_score_matrix(proba, "proba")
        if scores.shape[1] != self.n_classes_:
            raise ShiftbenchError(f"proba has {scores.shape[1]} classes but the reference had {self.n_classes_}")
        return scores, predicted_classes(pred, scores, "pred")

    def _chunks(self, n: int, chunk_size: Any, periods: Any) -> Chunks:
        """The chunks of ``n`` rows, after checking that ``chunk_size`` is a positive integer or None."""
        check_int(chunk_size, "chunk_size", type(self).__name__, allow_none=True)
        return make_chunks(n, chunk_size, periods)

    def bands(self, chunks: Chunks) -> dict[str, tuple[float, float]]:
        """Alert band per metric from the reference chunked like ``chunks`` (their median size); computed once
        per median size, as a stream of single-chunk calls asks for the same band again and again."""
        size = max(int(np.median(chunks.sizes())), 1)
        key = (size, self.metrics)
        if key not in self._bands_by_size:
            self._bands_by_size[key] = self._reference_bands(size)
        return dict(self._bands_by_size[key])

    def _reference_bands(self, size: int) -> dict[str, tuple[float, float]]:
        ref_size = min(size, max(len(self.reference_y_) // MIN_REFERENCE_CHUNKS, 1))
        ref_chunks = make_chunks(len(self.reference_y_), chunk_size=ref_size)
        realised = realised_metrics(self.reference_y_, self.reference_scores_, self.reference_pred_, ref_chunks,
                                    self.metrics)
        scale = np.sqrt(ref_size / size)
        return {m: reference_band(realised[m].to_numpy(), scale=scale) for m in self.metrics}

    def _table(self, q: np.ndarray, scores: np.ndarray, pred: np.ndarray, chunks: Chunks) -> pd.DataFrame:
        return add_alerts(estimate_metrics(q, scores, pred, chunks, self.metrics), self.bands(chunks))


class CBPE(ConfidenceBasedEstimator):
    """NannyML's confidence-based performance estimation (binary and multiclass, one-vs-rest macro)."""

    def fit(self, reference_proba: Any, reference_y: Any, reference_pred: Any = None) -> CBPE:
        """Decide per class score whether to recalibrate, and fit the isotonic calibrators."""
        self._fit_reference(reference_proba, reference_y, reference_pred)
        self.calibrators_: dict[int, IsotonicRegression | None] = {}
        for j in score_columns(self.n_classes_):
            target = (self.reference_y_ == j).astype(np.int64)
            p = self.reference_scores_[:, j]
            self.calibrators_[j] = isotonic().fit(p, target) if needs_calibration(target, p) else None
        return self

    def calibrate(self, proba: Any) -> np.ndarray:
        """Calibrated class probabilities (N, K) of ``proba``."""
        self._check_fitted()
        return calibrated_matrix(as_score_matrix(proba), self.calibrators_)

    def estimate(self, proba: Any, pred: Any = None, chunk_size: int | None = None, periods: Any = None) -> pd.DataFrame:
        """Estimated metrics per chunk (by ``chunk_size`` rows or by ``periods`` labels), with alert band."""
        scores, pred = self._inputs(proba, pred)
        chunks = self._chunks(len(scores), chunk_size, periods)
        return self._table(calibrated_matrix(scores, self.calibrators_), scores, pred, chunks)


class MCBPE(ConfidenceBasedEstimator):
    """M-CBPE: CBPE with the calibrator refitted per chunk on density-ratio-weighted reference data."""

    #: seeds the density-ratio folds and classifier; set the attribute to change it (the runner's plugin
    #: sets it from the cell's seed)
    random_state: int = 0

    def __init__(self, metrics: tuple[str, ...] = ("accuracy", "f1", "roc_auc"), classifier: str = "logistic",
                 max_ratio: float = 20.0, n_folds: int = 5, ratio: str = "clip"):
        super().__init__(metrics)
        owner = type(self).__name__
        self.classifier = DENSITY_RATIO_HYPERPARAMETERS["classifier"].check(classifier, "classifier", owner)
        self.max_ratio = DENSITY_RATIO_HYPERPARAMETERS["max_ratio"].check(max_ratio, "max_ratio", owner)
        self.n_folds = N_FOLDS.check(n_folds, "n_folds", owner)
        self.ratio = RATIO_TREATMENT.check(ratio, "ratio", owner)

    def fit(self, X_ref: Any, proba: Any, y: Any, pred: Any = None) -> MCBPE:
        """Store the labelled reference: covariates, scores, labels and predictions."""
        self._fit_reference(proba, y, pred)
        self.X_ref_ = check_matrix(X_ref, "X_ref", n_rows=len(self.reference_y_)).astype(np.float64)
        return self

    def chunk_calibrators(self, X_chunk: np.ndarray) -> dict[int, IsotonicRegression]:
        """Isotonic calibrators fitted on the reference weighted by its density ratio to ``X_chunk``."""
        w = density_ratios(self.X_ref_, X_chunk, self.classifier, self.max_ratio, self.n_folds, self.random_state,
                           self.ratio)
        return {j: isotonic().fit(self.reference_scores_[:, j], (self.reference_y_ == j).astype(np.float64),
                                  sample_weight=w)
                for j in score_columns(self.n_classes_)}

    def estimate(self, X: Any, proba: Any, pred: Any = None, chunk_size: int | None = None,
                 periods: Any = None) -> pd.DataFrame:
        """Estimated metrics per chunk, each with its own density-ratio-weighted calibration."""
        scores, pred = self._inputs(proba, pred)
        X = check_matrix(X, "X", n_rows=len(scores), n_cols=self.X_ref_.shape[1]).astype(np.float64)
        chunks = self._chunks(len(scores), chunk_size, periods)
        q = np.empty_like(scores)
        for idx in chunks.members():
            if len(idx):
                q[idx] = calibrated_matrix(scores[idx], self.chunk_calibrators(X[idx]))
        return self._table(q, scores, pred, chunks)


# ----------------------------------------------------------------------------- runner plugins


class CBPEEstimator(PerformanceEstimator):
    """CBPE (NannyML): accuracy of argmax predictions from isotonic-calibrated confidences."""

    name = "cbpe"
    grid: ClassVar[dict] = {}

    def fit(self, reference: Outputs) -> CBPEEstimator:
        self.cbpe_ = CBPE(metrics=("accuracy",)).fit(reference.probs, reference.y)
        return self

    def process(self, chunk: Batch) -> float:
        return float(self.cbpe_.estimate(chunk.probs)["accuracy"].iloc[0])


class MCBPEEstimator(PerformanceEstimator):
    """M-CBPE (Białek et al. 2024): CBPE recalibrated per chunk by feature density ratios."""

    name = "mcbpe"
    hyperparameters = {**DENSITY_RATIO_HYPERPARAMETERS, "ratio": RATIO_TREATMENT}
    #: today's clipped ratios with a logistic classifier, and the boosted classifier with either ratio treatment
    grid: ClassVar[list] = [{"classifier": ["logistic"], "max_ratio": [10.0, 20.0]},
                            {"classifier": ["gbm"], "ratio": ["clip", "paper"]}]

    def fit(self, reference: Outputs) -> MCBPEEstimator:
        self.mcbpe_ = MCBPE(metrics=("accuracy",), classifier=self.classifier, max_ratio=self.max_ratio,
                            ratio=self.ratio)
        self.mcbpe_.random_state = self.random_state
        self.mcbpe_.fit(reference.feats, reference.probs, reference.y)
        return self

    def process(self, chunk: Batch) -> float:
        return float(self.mcbpe_.estimate(chunk.feats, chunk.probs)["accuracy"].iloc[0])
