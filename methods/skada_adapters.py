"""skada (scikit-learn domain adaptation) estimators as shiftbench domain adapters.

One generic wrapper, :class:`SkadaAdapter`: a skada estimator factory (by its name in ``skada``)
given a base estimator -- a logistic regression (``base="logistic"``, the default) or an RBF SVC
with Platt probabilities (``base="svc"``, SKADA-Bench's classifier) -- fitted on source (labelled,
domain 1) and target (labels masked, domain -1) features inside scikit-learn's metadata routing, so
reweighting estimators pass their sample weights to the base estimator. Features are standardised
on both domains together unless ``standardise=False`` (SKADA-Bench feeds the raw features).

Each plugin below names the estimator and, where it has any, its own hyperparameters (passed to the
factory by name). skada is imported when a plugin is fitted (it is an optional dependency).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_matrix
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter
from shiftbench.methods.importance_weighting import class_columns
from shiftbench.validation import check_bool, check_choice, check_int, check_number

SOURCE, TARGET = 1, -1  # skada's sample_domain codes: >= 0 source, < 0 target


def _logistic(C: float, random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def _svc(C: float, random_state: int):
    from sklearn.svm import SVC

    return SVC(C=C, probability=True, random_state=random_state)


#: base estimator choice -> builder from (C, random_state)
BASE_ESTIMATORS: dict[str, Callable[[float, int], Any]] = {"logistic": _logistic, "svc": _svc}


def check_number_or(value: Any, name: str, owner: str, words: tuple[str, ...], **bounds: Any) -> Any:
    """One of the option ``words`` (e.g. ``"auto"``) or a number within ``bounds`` (see :func:`check_number`)."""
    if isinstance(value, str):
        return check_choice(value, name, owner, words)
    return check_number(value, name, owner, **bounds)


class SkadaAdapter(DomainAdapter):
    """A skada estimator with a logistic-regression (or SVC) base estimator."""

    abstract = True
    #: name of the estimator factory in the ``skada`` namespace
    estimator: ClassVar[str]
    #: whether the factory takes a base estimator (the reweighting / mapping / subspace ones do)
    takes_base: ClassVar[bool] = True

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True):
        self.C = check_number(C, "C", self.name, above=0)
        self.base = check_choice(base, "base", self.name, BASE_ESTIMATORS)
        self.standardise = check_bool(standardise, "standardise", self.name)

    def estimator_options(self) -> dict[str, Any]:
        """Keyword arguments of the skada factory besides the base estimator: the plugin's own
        hyperparameters (those the shared wrapper does not take), by name."""
        shared = SkadaAdapter.default_hyperparameters()
        return {k: v for k, v in self.get_params().items() if k not in shared}

    def skada_estimator(self):
        """The unfitted skada estimator this plugin fits (a pipeline ``adapter -> base estimator`` for most);
        build it under scikit-learn's metadata routing (the base estimator requests sample weights)."""
        try:
            import skada
        except ImportError as exc:
            raise ShiftbenchError(f"method {self.name!r} needs skada: pip install 'skada>=0.6'") from exc

        factory = getattr(skada, self.estimator)
        if not self.takes_base:
            return factory(**self.estimator_options())
        # weights routed to fit (reweighting estimators) and to score (skada's importance-weighted scorer)
        base = (BASE_ESTIMATORS[self.base](self.C, self.random_state).set_fit_request(sample_weight=True)
                .set_score_request(sample_weight=True))
        return factory(base, **self.estimator_options())

    def fit(self, X_source, y_source, X_target) -> SkadaAdapter:
        import sklearn

        Xs = check_matrix(X_source, "X_source").astype(np.float64)
        Xt = check_matrix(X_target, "X_target", n_cols=Xs.shape[1]).astype(np.float64)
        y = check_labels(y_source, name="y_source", n=len(Xs))
        self.n_classes_, self.classes_ = int(y.max()) + 1, np.unique(y)
        X = np.vstack([Xs, Xt])
        if self.standardise:
            self.mean_, self.std_ = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1.0)
        else:
            self.mean_, self.std_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        domains = np.r_[np.full(len(Xs), SOURCE, np.int64), np.full(len(Xt), TARGET, np.int64)]
        with sklearn.config_context(enable_metadata_routing=True):
            self.estimator_ = self.skada_estimator()
            self.estimator_.fit((X - self.mean_) / self.std_, np.r_[y, -np.ones(len(Xt), np.int64)], sample_domain=domains)
        return self

    def _predict(self, method: str, X, domain: str) -> np.ndarray:
        import sklearn

        check_choice(domain, "domain", self.name, ("source", "target"))
        Z = (check_matrix(X, f"X_{domain}").astype(np.float64) - self.mean_) / self.std_
        code = SOURCE if domain == "source" else TARGET
        with sklearn.config_context(enable_metadata_routing=True):
            return getattr(self.estimator_, method)(Z, sample_domain=np.full(len(Z), code, np.int64),
                                                    allow_source=domain == "source")

    def predict_proba(self, X_target, domain: str = "target") -> np.ndarray:
        """Class probabilities (one column per class up to the largest source label) of inputs from
        ``domain`` ("target", or "source": mapping estimators transform the two domains differently)."""
        probs = self._predict("predict_proba", X_target, domain)
        return class_columns(probs, self.classes_, self.n_classes_)  # sklearn orders classes as np.unique

    def predict(self, X, domain: str = "target") -> np.ndarray:
        """The estimator's own predicted labels (an SVC's can differ from the argmax of its Platt probabilities)."""
        return np.asarray(self._predict("predict", X, domain))


