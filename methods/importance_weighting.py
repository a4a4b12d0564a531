"""Importance-weighting baselines for covariate shift: a logistic regression trained on source
examples weighted by an estimate of p_target(x) / p_source(x).

* ``kmm_iw``: kernel mean matching (Huang et al. 2007) — the DW-KMM programme with D = 1
  (test weights fixed to one, B = 1000, |mean(beta) - 1| <= 1 - 1/sqrt(n)), RBF bandwidth the
  mean distance to the 50th neighbour.
* ``domain_classifier_iw``: density ratios from a probabilistic source-vs-target classifier
  (cross-fitted, clipped, mean one; shared with the performance estimators).

Features are standardised with the statistics of source and target together.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression

from shiftbench.arrays import check_labels, check_matrix
from shiftbench.families import DomainAdapter
from shiftbench.hyperparameters import Float, Int
from shiftbench.methods._common import class_columns, source_subset, standardise
from shiftbench.methods._density_ratio import DENSITY_RATIO_HYPERPARAMETERS, density_ratios
from shiftbench.methods.double_weighting import dw_kmm, knn_bandwidth, rbf_kernel


class ImportanceWeighting(DomainAdapter):
    """Weighted logistic regression on standardised features; subclasses supply the weights."""

    abstract = True
    hyperparameters = {"C": Float(1.0, above=0, doc="inverse L2 strength of the weighted logistic regression")}

    def source_weights(self, Xs: np.ndarray, Xt: np.ndarray) -> np.ndarray:
        """Importance weights (n_source,) of the standardised source rows."""
        raise NotImplementedError

    def fit(self, X_source, y_source, X_target) -> ImportanceWeighting:
        Xs = check_matrix(X_source, "X_source").astype(np.float64)
        Xt = check_matrix(X_target, "X_target", n_cols=Xs.shape[1]).astype(np.float64)
        y = check_labels(y_source, name="y_source", n=len(Xs))
        self.n_classes_ = int(y.max()) + 1
        X = np.vstack([Xs, Xt])
        self.mean_, self.std_ = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1.0)
        Zs, Zt = standardise(Xs, Xt)
        self.weights_ = self.source_weights(Zs, Zt)
        self.classifier_ = LogisticRegression(C=self.C, max_iter=2000).fit(Zs, y, sample_weight=self.weights_)
        return self

    def predict_proba(self, X_target) -> np.ndarray:
        Z = (check_matrix(X_target, "X_target").astype(np.float64) - self.mean_) / self.std_
        return class_columns(self.classifier_.predict_proba(Z), self.classifier_.classes_, self.n_classes_)


class KMMImportanceWeighting(ImportanceWeighting):
    """Kernel mean matching weights (DW-KMM with D = 1) for a weighted logistic regression."""

    name: ClassVar[str] = "kmm_iw"
    hyperparameters = {"max_source": Int(1000, allow_none=True, doc="source rows KMM weighs (a seeded random subset; "
                                                                    "the others get weight 0; None: all)")}
    grid: ClassVar[dict] = {"C": [0.1, 1.0, 10.0]}

    def source_weights(self, Xs: np.ndarray, Xt: np.ndarray) -> np.ndarray:
        # KMM on a random subset (random_state) of at most max_source rows; the other rows get weight 0
        idx = source_subset(len(Xs), self.max_source, self.random_state)
        X = np.vstack([Xs[idx], Xt])
        beta = dw_kmm(rbf_kernel(X, knn_bandwidth(X)), len(idx), 1.0).beta
        weights = np.zeros(len(Xs))
        weights[idx] = beta
        return weights


class DomainClassifierImportanceWeighting(ImportanceWeighting):
    """Density ratios from a source-vs-target classifier for a weighted logistic regression."""

    name: ClassVar[str] = "domain_classifier_iw"
    hyperparameters = DENSITY_RATIO_HYPERPARAMETERS
    grid: ClassVar[dict] = {"C": [0.1, 1.0, 10.0], "classifier": ["logistic", "gbm"]}

    def source_weights(self, Xs: np.ndarray, Xt: np.ndarray) -> np.ndarray:
        return density_ratios(Xs, Xt, self.classifier, self.max_ratio, random_state=self.random_state)
