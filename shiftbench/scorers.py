"""Model-selection scorers: how good is a fitted candidate on the target, judged without target labels?

Every scorer returns a number where **higher is better** and is called as
``scorer.score(candidate, view)`` with a :class:`ValidationView` that holds the labelled source
parts and an :class:`UnlabelledTarget` (inputs only: the type has no label field). Only the
:class:`Oracle` (``needs_target_labels = True``) is additionally handed a :class:`LabelledTarget`
by the selection code; it is reported separately and marked as an oracle.

The definitions follow the papers and agree with ``skada.metrics`` (tests check it):

| name                  | scorer                       | reference                                   |
|-----------------------|------------------------------|---------------------------------------------|
| ``source_accuracy``   | :class:`SourceAccuracy`      | accuracy on held-out source data            |
| ``importance_weighted`` | :class:`ImportanceWeighted` | IWCV, Sugiyama et al. 2007 (KDE density ratio) |
| ``prediction_entropy``| :class:`PredictionEntropy`   | Morerio et al. 2018 (minus mean entropy)    |
| ``snd``               | :class:`SoftNeighbourhoodDensity` | Saito et al. 2021                      |
| ``dev``               | :class:`DeepEmbeddedValidation` | You et al. 2019 (minus the DEV risk)     |
| ``circular``          | :class:`CircularValidation`  | Bruzzone & Marconcini 2010                  |
| ``mixval``            | :class:`MixVal`              | Hu et al. 2023 (ICE, intra + inter)         |
| ``oracle``            | :class:`Oracle`              | target accuracy (uses target labels)        |

The array-level functions (:func:`prediction_entropy`, :func:`soft_neighbourhood_density`,
:func:`dev_risk`) work directly on shiftbench outputs (probabilities, losses, weights), e.g. to
score online TTA runs from their stored probabilities.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol

import numpy as np
from scipy.special import logsumexp, xlogy
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KernelDensity

from shiftbench.arrays import check_matrix, check_probs
from shiftbench.errors import ShiftbenchError, UnknownNameError


# ---------------------------------------------------------------- data views
@dataclass(frozen=True)
class UnlabelledTarget:
    """Target inputs for a scorer; there is deliberately no label field."""

    X: np.ndarray


@dataclass(frozen=True)
class LabelledTarget:
    """Target inputs with labels: built only for oracle scorers and the final evaluation."""

    X: np.ndarray
    y: np.ndarray

    def unlabelled(self) -> UnlabelledTarget:
        return UnlabelledTarget(self.X)


@dataclass(frozen=True)
class ValidationView:
    """What a non-oracle scorer sees for one inner split: labelled source train/validation parts
    and the unlabelled target validation part."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    target: UnlabelledTarget


# ---------------------------------------------------------------- candidates
class Estimator(Protocol):
    """A domain-adaptation estimator: fit on labelled source + unlabelled target, predict probabilities."""

    def fit(self, X_source: np.ndarray, y_source: np.ndarray, X_target: np.ndarray) -> Any: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@dataclass
class Candidate:
    """One fitted hyperparameter setting, plus how to build a fresh copy with the same setting.

    ``predict_proba(X, domain)`` passes ``domain`` ("source"/"target") to estimators whose
    ``predict_proba`` takes it (mapping methods transform source and target differently);
    ``features(X, domain)`` uses the estimator's ``features`` when it has one, else the inputs.
    """

    model: Any
    make: Callable[[], Any]

    def _call(self, method: str, X: np.ndarray, domain: str) -> np.ndarray:
        fn = getattr(self.model, method)
        if "domain" in inspect.signature(fn).parameters:
            return fn(X, domain=domain)
        return fn(X)

    def predict_proba(self, X: np.ndarray, domain: str = "target") -> np.ndarray:
        return np.asarray(self._call("predict_proba", X, domain), dtype=np.float64)

    def predict(self, X: np.ndarray, domain: str = "target") -> np.ndarray:
        """The estimator's own ``predict`` when it has one (e.g. an SVC's differs from its Platt
        probabilities' argmax), else the argmax of ``predict_proba``."""
        if hasattr(self.model, "predict"):
            return np.asarray(self._call("predict", X, domain))
        return self.predict_proba(X, domain).argmax(1)

    def features(self, X: np.ndarray, domain: str = "target") -> np.ndarray:
        return self._call("features", X, domain) if hasattr(self.model, "features") else X

    def refit(self, X_source: np.ndarray, y_source: np.ndarray, X_target: np.ndarray) -> Candidate:
        """The same hyperparameters fitted on other data (circular validation's backward model)."""
        model = self.make()
        model.fit(X_source, y_source, X_target)
        return Candidate(model, self.make)


