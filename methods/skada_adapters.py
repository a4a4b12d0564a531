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
from shiftbench.hyperparameters import Bool, Choice, Float, Int
from shiftbench.methods._common import class_columns
from shiftbench.validation import check_choice

SOURCE, TARGET = 1, -1  # skada's sample_domain codes: >= 0 source, < 0 target


def _logistic(C: float, random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def _svc(C: float, random_state: int):
    from sklearn.svm import SVC

    return SVC(C=C, probability=True, random_state=random_state)


#: base estimator choice -> builder from (C, random_state)
BASE_ESTIMATORS: dict[str, Callable[[float, int], Any]] = {"logistic": _logistic, "svc": _svc}


class SkadaAdapter(DomainAdapter):
    """A skada estimator with a logistic-regression (or SVC) base estimator."""

    abstract = True
    #: name of the estimator factory in the ``skada`` namespace
    estimator: ClassVar[str]
    #: whether the factory takes a base estimator (the reweighting / mapping / subspace ones do)
    takes_base: ClassVar[bool] = True
    hyperparameters = {
        "C": Float(1.0, above=0, doc="inverse regularisation of the base estimator"),
        "base": Choice("logistic", tuple(BASE_ESTIMATORS), doc="base estimator"),
        "standardise": Bool(True, doc="standardise features on both domains together"),
    }

    def estimator_options(self) -> dict[str, Any]:
        """Keyword arguments of the skada factory besides the base estimator: the plugin's own
        hyperparameters (those it declares beyond the shared wrapper's), by name."""
        shared = SkadaAdapter.declared()
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
    hyperparameters = {"gamma": Float(None, above=0, allow_none=True, doc="RBF kernel coefficient (None: skada's default)")}


class SkadaDensityReweight(SkadaAdapter):
    """skada DensityReweight (kernel density ratio) + the base estimator."""
    name, estimator = "skada_density_reweight", "DensityReweight"
    hyperparameters = {"bandwidth": Float(1.0, above=0, words=("scott", "silverman"), doc="kernel density bandwidth")}

    def estimator_options(self) -> dict[str, Any]:
        from sklearn.neighbors import KernelDensity

        return {"weight_estimator": KernelDensity(bandwidth=self.bandwidth)}


class SkadaGaussianReweight(SkadaAdapter):
    """skada GaussianReweight (ratio of Gaussian fits of the two domains) + the base estimator."""
    name, estimator = "skada_gaussian_reweight", "GaussianReweight"
    hyperparameters = {"reg": Float("auto", at_least=0, words=("auto",), doc="covariance regularisation ('auto': Ledoit-Wolf)")}


class SkadaNearestNeighborReweight(SkadaAdapter):
    """skada NearestNeighborReweight (target neighbour counts of source points) + the base estimator."""
    name, estimator = "skada_nn_reweight", "NearestNeighborReweight"
    hyperparameters = {"n_neighbors": Int(1, doc="target neighbours counted"),
                       "laplace_smoothing": Bool(False, doc="Laplace smoothing of the neighbour counts")}


class SkadaDiscriminatorReweight(SkadaAdapter):
    """skada DiscriminatorReweight (domain-classifier ratio) + the base estimator."""
    name, estimator = "skada_discriminator_reweight", "DiscriminatorReweight"


class SkadaKLIEP(SkadaAdapter):
    """skada KLIEPReweight + the base estimator."""
    name, estimator = "skada_kliep", "KLIEPReweight"


class SkadaCORAL(SkadaAdapter):
    """skada CORAL (second-order alignment) + the base estimator."""
    name, estimator = "skada_coral", "CORAL"
    hyperparameters = {"reg": Float("auto", at_least=0, words=("auto",), doc="covariance regularisation ('auto': Ledoit-Wolf)"),
                       "assume_centered": Bool(False, doc="covariances without centring")}


class SkadaSubspaceAlignment(SkadaAdapter):
    """skada SubspaceAlignment + the base estimator."""
    name, estimator = "skada_subspace_alignment", "SubspaceAlignment"
    hyperparameters = {"n_components": Int(None, allow_none=True, doc="subspace dimension (None: skada's default)")}


class SkadaLinearOT(SkadaAdapter):
    """skada LinearOTMapping (Gaussian Monge map of source onto target) + the base estimator."""
    name, estimator = "skada_linear_ot", "LinearOTMapping"
    hyperparameters = {"reg": Float(1.0, at_least=0, doc="covariance regularisation"),
                       "bias": Bool(True, doc="whether the map has an offset")}


class SkadaEntropicOT(SkadaAdapter):
    """skada EntropicOTMapping (Sinkhorn transport of source to target) + the base estimator."""
    name, estimator = "skada_entropic_ot", "EntropicOTMapping"


class SkadaJDOT(SkadaAdapter):
    """skada JDOTClassifier (joint distribution optimal transport, its own linear model; C and base unused)."""
    name, estimator, takes_base = "skada_jdot", "JDOTClassifier", False
