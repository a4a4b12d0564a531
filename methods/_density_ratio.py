"""Density ratios p_target(x) / p_reference(x) on the reference rows, from a domain classifier.

Shared by M-CBPE and the importance-weighted estimators. The classifier separates reference (0) from
target (1) rows; reference rows are scored out of fold (cross-fitting), so a flexible classifier cannot
memorise them. Its probabilities p = P(target | x) become ratios by one of two treatments (``ratio``):

- ``"clip"``: p clipped to [1e-6, 1 - 1e-6], w = p / (1 - p) * n_ref / n_target, clipped at ``max_ratio``
  times its mean and normalised to mean 1;
- ``"paper"``: the M-CBPE authors' importance-weighting recipe (Białek et al. 2024),
  w = n_ref / n_target * p / max(0.05, 1 - p), floored at 0.001 (``max_ratio`` does not apply). The authors
  fit the classifier on reference + chunk and score the reference in sample; here the out-of-fold scores
  are used with either treatment.
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

#: the "paper" treatment's floor on the denominator 1 - p and on the ratios
PAPER_MIN_DENOMINATOR = 0.05
PAPER_MIN_RATIO = 0.001


def clipped_ratios(p_target: np.ndarray, n_ref: int, n_target: int, max_ratio: float) -> np.ndarray:
    """Ratios from classifier probabilities, clipped at ``max_ratio`` times their mean, mean 1."""
    p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
    w = p_target / (1 - p_target) * (n_ref / n_target)
    w = np.minimum(w, max_ratio * w.mean())
    return w / w.mean()


def paper_ratios(p_target: np.ndarray, n_ref: int, n_target: int, max_ratio: float) -> np.ndarray:
    """The M-CBPE authors' ratios: n_ref / n_target * p / max(0.05, 1 - p), floored at 0.001 (no clip at
    ``max_ratio``, no normalisation: a weighted fit does not depend on the weights' scale)."""
    w = (n_ref / n_target) * p_target / np.maximum(PAPER_MIN_DENOMINATOR, 1 - p_target)
    return np.maximum(w, PAPER_MIN_RATIO)


#: ratio treatment -> ratios from (P(target | x) at the reference rows, n_ref, n_target, max_ratio)
RATIO_TREATMENTS: dict[str, Callable[[np.ndarray, int, int, float], np.ndarray]] = {
    "clip": clipped_ratios,
    "paper": paper_ratios,
}

#: the hyperparameters of every plugin that reweights by these density ratios, declared once
DENSITY_RATIO_HYPERPARAMETERS: dict[str, Hyperparameter] = {
    "classifier": Choice("logistic", tuple(DOMAIN_CLASSIFIERS), doc="domain classifier giving the density ratios"),
    "max_ratio": Float(20.0, above=0, doc="ratios clipped at this multiple of their mean"),
}
#: cross-fitting folds of the domain classifier, for the plugins that let them be set
N_FOLDS = Int(5, at_least=2, doc="cross-fitting folds of the domain classifier")
#: how classifier probabilities become ratios, for the plugins that let it be set
RATIO_TREATMENT = Choice("clip", tuple(RATIO_TREATMENTS),
                         doc="clip: at max_ratio x the mean, mean 1; paper: the M-CBPE authors' "
                             "p / max(0.05, 1 - p) x n_ref / n_chunk, floored at 0.001 (max_ratio unused)")


def density_ratios(X_ref: np.ndarray, X_target: np.ndarray, classifier: str = "logistic", max_ratio: float = 20.0,
                   n_folds: int = 5, random_state: int = 0, ratio: str = "clip") -> np.ndarray:
    """Weights (n_ref,) proportional to p_target / p_reference at each reference row, by the treatment
    ``ratio`` (``"clip"``: mean 1); ``random_state`` seeds the folds and the classifier."""
    if classifier not in DOMAIN_CLASSIFIERS:
        raise UnknownNameError("domain classifier", classifier, list(DOMAIN_CLASSIFIERS))
    if ratio not in RATIO_TREATMENTS:
        raise UnknownNameError("ratio treatment", ratio, list(RATIO_TREATMENTS))
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
    return RATIO_TREATMENTS[ratio](p_target, n_ref, n_tgt, max_ratio)
