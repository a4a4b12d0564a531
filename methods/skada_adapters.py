"""skada (scikit-learn domain adaptation) estimators as shiftbench domain adapters.

One generic wrapper, :class:`SkadaAdapter`: a skada estimator (by its name in ``skada``) with a
logistic regression as base estimator, fitted on standardised source (labelled, domain 1) and
target (labels masked, domain -1) features inside scikit-learn's metadata routing, so reweighting
estimators pass their sample weights to the base estimator. Each plugin below only names the
estimator. skada is imported when a plugin is fitted (it is an optional dependency).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_matrix
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter
from shiftbench.validation import check_number
from shiftbench.methods.importance_weighting import class_columns


class SkadaAdapter(DomainAdapter):
    """A skada estimator with a logistic-regression base estimator on standardised features."""

    abstract = True
    #: name of the estimator factory in the ``skada`` namespace
    estimator: ClassVar[str]
    #: whether the factory takes a base estimator (the reweighting / mapping / subspace ones do)
    takes_base: ClassVar[bool] = True

    def __init__(self, C: float = 1.0):
        self.C = check_number(C, "C", self.name, above=0)

    def _build(self):
        try:
            import skada
        except ImportError as exc:
            raise ShiftbenchError(f"method {self.name!r} needs skada: pip install 'skada>=0.6'") from exc
        from sklearn.linear_model import LogisticRegression

        factory = getattr(skada, self.estimator)
        if not self.takes_base:
            return factory()
        return factory(LogisticRegression(C=self.C, max_iter=2000).set_fit_request(sample_weight=True))

    def fit(self, X_source, y_source, X_target) -> SkadaAdapter:
        import sklearn

        Xs = check_matrix(X_source, "X_source").astype(np.float64)
        Xt = check_matrix(X_target, "X_target", n_cols=Xs.shape[1]).astype(np.float64)
        y = check_labels(y_source, name="y_source", n=len(Xs))
        self.n_classes_, self.classes_ = int(y.max()) + 1, np.unique(y)
        X = np.vstack([Xs, Xt])
        self.mean_, self.std_ = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1.0)
        domains = np.r_[np.ones(len(Xs), np.int64), -np.ones(len(Xt), np.int64)]
        with sklearn.config_context(enable_metadata_routing=True):
            self.estimator_ = self._build()
            self.estimator_.fit((X - self.mean_) / self.std_, np.r_[y, -np.ones(len(Xt), np.int64)], sample_domain=domains)
        return self

    def predict_proba(self, X_target) -> np.ndarray:
        import sklearn

        Z = (check_matrix(X_target, "X_target").astype(np.float64) - self.mean_) / self.std_
        with sklearn.config_context(enable_metadata_routing=True):
            probs = self.estimator_.predict_proba(Z, sample_domain=-np.ones(len(Z), np.int64))
        return class_columns(probs, self.classes_, self.n_classes_)  # sklearn orders classes as np.unique


class SkadaKMM(SkadaAdapter):
    """skada KMMReweight (kernel mean matching weights) + logistic regression."""
    name, estimator = "skada_kmm", "KMMReweight"


class SkadaDensityReweight(SkadaAdapter):
    """skada DensityReweight (kernel density ratio) + logistic regression."""
    name, estimator = "skada_density_reweight", "DensityReweight"


class SkadaDiscriminatorReweight(SkadaAdapter):
    """skada DiscriminatorReweight (domain-classifier ratio) + logistic regression."""
    name, estimator = "skada_discriminator_reweight", "DiscriminatorReweight"


class SkadaKLIEP(SkadaAdapter):
    """skada KLIEPReweight + logistic regression."""
    name, estimator = "skada_kliep", "KLIEPReweight"


class SkadaCORAL(SkadaAdapter):
    """skada CORAL (second-order alignment) + logistic regression."""
    name, estimator = "skada_coral", "CORAL"


class SkadaSubspaceAlignment(SkadaAdapter):
    """skada SubspaceAlignment + logistic regression."""
    name, estimator = "skada_subspace_alignment", "SubspaceAlignment"


class SkadaEntropicOT(SkadaAdapter):
    """skada EntropicOTMapping (Sinkhorn transport of source to target) + logistic regression."""
    name, estimator = "skada_entropic_ot", "EntropicOTMapping"


class SkadaJDOT(SkadaAdapter):
    """skada JDOTClassifier (joint distribution optimal transport, its own linear model)."""
    name, estimator, takes_base = "skada_jdot", "JDOTClassifier", False