# ---------------------------------------------------------------- array-level definitions
def prediction_entropy(probs: np.ndarray) -> float:
    """Mean Shannon entropy (nats) of the rows of ``probs`` (0 log 0 = 0)."""
    p = check_probs(probs, "probs")
    return float(-xlogy(p, p).sum(1).mean())


def soft_neighbourhood_density(probs: np.ndarray, temperature: float = 0.05) -> float:
    """SND (Saito et al. 2021): mean entropy of each sample's softmax similarity to the other samples.

    Rows are L2-normalised, similarities divided by ``temperature``, the self-similarity excluded.
    """
    p = check_probs(probs, "probs")
    if len(p) < 2:
        raise ShiftbenchError("soft neighbourhood density needs at least 2 target samples")
    z = p / np.linalg.norm(p, axis=1, keepdims=True)
    sim = z @ z.T / temperature
    np.fill_diagonal(sim, -np.inf)
    log_q = sim - logsumexp(sim, axis=1, keepdims=True)
    q = np.exp(log_q)
    return float(-(xlogy(q, q)).sum(1).mean())


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """Deep embedded validation risk (You et al. 2019): importance-weighted mean loss with the
    control variate ``eta = -Cov(w l, w) / Var(w)`` (sample covariance; eta = 0 if the weights are constant)."""
    losses, weights = np.asarray(losses, np.float64).ravel(), np.asarray(weights, np.float64).ravel()
    if losses.shape != weights.shape:
        raise ShiftbenchError(f"dev_risk: {losses.size} losses but {weights.size} weights; give one weight per loss")
    weighted = weights * losses
    var_w = np.var(weights, ddof=1)
    eta = 0.0 if var_w == 0 else -np.cov(weighted, weights)[0, 1] / var_w
    return float(weighted.mean() + eta * weights.mean() - eta)


def cross_entropy(y: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> np.ndarray:
    """Per-sample cross-entropy of integer labels under (clipped) probabilities."""
    return -np.log(np.clip(probs[np.arange(len(y)), y], eps, 1 - eps))


def kde_density_ratio(X_at: np.ndarray, X_source: np.ndarray, X_target: np.ndarray, bandwidth: float | str) -> np.ndarray:
    """p_target(x) / p_source(x) at ``X_at`` from Gaussian kernel density estimates of each domain."""
    log_t = KernelDensity(bandwidth=bandwidth).fit(X_target).score_samples(X_at)
    log_s = KernelDensity(bandwidth=bandwidth).fit(X_source).score_samples(X_at)
    return np.exp(log_t - log_s)


def flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X).reshape(len(X), -1)


# ---------------------------------------------------------------- scorer objects
class Scorer:
    """Base class: ``score(candidate, view) -> float``, higher is better."""

    name: ClassVar[str]
    needs_target_labels: ClassVar[bool] = False

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class SourceAccuracy(Scorer):
    """Accuracy on the held-out labelled source part (the classic, shift-blind choice)."""

    name = "source_accuracy"

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        return float((candidate.predict(view.X_val, "source") == view.y_val).mean())


