"""The four method families and the label-free :class:`Task` a method receives for one cell.

| family      | base class             | sees                                          | implements              |
|-------------|------------------------|-----------------------------------------------|-------------------------|
| output      | :class:`OutputAdapter` | each target batch's probs and features        | ``adapt(probs, feats)`` |
| tta         | :class:`ModelAdapter`  | the source network, unlabelled target batches | ``setup``, ``step``     |
| domain      | :class:`DomainAdapter` | labelled source and unlabelled target features| ``fit``, ``predict_proba`` |
| estimator   | :class:`PerformanceEstimator` | labelled reference outputs, target chunks | ``fit``, ``estimate``   |

A plugin is one file in ``methods/`` with a subclass of one of these, a ``name`` and a
``grid`` (hyperparameter -> list of values) next to the code. Hyperparameters are the keyword
arguments of ``__init__``, stored as attributes of the same name (scikit-learn convention).
Target labels never reach a method: :class:`Task` holds an :class:`UnlabelledSplit`.

Randomness is not a hyperparameter. A method draws from ``self.random_state`` (an int for
scikit-learn's ``random_state``, or ``np.random.default_rng(self.random_state)``), which each
family's ``run`` sets from the cell's seed (``task.random_state``) before the method sees data;
``task.rng(purpose)`` gives a generator for another purpose (:mod:`shiftbench.seeding`). Used
outside the runner, a method keeps ``random_state = 0`` (deterministic) unless the caller sets the
attribute: ``m = DWGCS(); m.random_state = 3; m.fit(...)``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from shiftbench.arrays import check_matrix, check_probs, softmax
from shiftbench.cache import ArrayCache
from shiftbench.dataset import DataFacts, Dataset, Split, UnlabelledSplit
from shiftbench.errors import ShiftbenchError
from shiftbench.metric_facts import MetricFacts, register_metric
from shiftbench.models import SourceModel
from shiftbench.seeding import generator, int_seed


@dataclass
class Outputs:
    """A source model's outputs on a split: features, logits, probabilities (and labels for source)."""

    feats: np.ndarray
    logits: np.ndarray
    y: np.ndarray | None = None

    @property
    def probs(self) -> np.ndarray:
        return softmax(self.logits.astype(np.float64))


@dataclass
class Task:
    """Everything a method may use in one cell; no target labels."""

    n_classes: int
    target: UnlabelledSplit
    batches: list[np.ndarray]
    seed: int
    model: SourceModel = field(repr=False)
    cache: ArrayCache = field(repr=False)
    source_splits: dict[str, Split] = field(repr=False, default_factory=dict)

    def target_outputs(self) -> Outputs:
        """Cached source-model outputs on the whole target split (target order, not stream order)."""
        out = self.model.outputs(self.target, self.cache)
        return Outputs(out["feats"], out["logits"])

    def source_outputs(self, split: str = "train") -> Outputs:
        """Cached source-model outputs with labels on a labelled source split (``train``, ``id_val``)."""
        if split not in self.source_splits:
            raise ShiftbenchError(f"no labelled source split {split!r}; available: {', '.join(self.source_splits)}")
        s = self.source_splits[split]
        out = self.model.outputs(s, self.cache)
        return Outputs(out["feats"], out["logits"], s.y)

    def target_batch(self, index: np.ndarray) -> torch.Tensor:
        """Preprocessed target inputs for ``index``, ready for the network."""
        return self.model.preprocess(self.target.inputs(index)).to(self.model.device)

    def network(self) -> torch.nn.Module:
        """A fresh copy of the source network (eval mode) that the method may modify."""
        return self.model.fresh_network()

    @property
    def random_state(self) -> int:
        """The method's int seed in this cell (``seed`` mixed for the ``method`` purpose)."""
        return int_seed(self.seed, "method")

    def rng(self, purpose: str = "method") -> np.random.Generator:
        """A fresh generator for ``purpose`` (see :mod:`shiftbench.seeding`) under this cell's seed."""
        return generator(self.seed, purpose)


