"""What a model-selection scorer is and what it sees: the :class:`Scorer` base class, the data views,
the candidate wrapper and the array-level definitions the scorer plugins (``shiftbench.scorers``) use.

A scorer answers "how good is this fitted setting on the target?" without target labels, with a
number where **higher is better**, in one or both of two protocols:

* ``nested_cv`` -- :meth:`Scorer.score` ``(candidate, view)``: a fitted domain adapter
  (:class:`Candidate`) judged on one inner split, given a :class:`ValidationView` that holds the
  labelled source parts and an :class:`UnlabelledTarget` (inputs only: the type has no label field);
* ``cross_scenario`` -- :meth:`Scorer.score_output` ``(probs)``: one cell's predicted target
  probabilities (N, K) judged on their own (TTA and output adapters, whose runs leave only outputs).

:meth:`Scorer.protocols` is derived from which of the two a class overrides. Only a scorer with
``needs_target_labels = True`` (the oracle) is additionally handed the target labels by the
selection code; it is reported separately and marked as an oracle.

The array-level functions (:func:`prediction_entropy`, :func:`soft_neighbourhood_density`,
:func:`dev_risk`) work directly on shiftbench outputs (probabilities, losses, weights).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol

import numpy as np
from scipy.special import logsumexp, xlogy
from sklearn.neighbors import KernelDensity

from shiftbench.arrays import check_matrix, check_probs
from shiftbench.errors import ShiftbenchError

#: what a scorer can judge, keyed by the method that judges it: the selection protocol it serves and the
#: method families whose settings it judges
SCORING_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "score": ("nested_cv", ("domain",)),
    "score_estimate": ("nested_cv", ("estimator",)),
    "score_output": ("cross_scenario", ("output", "tta")),
}


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
    """Inputs of any shape as one row per example."""
    return np.asarray(X).reshape(len(X), -1)


def check_features(X: Any, name: str) -> np.ndarray:
    """A finite 2-D input matrix for selection."""
    return check_matrix(X, name).astype(np.float64)


# ---------------------------------------------------------------- the plugin base class
class Scorer:
    """Base class of the scorer plugins: higher is better; override ``score`` (nested CV of domain
    adapters), ``score_estimate`` (nested CV of performance estimators), ``score_output`` (one cell's
    target probabilities), or several.

    A plugin is a subclass with a ``name`` and a one-line docstring (``shiftbench list scorers``
    shows it), in a module of ``scorers/`` or behind an entry point of group ``shiftbench.scorers``.
    Its options are the keyword arguments of ``__init__``.
    """

    name: ClassVar[str]
    #: True only for the oracle: it is handed the target labels and reported apart from the others
    needs_target_labels: ClassVar[bool] = False

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        """How good the fitted ``candidate`` is on the target of one inner split (higher is better)."""
        raise NotImplementedError(f"scorer {self.name!r} does not score candidates (protocols: "
                                  f"{', '.join(sorted(self.protocols()))})")

    def score_output(self, probs: np.ndarray) -> float:
        """How good one cell's predicted target probabilities (N, K) look without labels (higher is better)."""
        raise NotImplementedError(f"scorer {self.name!r} does not score outputs (protocols: "
                                  f"{', '.join(sorted(self.protocols()))})")

    def score_estimate(self, estimates: np.ndarray, realised: np.ndarray) -> float:
        """How good a performance estimator's accuracy ``estimates`` are, judged on labelled reference data
        held out from its fit, whose ``realised`` accuracies they estimate (higher is better)."""
        raise NotImplementedError(f"scorer {self.name!r} does not score performance estimates (protocols: "
                                  f"{', '.join(sorted(self.protocols()))})")

    @classmethod
    def _hooks(cls) -> list[str]:
        return [hook for hook in SCORING_HOOKS if getattr(cls, hook) is not getattr(Scorer, hook)]

    @classmethod
    def protocols(cls) -> frozenset[str]:
        """The selection protocols this scorer serves: those whose method the class overrides."""
        return frozenset(SCORING_HOOKS[hook][0] for hook in cls._hooks())

    @classmethod
    def families(cls) -> frozenset[str]:
        """The method families whose settings this scorer can judge (from the methods the class overrides)."""
        return frozenset(family for hook in cls._hooks() for family in SCORING_HOOKS[hook][1])

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"
