"""Importance-weighted accuracy estimation under covariate shift.

Per target chunk, a domain classifier on the model's features gives density ratios
w(x) = p_chunk(x) / p_ref(x) at the reference rows (see ``_density_ratio``); the estimate is the
w-weighted accuracy of the model on the labelled reference.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_matrix, check_probs
from shiftbench.families import Batch, Outputs, PerformanceEstimator
from shiftbench.methods._density_ratio import DENSITY_RATIO_HYPERPARAMETERS, N_FOLDS, density_ratios


class ImportanceWeightedAccuracy(PerformanceEstimator):
    """Reference accuracy reweighted by feature density ratios to each target chunk."""

    name = "iw_estimator"
    hyperparameters = {**DENSITY_RATIO_HYPERPARAMETERS, "n_folds": N_FOLDS}
    grid: ClassVar[dict] = {"classifier": ["logistic"], "max_ratio": [10.0, 20.0]}

    def fit(self, reference: Outputs) -> ImportanceWeightedAccuracy:
        probs = check_probs(reference.probs, "reference.probs")
        y = check_labels(reference.y, probs.shape[1], "reference.y", n=len(probs))
        self.correct_ = (probs.argmax(1) == y).astype(np.float64)
        self.reference_feats_ = check_matrix(reference.feats, "reference.feats", n_rows=len(y)).astype(np.float64)
        return self

    def process(self, chunk: Batch) -> float:
        feats = check_matrix(chunk.feats, "chunk.feats", n_cols=self.reference_feats_.shape[1]).astype(np.float64)
        w = density_ratios(self.reference_feats_, feats, self.classifier, self.max_ratio, self.n_folds, self.random_state)
        return float(np.average(self.correct_, weights=w))