class ImportanceWeighted(Scorer):
    """IWCV: source-validation accuracy weighted by KDE density ratios p_t/p_s (normalised to sum 1).

    The densities are estimated on the validation parts (source and target), as skada does.
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


class PredictionEntropy(Scorer):
    """Minus the mean prediction entropy on the target (confident predictions score higher)."""

    name = "prediction_entropy"

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        return -prediction_entropy(candidate.predict_proba(view.target.X))


class SoftNeighbourhoodDensity(Scorer):
    """SND on target probabilities (denser soft neighbourhoods score higher)."""

    name = "snd"

    def __init__(self, temperature: float = 0.05):
        self.temperature = temperature

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        return soft_neighbourhood_density(candidate.predict_proba(view.target.X), self.temperature)


class DeepEmbeddedValidation(Scorer):
    """Minus the DEV risk: a logistic domain classifier on the candidate's features of the source
    train part (domain 1) and the target (domain 0) gives density ratios on the source validation part."""

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


class CircularValidation(Scorer):
    """Bruzzone & Marconcini: refit the same setting from the target (pseudo-labelled by the candidate)
    back to the source; the balanced accuracy of that backward model on the source validation labels."""

    name = "circular"

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        pseudo = candidate.predict(view.target.X)
        if len(np.unique(pseudo)) == 1:
            return float(balanced_accuracy_score(view.y_val, np.full(len(view.y_val), pseudo[0])))
        classes, encoded = np.unique(pseudo, return_inverse=True)
        backward = candidate.refit(view.target.X, encoded, view.X_val)
        return float(balanced_accuracy_score(view.y_val, classes[backward.predict(view.X_val)]))


class MixVal(Scorer):
    """MixVal (Hu et al. 2023): mix target samples (weight ``alpha``) with a random permutation of
    themselves; the accuracy of predictions on the mixtures against the dominant sample's pseudo-label,
    averaged over same-label (intra) and different-label (inter) pairs."""

    name = "mixval"

    def __init__(self, alpha: float = 0.55, ice: str = "both", seed: int = 0):
        if ice not in ICE_REDUCTIONS:
            raise ShiftbenchError(f"MixVal ice={ice!r}; choose one of {sorted(ICE_REDUCTIONS)}")
        self.alpha, self.ice, self.seed = alpha, ice, seed

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        X = np.asarray(view.target.X, dtype=np.float64)
        perm = np.random.RandomState(self.seed).permutation(len(X))
        labels_a = candidate.predict(X)
        labels_b = labels_a[perm]
        mixed = self.alpha * X + (1 - self.alpha) * X[perm]
        mix_labels = labels_a if self.alpha >= 0.5 else labels_b
        agree = candidate.predict(mixed) == mix_labels
        same = labels_a == labels_b
        ice = {"intra": agree[same].mean() if same.any() else np.nan,
               "inter": agree[~same].mean() if (~same).any() else np.nan}
        return float(ICE_REDUCTIONS[self.ice](ice))


ICE_REDUCTIONS: dict[str, Callable[[dict[str, float]], float]] = {
    "both": lambda ice: np.nanmean([ice["intra"], ice["inter"]]),
    "intra": lambda ice: ice["intra"],
    "inter": lambda ice: ice["inter"],
}


class Oracle(Scorer):
    """Target accuracy from target labels: an upper reference, never a realistic selection."""

    name = "oracle"
    needs_target_labels = True

    def score(self, candidate: Candidate, view: ValidationView, truth: LabelledTarget | None = None) -> float:
        if truth is None:
            raise ShiftbenchError("the oracle scorer needs the labelled target; only the selection code passes it")
        return float((candidate.predict(truth.X) == truth.y).mean())


SCORERS: dict[str, type[Scorer]] = {cls.name: cls for cls in (
    SourceAccuracy, ImportanceWeighted, PredictionEntropy, SoftNeighbourhoodDensity, DeepEmbeddedValidation,
    CircularValidation, MixVal, Oracle)}


def make_scorer(name: str, **options: Any) -> Scorer:
    """A scorer by its registered name (see ``SCORERS``)."""
    if name not in SCORERS:
        raise UnknownNameError("scorer", name, list(SCORERS))
    return SCORERS[name](**options)


def default_scorers() -> dict[str, Scorer]:
    """Every scorer with its default options, the oracle last."""
    return {name: cls() for name, cls in SCORERS.items()}


def check_features(X: Any, name: str) -> np.ndarray:
    """A finite 2-D input matrix for selection."""
    return check_matrix(X, name).astype(np.float64)