@dataclass
class Truth:
    """Target labels and the dataset's evaluation, seen only by the runner's metric code."""

    dataset: Dataset
    split: Split


class Method(ABC):
    """Base class of every method plugin."""

    name: ClassVar[str]
    family: ClassVar[str]
    #: hyperparameter -> values swept by the runner (the defaults of ``__init__`` if empty)
    grid: ClassVar[dict[str, list]] = {}
    #: seed of the method's own randomness; not a hyperparameter: ``run`` sets it from the task
    random_state: int = 0

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        """The keyword arguments of ``__init__`` and their defaults."""
        sig = inspect.signature(cls.__init__)
        return {k: p.default for k, p in sig.parameters.items()
                if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty}

    def get_params(self) -> dict[str, Any]:
        """Current hyperparameters (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self.default_hyperparameters()}

    def not_applicable(self, model: SourceModel, data: DataFacts) -> str | None:
        """A reason why this method cannot run with ``model`` (e.g. ``model.has_batchnorm()``) on data
        described by ``data`` (name, input kind, number of classes; never the labelled dataset), or ``None``."""
        return None

    @abstractmethod
    def run(self, task: Task) -> Any:
        """Do the method's work on one cell and return what :meth:`evaluate` scores."""

    @abstractmethod
    def evaluate(self, output: Any, truth: Truth, task: Task) -> dict[str, float]:
        """Metrics of ``output`` against the target labels (runner only)."""


class PredictionMethod(Method):
    """A method whose output is target class probabilities (N, K), in target order."""

    abstract = True

    def evaluate(self, output: Any, truth: Truth, task: Task) -> dict[str, float]:
        probs = check_probs(output, f"probabilities returned by method {self.name!r}")
        if probs.shape != (len(truth.split), task.n_classes):
            raise ShiftbenchError(
                f"method {self.name!r} returned probabilities of shape {probs.shape}; "
                f"expected {(len(truth.split), task.n_classes)} (one row per target example, in target order)"
            )
        return truth.dataset.evaluate(truth.split, probs.argmax(1), probs)


class OutputAdapter(PredictionMethod):
    """Adapts each target batch's output probabilities (LAME, prior correction); updates nothing persistent."""

    abstract = True
    family = "output"

    @abstractmethod
    def adapt(self, probs: np.ndarray, feats: np.ndarray) -> np.ndarray:
        """Adapted probabilities (N, K) of one batch from its source probabilities and features."""

    def run(self, task: Task) -> np.ndarray:
        self.random_state = task.random_state
        out = task.target_outputs()
        probs, adapted = out.probs, np.empty((len(task.target), task.n_classes))
        for index in task.batches:
            adapted[index] = check_probs(self.adapt(probs[index], out.feats[index]),
                                         f"probabilities returned by method {self.name!r} for a target batch")
        return adapted


