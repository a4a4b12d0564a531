"""Density ratios p_target(x) / p_reference(x) on the reference rows, from a domain classifier.

Shared by M-CBPE and the importance-weighted accuracy estimator. The classifier separates
reference (0) from target (1) rows; reference rows are scored out of fold (cross-fitting), so a
flexible classifier cannot memorise them; w = P(1|x)/P(0|x) * n_ref/n_target, clipped at
``max_ratio`` times its mean and normalised to mean 1.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shiftbench.errors import UnknownNameError
from shiftbench.hyperparameters import Choice, Float, Hyperparameter, Int

DOMAIN_CLASSIFIERS: dict[str, Callable[[int], ClassifierMixin]] = {
    "logistic": lambda random_state: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
    "gbm": lambda random_state: HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=random_state),
}


#: the hyperparameters of every plugin that reweights by these density ratios, declared once
DENSITY_RATIO_HYPERPARAMETERS: dict[str, Hyperparameter] = {
    "classifier": Choice("logistic", tuple(DOMAIN_CLASSIFIERS), doc="domain classifier giving the density ratios"),
    "max_ratio": Float(20.0, above=0, doc="ratios clipped at this multiple of their mean"),
}
#: cross-fitting folds of the domain classifier, for the plugins that let them be set
N_FOLDS = Int(5, at_least=2, doc="cross-fitting folds of the domain classifier")


def density_ratios(X_ref: np.ndarray, X_target: np.ndarray, classifier: str = "logistic", max_ratio: float = 20.0,
                   n_folds: int = 5, random_state: int = 0) -> np.ndarray:
    """Weights (n_ref,) proportional to p_target / p_reference at each reference row, mean 1
    (``random_state`` seeds the folds and the classifier)."""
    if classifier not in DOMAIN_CLASSIFIERS:
        raise UnknownNameError("domain classifier", classifier, list(DOMAIN_CLASSIFIERS))
    n_ref, n_tgt = len(X_ref), len(X_target)
    if n_tgt < 2:  # one row says nothing about a density: no reweighting
        return np.ones(n_ref)
    X = np.vstack([X_ref, X_target])
    domain = np.r_[np.zeros(n_ref, np.int64), np.ones(n_tgt, np.int64)]
    folds = max(2, min(n_folds, n_tgt))
    p_target = np.empty(n_ref)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=random_state).split(X, domain):
        model = DOMAIN_CLASSIFIERS[classifier](random_state).fit(X[train], domain[train])
        ref_test = test[test < n_ref]
        p_target[ref_test] = model.predict_proba(X[ref_test])[:, 1]
    p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
    w = p_target / (1 - p_target) * (n_ref / n_tgt)
    w = np.minimum(w, max_ratio * w.mean())
    return w / w.mean()
