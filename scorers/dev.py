"""Deep embedded validation (You et al. 2019)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from shiftbench.scoring import Candidate, Scorer, ValidationView, cross_entropy, dev_risk, flat


class DeepEmbeddedValidation(Scorer):
    """Minus the deep embedded validation risk (importance-weighted source loss with a control variate).

    A logistic domain classifier on the candidate's features of the source train part (domain 1) and
    the target (domain 0) gives density ratios on the source validation part."""

    name = "dev"

    def weights_and_losses(self, candidate: Candidate, view: ValidationView) -> tuple[np.ndarray, np.ndarray]:
        """Density ratios p_t/p_s and cross-entropy losses on the source validation part."""
        f_train = flat(candidate.features(view.X_train, "source"))
        f_val = flat(candidate.features(view.X_val, "source"))
        f_target = flat(candidate.features(view.target.X, "target"))
        domain = np.r_[np.ones(len(f_train)), np.zeros(len(f_target))]
        clf = LogisticRegression().fit(np.vstack([f_train, f_target]), domain)
        p = clf.predict_proba(f_val)  # columns: target (0), source (1)
        weights = len(f_train) / len(f_target) * p[:, 0] / p[:, 1]
        return weights, cross_entropy(view.y_val, candidate.predict_proba(view.X_val, "source"))

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        weights, losses = self.weights_and_losses(candidate, view)
        return -dev_risk(losses, weights)
