"""Importance-weighted accuracy estimation under covariate shift.

Per target chunk, a domain classifier on the model's features gives density ratios
w(x) = p_chunk(x) / p_ref(x) at the reference rows (see ``_density_ratio``); the estimate is the
w-weighted accuracy of the model on the labelled reference.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_matrix, check_probs
from shiftbench.families import PerformanceEstimator
from shiftbench.methods._density_ratio import check_options, density_ratios


class ImportanceWeightedAccuracy(PerformanceEstimator):
    """Reference accuracy reweighted by feature density ratios to each target chunk."""

    name = "iw_estimator"
    grid: ClassVar[dict] = {"classifier": ["logistic"], "max_ratio": [10.0, 20.0]}
    uses_features = True

    def __init__(self, classifier: str = "logistic", max_ratio: float = 20.0, n_folds: int = 5):
        check_options(self.name, classifier, max_ratio, n_folds)
        self.classifier, self.max_ratio, self.n_folds = classifier, max_ratio, n_folds

    def fit(self, reference_probs: np.ndarray, reference_y: np.ndarray,
            reference_feats: np.ndarray | None = None) -> ImportanceWeightedAccuracy:
        probs = check_probs(reference_probs, "reference_probs")
        y = check_labels(reference_y, probs.shape[1], "reference_y", n=len(probs))
        self.correct_ = (probs.argmax(1) == y).astype(np.float64)
        self.reference_feats_ = check_matrix(reference_feats, "reference_feats", n_rows=len(y)).astype(np.float64)
        return self

    def estimate_accuracy(self, probs: np.ndarray, feats: np.ndarray | None = None) -> float:
        feats = check_matrix(feats, "feats", n_cols=self.reference_feats_.shape[1]).astype(np.float64)
        w = density_ratios(self.reference_feats_, feats, self.classifier, self.max_ratio, self.n_folds, self.random_state)
        return float(np.average(self.correct_, weights=w))
