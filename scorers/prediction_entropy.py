"""Prediction entropy (Morerio et al. 2018): confident target predictions score higher."""

from __future__ import annotations

import numpy as np

from shiftbench.scoring import Candidate, Scorer, ValidationView, prediction_entropy


class PredictionEntropy(Scorer):
    """Minus the mean prediction entropy on the target (confident predictions score higher)."""

    name = "prediction_entropy"

    def score_output(self, probs: np.ndarray) -> float:
        return -prediction_entropy(probs)

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        return self.score_output(candidate.predict_proba(view.target.X))
