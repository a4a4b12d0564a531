"""skada (scikit-learn domain adaptation) estimators as shiftbench domain adapters.

One generic wrapper, :class:`SkadaAdapter`: a skada estimator factory (by its name in ``skada``)
given a base estimator -- a logistic regression (``base="logistic"``, the default) or an RBF SVC
with Platt probabilities (``base="svc"``, SKADA-Bench's classifier) -- fitted on source (labelled,
domain 1) and target (labels masked, domain -1) features inside scikit-learn's metadata routing, so
reweighting estimators pass their sample weights to the base estimator. Features are standardised
on both domains together unless ``standardise=False`` (SKADA-Bench feeds the raw features).

Each plugin below names the estimator and, where it has any, its own hyperparameters (passed to the
factory by name; defaults are skada's). ``subsample=n`` fits on a stratified subsample of ``n`` points
of both domains together (skada's ``StratifiedDomainSubsampler``; SKADA-Bench does so for TCA, TSL,
JDOT and DASVM with 1000). skada is imported when a plugin is fitted (it is an optional dependency).
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

#: the "base" of a plugin that fits the estimator's own default model (JDOT's)
OWN_BASE = "skada"

#: ground costs the optimal-transport plugins accept (POT's cdist metrics SKADA-Bench sweeps, and euclidean)
OT_METRICS = ("sqeuclidean", "euclidean", "cosine", "cityblock")


def _domain_classifier(name: str, random_state: int):
    """A domain classifier of DiscriminatorReweight, with its library defaults (as SKADA-Bench's)."""
    if name == "xgboost":
        try:
            from xgboost import XGBClassifier
        except ImportError as exc:
            raise ShiftbenchError("domain_classifier='xgboost' needs xgboost: pip install 'xgboost>=2'") from exc
        return XGBClassifier(random_state=random_state)
    if name == "svc":
        from sklearn.svm import SVC

        return SVC(probability=True, random_state=random_state)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()


class SkadaAdapter(DomainAdapter):
    """A skada estimator with a logistic-regression (or SVC) base estimator."""

    abstract = True
    #: name of the estimator factory in the ``skada`` namespace (unless the plugin overrides :meth:`factory`)
    estimator: ClassVar[str]
    hyperparameters = {
        "C": Float(1.0, above=0, doc="inverse regularisation of the base estimator"),
        "base": Choice("logistic", tuple(BASE_ESTIMATORS), doc="base estimator"),
        "standardise": Bool(True, doc="standardise features on both domains together"),
        "subsample": Int(None, allow_none=True, doc="fit on a domain- and label-stratified subsample of this many "
                                                    "points (None: all)"),
    }

    def factory(self) -> Callable[..., Any]:
        """The skada factory: called with the base estimator (unless ``base`` is skada's own) and the options."""
        import skada

        return getattr(skada, self.estimator)

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

        factory = self.factory()
        if self.base == OWN_BASE:
            built = factory(**self.estimator_options())
        else:
            # weights routed to fit (reweighting estimators) and to score (skada's importance-weighted scorer)
            base = (BASE_ESTIMATORS[self.base](self.C, self.random_state).set_fit_request(sample_weight=True)
                    .set_score_request(sample_weight=True))
            built = factory(base, **self.estimator_options())
        if self.subsample is None:
            return built
        from skada.transformers import StratifiedDomainSubsampler

        steps = built.steps if hasattr(built, "steps") else [built]
        return skada.make_da_pipeline(StratifiedDomainSubsampler(self.subsample, random_state=self.random_state),
                                      *steps)

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
    hyperparameters = {"domain_classifier": Choice("logistic", ("logistic", "svc", "xgboost"),
                                                   doc="domain classifier, with its library defaults")}

    def estimator_options(self) -> dict[str, Any]:
        return {"domain_classifier": _domain_classifier(self.domain_classifier, self.random_state)}


class SkadaKLIEP(SkadaAdapter):
    """skada KLIEPReweight (Kullback-Leibler importance estimation) + the base estimator; its centres are
    drawn with the method's seed."""
    name, estimator = "skada_kliep", "KLIEPReweight"
    hyperparameters = {"gamma": Float(1.0, above=0, words=("auto", "scale"), doc="RBF kernel coefficient"),
                       "n_centers": Int(100, doc="kernel centres drawn from the target"),
                       "cv": Int(5, at_least=2, doc="likelihood cross-validation folds"),
                       "tol": Float(1e-6, above=0, doc="convergence tolerance"),
                       "max_iter": Int(1000, doc="iterations of the weight optimisation")}

    def estimator_options(self) -> dict[str, Any]:
        return {**super().estimator_options(), "random_state": self.random_state}


class SkadaMMDTarS(SkadaAdapter):
    """skada MMDTarSReweight (target-shift weights by MMD matching, Zhang et al. 2013) + the base estimator."""
    name, estimator = "skada_mmd_tars", "MMDTarSReweight"
    hyperparameters = {"gamma": Float(1.0, above=0, allow_none=True, doc="RBF kernel coefficient"),
                       "reg": Float(1e-10, at_least=0, doc="kernel regularisation"),
                       "tol": Float(1e-6, above=0, doc="convergence tolerance"),
                       "max_iter": Int(1000, doc="iterations of the QP solver")}


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


class SkadaOTMapping(SkadaAdapter):
    """skada OTMapping (exact optimal transport barycentric map of source onto target) + the base estimator."""
    name, estimator = "skada_ot_mapping", "OTMapping"
    hyperparameters = {"metric": Choice("sqeuclidean", OT_METRICS, doc="ground cost"),
                       "norm": Choice(None, (None, "median", "max", "log", "loglog"), doc="cost normalisation"),
                       "max_iter": Int(100000, doc="network-simplex iterations")}


class SkadaEntropicOT(SkadaAdapter):
    """skada EntropicOTMapping (Sinkhorn transport of source to target) + the base estimator."""
    name, estimator = "skada_entropic_ot", "EntropicOTMapping"
    hyperparameters = {"metric": Choice("sqeuclidean", OT_METRICS, doc="ground cost"),
                       "norm": Choice(None, (None, "median", "max", "log", "loglog"), doc="cost normalisation"),
                       "max_iter": Int(1000, doc="Sinkhorn iterations"),
                       "reg_e": Float(1.0, above=0, doc="entropic regularisation"),
                       "tol": Float(1e-8, above=0, doc="Sinkhorn tolerance")}


class SkadaClassRegularizerOT(SkadaAdapter):
    """skada ClassRegularizerOTMapping (entropic transport with a class-sparsity regulariser) + the base estimator."""
    name, estimator = "skada_class_reg_ot", "ClassRegularizerOTMapping"
    hyperparameters = {"metric": Choice("sqeuclidean", OT_METRICS, doc="ground cost"),
                       "norm": Choice("lpl1", ("lpl1", "l1l2"), doc="class regulariser"),
                       "max_iter": Int(10, doc="outer (majorisation) iterations"),
                       "max_inner_iter": Int(200, doc="Sinkhorn iterations per outer one"),
                       "reg_e": Float(1.0, above=0, doc="entropic regularisation"),
                       "reg_cl": Float(0.1, at_least=0, doc="class regularisation"),
                       "tol": Float(1e-8, above=0, doc="tolerance")}


class SkadaMMDLS(SkadaAdapter):
    """skada MMDLSConSMapping (location-scale map minimising MMD, conditional shift; Zhang et al. 2013) + the
    base estimator."""
    name, estimator = "skada_mmd_ls", "MMDLSConSMapping"
    hyperparameters = {"gamma": Float(1.0, above=0, doc="RBF kernel coefficient"),
                       "reg_k": Float(1e-10, at_least=0, doc="kernel regularisation"),
                       "reg_m": Float(1e-10, at_least=0, doc="map regularisation"),
                       "tol": Float(1e-5, above=0, doc="convergence tolerance"),
                       "max_iter": Int(100, doc="iterations")}


class SkadaTCA(SkadaAdapter):
    """skada TransferComponentAnalysis (kernel components with matched domain means) + the base estimator."""
    name, estimator = "skada_tca", "TransferComponentAnalysis"
    hyperparameters = {"kernel": Choice("rbf", ("rbf", "linear", "poly", "sigmoid", "cosine"), doc="kernel"),
                       "n_components": Int(None, allow_none=True, doc="components kept (None: skada's default)"),
                       "mu": Float(0.1, above=0, doc="trade-off of the component regulariser")}


class SkadaTSL(SkadaAdapter):
    """skada TransferSubspaceLearning (a projection minimising a subspace-learning loss plus the Bregman
    divergence between the projected domains) + the base estimator."""
    name, estimator = "skada_tsl", "TransferSubspaceLearning"
    hyperparameters = {"n_components": Int(None, allow_none=True, doc="subspace dimension (None: skada's default)"),
                       "base_method": Choice("flda", ("flda", "pca", "lpp"), doc="subspace-learning loss"),
                       "length_scale": Float(2.0, above=0, doc="kernel density length scale of the divergence"),
                       "mu": Float(0.1, at_least=0, doc="weight of the divergence"),
                       "reg": Float(0.01, at_least=0, doc="regularisation of the projection"),
                       "max_iter": Int(100, doc="optimiser iterations"),
                       "tol": Float(0.01, above=0, doc="tolerance")}


def _source_pca(base_estimator, n_components: int | None = None):
    """A PCA fitted on the source, then ``base_estimator`` trained on the projected source (SKADA-Bench's JPCA)."""
    from sklearn.decomposition import PCA
    from skada import make_da_pipeline
    from skada.base import SelectSource

    return make_da_pipeline(SelectSource(PCA(n_components)), SelectSource(base_estimator))


class SkadaJPCA(SkadaAdapter):
    """A PCA projection fitted on the source + the base estimator trained on the source (SKADA-Bench's JPCA)."""
    name = "skada_jpca"
    hyperparameters = {"n_components": Int(None, allow_none=True, doc="components kept (None: all)")}

    def factory(self) -> Callable[..., Any]:
        return _source_pca


class SkadaOTLabelProp(SkadaAdapter):
    """skada OTLabelProp (target labels propagated through an optimal transport plan) + the base estimator
    trained on the target with them."""
    name, estimator = "skada_ot_label_prop", "OTLabelProp"
    hyperparameters = {"reg": Float(0.0, at_least=0, allow_none=True, doc="entropic regularisation (0 or None: exact)"),
                       "metric": Choice("sqeuclidean", OT_METRICS, doc="ground cost"),
                       "n_iter_max": Int(200, doc="transport iterations")}


class SkadaJDOT(SkadaAdapter):
    """skada JDOTClassifier (joint distribution optimal transport). By default it fits its own model
    (``base="skada"``, C unused); ``base="svc"`` with ``metric="hinge"`` is SKADA-Bench's JDOT."""
    name, estimator = "skada_jdot", "JDOTClassifier"
    hyperparameters = {"base": Choice(OWN_BASE, (OWN_BASE, *BASE_ESTIMATORS), doc="base estimator (skada: JDOT's own)"),
                       "alpha": Float(0.5, above=0, doc="weight of the feature cost against the label loss"),
                       "metric": Choice("multinomial", ("multinomial", "hinge", "mse"), doc="label loss"),
                       "n_iter_max": Int(100, doc="alternating iterations"),
                       "tol": Float(1e-5, above=0, doc="tolerance"),
                       "thr_weights": Float(1e-6, at_least=0, doc="transport weights below this are dropped")}


class SkadaDASVM(SkadaAdapter):
    """skada DASVMClassifier (self-labelling SVM, Bruzzone & Marconcini 2010; binary labels only)."""
    name, estimator = "skada_dasvm", "DASVMClassifier"
    hyperparameters = {"k": Int(3, doc="target points labelled (and source points dropped) per iteration"),
                       "max_iter": Int(1000, doc="self-labelling iterations")}

    def not_applicable(self, model, data) -> str | None:
        return None if data.n_classes <= 2 else f"DASVM is binary; the data have {data.n_classes} classes"

    def fit(self, X_source, y_source, X_target) -> SkadaDASVM:
        n_classes = len(np.unique(np.asarray(y_source)))
        if n_classes > 2:
            raise ShiftbenchError(f"method {self.name!r} is binary (DASVM); y_source has {n_classes} classes: "
                                  "use it on two-class data")
        return super().fit(X_source, y_source, X_target)
