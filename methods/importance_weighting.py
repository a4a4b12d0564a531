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
from shiftbench.methods._density_ratio import check_options, density_ratios
from shiftbench.methods.double_weighting import dw_kmm, knn_bandwidth, rbf_kernel, source_subset, standardise
from shiftbench.validation import check_int, check_number


def class_columns(probs: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over ``classes`` (an estimator's ``classes_``) as (N, n_classes) columns, zeros elsewhere."""
    out = np.zeros((len(probs), n_classes))
    out[:, np.asarray(classes, dtype=np.int64)] = probs
    return out


class ImportanceWeighting(DomainAdapter):
    """Weighted logistic regression on standardised features; subclasses supply the weights."""

    abstract = True

    def __init__(self, C: float = 1.0):
        check_number(C, "C", self.name, above=0)
        self.C = C

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
    grid: ClassVar[dict] = {"C": [0.1, 1.0, 10.0]}

    def __init__(self, C: float = 1.0, max_source: int | None = 1000):
        super().__init__(C)
        check_int(max_source, "max_source", self.name, allow_none=True)
        self.max_source = max_source

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
    grid: ClassVar[dict] = {"C": [0.1, 1.0, 10.0], "classifier": ["logistic", "gbm"]}

    def __init__(self, C: float = 1.0, classifier: str = "logistic", max_ratio: float = 20.0):
        super().__init__(C)
        check_options(self.name, classifier, max_ratio)
        self.classifier, self.max_ratio = classifier, max_ratio

    def source_weights(self, Xs: np.ndarray, Xt: np.ndarray) -> np.ndarray:
        return density_ratios(Xs, Xt, self.classifier, self.max_ratio, random_state=self.random_state)