class SkadaSourceOnly(SkadaAdapter):
    """The base estimator alone in a skada pipeline, trained on the source (SKADA-Bench's 'Train Src')."""
    name, estimator = "skada_source_only", "make_da_pipeline"


class SkadaKMM(SkadaAdapter):
    """skada KMMReweight (kernel mean matching weights) + the base estimator."""
    name, estimator = "skada_kmm", "KMMReweight"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, gamma: float | None = None):
        super().__init__(C, base, standardise)
        self.gamma = check_number(gamma, "gamma", self.name, above=0, allow_none=True)


class SkadaDensityReweight(SkadaAdapter):
    """skada DensityReweight (kernel density ratio) + the base estimator."""
    name, estimator = "skada_density_reweight", "DensityReweight"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, bandwidth: float | str = 1.0):
        super().__init__(C, base, standardise)
        self.bandwidth = check_number_or(bandwidth, "bandwidth", self.name, ("scott", "silverman"), above=0)

    def estimator_options(self) -> dict[str, Any]:
        from sklearn.neighbors import KernelDensity

        return {"weight_estimator": KernelDensity(bandwidth=self.bandwidth)}


class SkadaGaussianReweight(SkadaAdapter):
    """skada GaussianReweight (ratio of Gaussian fits of the two domains) + the base estimator."""
    name, estimator = "skada_gaussian_reweight", "GaussianReweight"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, reg: float | str = "auto"):
        super().__init__(C, base, standardise)
        self.reg = check_number_or(reg, "reg", self.name, ("auto",), at_least=0)


class SkadaNearestNeighborReweight(SkadaAdapter):
    """skada NearestNeighborReweight (target neighbour counts of source points) + the base estimator."""
    name, estimator = "skada_nn_reweight", "NearestNeighborReweight"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, n_neighbors: int = 1,
                 laplace_smoothing: bool = False):
        super().__init__(C, base, standardise)
        self.n_neighbors = check_int(n_neighbors, "n_neighbors", self.name)
        self.laplace_smoothing = check_bool(laplace_smoothing, "laplace_smoothing", self.name)


class SkadaDiscriminatorReweight(SkadaAdapter):
    """skada DiscriminatorReweight (domain-classifier ratio) + the base estimator."""
    name, estimator = "skada_discriminator_reweight", "DiscriminatorReweight"


class SkadaKLIEP(SkadaAdapter):
    """skada KLIEPReweight + the base estimator."""
    name, estimator = "skada_kliep", "KLIEPReweight"


class SkadaCORAL(SkadaAdapter):
    """skada CORAL (second-order alignment) + the base estimator."""
    name, estimator = "skada_coral", "CORAL"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, reg: float | str = "auto",
                 assume_centered: bool = False):
        super().__init__(C, base, standardise)
        self.reg = check_number_or(reg, "reg", self.name, ("auto",), at_least=0)
        self.assume_centered = check_bool(assume_centered, "assume_centered", self.name)


class SkadaSubspaceAlignment(SkadaAdapter):
    """skada SubspaceAlignment + the base estimator."""
    name, estimator = "skada_subspace_alignment", "SubspaceAlignment"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, n_components: int | None = None):
        super().__init__(C, base, standardise)
        self.n_components = check_int(n_components, "n_components", self.name, allow_none=True)


class SkadaLinearOT(SkadaAdapter):
    """skada LinearOTMapping (Gaussian Monge map of source onto target) + the base estimator."""
    name, estimator = "skada_linear_ot", "LinearOTMapping"

    def __init__(self, C: float = 1.0, base: str = "logistic", standardise: bool = True, reg: float = 1.0,
                 bias: bool = True):
        super().__init__(C, base, standardise)
        self.reg = check_number(reg, "reg", self.name, at_least=0)
        self.bias = check_bool(bias, "bias", self.name)


class SkadaEntropicOT(SkadaAdapter):
    """skada EntropicOTMapping (Sinkhorn transport of source to target) + the base estimator."""
    name, estimator = "skada_entropic_ot", "EntropicOTMapping"


class SkadaJDOT(SkadaAdapter):
    """skada JDOTClassifier (joint distribution optimal transport, its own linear model; C and base unused)."""
    name, estimator, takes_base = "skada_jdot", "JDOTClassifier", False
