"""Circular (reverse) validation (Bruzzone & Marconcini 2010)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from shiftbench.scoring import Candidate, Scorer, ValidationView


class CircularValidation(Scorer):
    """Circular validation: a backward model from the pseudo-labelled target, scored on source labels.

    Bruzzone & Marconcini: refit the same setting from the target (pseudo-labelled by the candidate)
    back to the source; the balanced accuracy of that backward model on the source validation labels."""

    name = "circular"

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        pseudo = candidate.predict(view.target.X)
        if len(np.unique(pseudo)) == 1:
            return float(balanced_accuracy_score(view.y_val, np.full(len(view.y_val), pseudo[0])))
        classes, encoded = np.unique(pseudo, return_inverse=True)
        backward = candidate.refit(view.target.X, encoded, view.X_val)
        return float(balanced_accuracy_score(view.y_val, classes[backward.predict(view.X_val)]))