class ModelAdapter(PredictionMethod):
    """Updates the model online from unlabelled target batches (BN-adapt, Tent)."""

    abstract = True
    family = "tta"

    @abstractmethod
    def setup(self, network: torch.nn.Module, task: Task) -> None:
        """Prepare a fresh copy of the source network before the stream starts."""

    @abstractmethod
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for one target batch (and whatever update the method makes on it)."""

    def run(self, task: Task) -> np.ndarray:
        self.random_state = task.random_state
        torch.manual_seed(task.random_state)
        self.setup(task.network(), task)
        probs = np.empty((len(task.target), task.n_classes))
        for index in task.batches:
            logits = self.step(task.target_batch(index))
            check_matrix(logits, f"logits returned by method {self.name!r} for a target batch", n_rows=len(index))
            probs[index] = torch.softmax(logits.detach().double(), 1).cpu().numpy()
        return probs


class DomainAdapter(PredictionMethod):
    """Fits its own estimator on labelled source and unlabelled target features (DW-GCS, KMM, IW)."""

    abstract = True
    family = "domain"

    @abstractmethod
    def fit(self, X_source: np.ndarray, y_source: np.ndarray, X_target: np.ndarray) -> DomainAdapter:
        ...

    @abstractmethod
    def predict_proba(self, X_target: np.ndarray) -> np.ndarray:
        ...

    def run(self, task: Task) -> np.ndarray:
        self.random_state = task.random_state
        src, tgt = task.source_outputs("train"), task.target_outputs()
        self.fit(src.feats, src.y, tgt.feats)
        return check_probs(self.predict_proba(tgt.feats), f"probabilities returned by method {self.name!r}")


#: the metrics of :meth:`PerformanceEstimator.evaluate`: mean and largest absolute error of the per-chunk
#: accuracy estimates, mean estimate and mean realised accuracy
register_metric("mae_acc", MetricFacts(lower_is_better=True))
register_metric("max_ae_acc", MetricFacts(lower_is_better=True))
register_metric("est_acc", MetricFacts())
register_metric("real_acc", MetricFacts(proportion=True))


class PerformanceEstimator(Method):
    """Estimates the source model's accuracy on unlabelled target chunks from a labelled reference.

    An estimator that also needs covariates (density ratios: M-CBPE, importance weighting) sets
    ``uses_features = True``; it then receives the model's features as ``fit(..., reference_feats=)``
    and ``estimate_accuracy(probs, feats=)``.
    """

    abstract = True
    family = "estimator"
    uses_features: ClassVar[bool] = False

    @abstractmethod
    def fit(self, reference_probs: np.ndarray, reference_y: np.ndarray) -> PerformanceEstimator:
        ...

    @abstractmethod
    def estimate_accuracy(self, probs: np.ndarray) -> float:
        """Estimated accuracy of argmax predictions on one chunk of target probabilities."""

    def run(self, task: Task) -> pd.DataFrame:
        self.random_state = task.random_state
        ref, target = task.source_outputs("id_val"), task.target_outputs()
        if self.uses_features:
            self.fit(ref.probs, ref.y, reference_feats=ref.feats)
            estimates = [self.estimate_accuracy(target.probs[i], feats=target.feats[i]) for i in task.batches]
        else:
            self.fit(ref.probs, ref.y)
            estimates = [self.estimate_accuracy(target.probs[i]) for i in task.batches]
        check_matrix(np.reshape(estimates, (-1, 1)), f"accuracy estimates of method {self.name!r}")
        return pd.DataFrame({"chunk": range(len(task.batches)), "estimate": estimates})

    def evaluate(self, output: pd.DataFrame, truth: Truth, task: Task) -> dict[str, float]:
        realised = self._realised_accuracy(truth, task)
        estimates = output["estimate"].to_numpy()
        err = np.abs(estimates - realised)
        return {"mae_acc": float(err.mean()), "max_ae_acc": float(err.max()),
                "est_acc": float(estimates.mean()), "real_acc": float(realised.mean())}

    def details(self, output: pd.DataFrame, truth: Truth, task: Task) -> pd.DataFrame:
        """One row per chunk, kept in the record: position, label (e.g. the month of a ``chunk_by=month``
        stream), size, estimated and realised accuracy (what monitoring figures are drawn from)."""
        from shiftbench.scenarios import batch_labels  # the stream's labels; families needs nothing else of scenarios

        return pd.DataFrame({"chunk": output["chunk"].to_numpy(), "label": batch_labels(task.batches),
                             "n": [len(i) for i in task.batches], "estimate": output["estimate"].to_numpy(),
                             "realised": self._realised_accuracy(truth, task)})

    @staticmethod
    def _realised_accuracy(truth: Truth, task: Task) -> np.ndarray:
        """Accuracy of the model's argmax predictions on each chunk, from the target labels (runner only)."""
        correct = task.target_outputs().probs.argmax(1) == truth.split.y
        return np.array([correct[i].mean() for i in task.batches])
