"""Importance-weighted validation (IWCV, Sugiyama et al. 2007) with KDE density ratios."""

from __future__ import annotations

import numpy as np

from shiftbench.scoring import Candidate, Scorer, ValidationView, flat, kde_density_ratio


class ImportanceWeighted(Scorer):
    """IWCV: source-validation accuracy weighted by KDE density ratios p_t/p_s.

    The weights are normalised to sum 1. The densities are estimated on the validation parts (source and target), as skada does.
    """

    name = "importance_weighted"

    def __init__(self, bandwidth: float | str = 1.0):
        self.bandwidth = bandwidth

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        Xs, Xt = flat(view.X_val), flat(view.target.X)
        w = kde_density_ratio(Xs, Xs, Xt, self.bandwidth)
        w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
        correct = candidate.predict(view.X_val, "source") == view.y_val
        return float(np.sum(w * correct))
