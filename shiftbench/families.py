"""The four method families, the one lifecycle they share, and the label-free :class:`Task` of a cell.

Every method runs the same way (:meth:`Method.run`; no plugin overrides it):

1. ``prepare(task)``, once per cell: fit on labelled source or reference outputs, set up a network;
2. ``process(batch)`` for each :class:`Batch` of the target stream (a batch for test-time methods, a
   chunk for estimators, the whole target for transductive domain adapters). A batch carries the
   indices of its target examples, the source model's probabilities and features on them, and, loaded
   on first use, the preprocessed inputs;
3. the family collects the answers into the cell's output.

| family      | base class             | ``prepare(task)``                        | ``process(batch)`` returns            |
|-------------|------------------------|------------------------------------------|---------------------------------------|
| output      | :class:`OutputAdapter` | optional (e.g. calibrate on ``id_val``)  | adapted probabilities (n, K)           |
| tta         | :class:`ModelAdapter`  | takes ``task.network()`` and sets it up  | logits (n, K) of ``batch.inputs``      |
| domain      | :class:`DomainAdapter` | the family calls ``fit(Xs, ys, Xt)``     | the family calls ``predict_proba``     |
| estimator   | :class:`PerformanceEstimator` | the family calls ``fit(reference)`` | estimated accuracy of the chunk (float) |

Domain adapters and estimators implement scikit-learn-style ``fit`` (and, for domain adapters,
``predict_proba``) because model selection refits them on splits of the labelled data
(:mod:`shiftbench.cell_scoring`); the family's ``prepare``/``process`` call them.

A plugin is one file in ``methods/`` with a subclass of one of these, a ``name``, its
``hyperparameters`` declared once (:mod:`shiftbench.hyperparameters`: name, kind, range, default; they
are the keyword arguments, stored as attributes of the same name, scikit-learn convention) and a
``grid`` (hyperparameter -> values swept) next to the code. Target labels never reach a method:
:class:`Task` holds an :class:`UnlabelledSplit`.

Randomness is not a hyperparameter. A method draws from ``self.random_state`` (an int for
scikit-learn's ``random_state``, or ``np.random.default_rng(self.random_state)``), which ``run`` sets
from the cell's seed (``task.random_state``) before ``prepare``, seeding torch's global generator with
it too; ``task.rng(purpose)`` gives a generator for another purpose (:mod:`shiftbench.seeding`). Used
outside the runner, a method keeps ``random_state = 0`` (deterministic) unless the caller sets the
attribute: ``m = DWGCS(); m.random_state = 3; m.fit(...)``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from shiftbench.arrays import check_matrix, check_probs, softmax
from shiftbench.cache import ArrayCache, code_version
from shiftbench.dataset import DataFacts, Dataset, Split, UnlabelledSplit
from shiftbench.errors import ShiftbenchError
from shiftbench.hyperparameters import Hyperparameter
from shiftbench.metric_facts import MetricFacts, register_metric
from shiftbench.seeding import generator, int_seed

if TYPE_CHECKING:  # torch is imported where a cell runs, so reading records (shiftbench table) never imports it
    import torch

    from shiftbench.model import SourceModel


@dataclass
class Outputs:
    """A source model's outputs on a split: features, logits, probabilities (and labels for source).

    ``probs`` (the softmax of the logits, float64) is computed once, on first use.
    """

    feats: np.ndarray
    logits: np.ndarray
    y: np.ndarray | None = None

    @cached_property
    def probs(self) -> np.ndarray | None:
        return None if self.logits is None else softmax(self.logits.astype(np.float64))

    @classmethod
    def from_probs(cls, probs: Any, y: Any = None, feats: Any = None) -> Outputs:
        """Outputs given by their probabilities rather than logits (tests, notebooks, a model that emits
        probabilities); ``logits`` is then ``None``."""
        outputs = cls(None if feats is None else np.asarray(feats), None, None if y is None else np.asarray(y))
        outputs.__dict__["probs"] = np.asarray(probs)
        return outputs

    def __len__(self) -> int:
        return len(self.probs if self.logits is None else self.logits)

    def subset(self, index: np.ndarray) -> Outputs:
        """The outputs (and labels) of the rows ``index``, probabilities carried over rather than recomputed."""
        def rows(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[index]

        part = Outputs(rows(self.feats), rows(self.logits), rows(self.y))
        if "probs" in self.__dict__:
            part.__dict__["probs"] = self.probs[index]
        return part

    def batch(self, index: np.ndarray) -> Batch:
        """The rows ``index`` as a :class:`Batch` without inputs."""
        return Batch(np.asarray(index), lambda: self)


class Batch:
    """One batch (or chunk) of target examples, as every family's ``process`` receives it.

    ``index``: the examples' positions in the target split; ``probs`` and ``feats``: the source model's
    probabilities (float64) and features on them; ``inputs``: the preprocessed inputs, ready for the
    network. Each is loaded on first use, so a test-time method never pays for cached outputs it does
    not read, and an output adapter never loads inputs.
    """

    def __init__(self, index: np.ndarray, outputs: Callable[[], Outputs],
                 inputs: Callable[[np.ndarray], torch.Tensor] | None = None):
        self.index = np.asarray(index)
        self._outputs = outputs
        self._inputs = inputs

    @classmethod
    def from_arrays(cls, probs: Any = None, feats: Any = None, inputs: torch.Tensor | None = None) -> Batch:
        """A batch built by hand (tests, notebooks) from whichever of probabilities, features and inputs
        are given; the others raise when read."""
        given = next(len(a) for a in (probs, feats, inputs) if a is not None)
        outputs = (Outputs.from_probs(probs, feats=feats) if probs is not None
                   else Outputs(None if feats is None else np.asarray(feats), None))
        return cls(np.arange(given), lambda: outputs, None if inputs is None else (lambda index: inputs[index]))

    def __len__(self) -> int:
        return len(self.index)

    @cached_property
    def probs(self) -> np.ndarray:
        return self._read("probs")

    @cached_property
    def feats(self) -> np.ndarray:
        return self._read("feats")

    @cached_property
    def inputs(self) -> torch.Tensor:
        if self._inputs is None:
            raise ShiftbenchError("this batch carries no inputs (it was built from outputs only); build it "
                                  "from a Task, or with Batch.from_arrays(inputs=...)")
        return self._inputs(self.index)

    def _read(self, what: str) -> np.ndarray:
        values = getattr(self._outputs(), what)
        if values is None:
            raise ShiftbenchError(f"this batch carries no {what}; give them to Batch.from_arrays({what}=...)")
        return values[self.index]


@dataclass
class Task:
    """Everything a method may use in one cell; no target labels.

    Cached outputs are read from the cache once per task (one cell) and shared by every call.
    """

    n_classes: int
    target: UnlabelledSplit
    batches: list[np.ndarray]
    seed: int
    model: SourceModel = field(repr=False)
    cache: ArrayCache = field(repr=False)
    source_splits: dict[str, Split] = field(repr=False, default_factory=dict)
    _outputs: dict[str, Outputs] = field(repr=False, default_factory=dict, init=False)

    def target_outputs(self) -> Outputs:
        """Cached source-model outputs on the whole target split (target order, not stream order)."""
        if "target" not in self._outputs:
            out = self.model.outputs(self.target, self.cache)
            self._outputs["target"] = Outputs(out["feats"], out["logits"])
        return self._outputs["target"]

    def source_outputs(self, split: str = "train") -> Outputs:
        """Cached source-model outputs with labels on a labelled source split (``train``, ``id_val``)."""
        if split not in self.source_splits:
            raise ShiftbenchError(f"no labelled source split {split!r}; available: {', '.join(self.source_splits)}")
        if split not in self._outputs:
            s = self.source_splits[split]
            out = self.model.outputs(s, self.cache)
            self._outputs[split] = Outputs(out["feats"], out["logits"], s.y)
        return self._outputs[split]

    def batch(self, index: np.ndarray) -> Batch:
        """The target examples ``index`` as a :class:`Batch` (outputs and inputs loaded on first use)."""
        return Batch(index, self.target_outputs, self.target_inputs)

    def stream(self) -> list[Batch]:
        """The scenario's target batches, in stream order."""
        return [self.batch(index) for index in self.batches]

    def target_inputs(self, index: np.ndarray) -> torch.Tensor:
        """Preprocessed target inputs for ``index``, ready for the network."""
        return self.model.preprocess(self.target.inputs(index)).to(self.model.device)

    def network(self) -> torch.nn.Module:
        """A fresh copy of the source network (eval mode) that the method may modify."""
        return self.model.fresh_network()

    def backbone_and_head(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """A fresh copy of the source network as its feature extractor and its classifier head."""
        network = self.network()
        return network[0], network[1]

    def cached(self, name: str, settings: Mapping[str, Any], compute: Callable[[], dict[str, np.ndarray]],
               code: str) -> dict[str, np.ndarray]:
        """Arrays derived from the source model and its labelled ``train`` split (e.g. a trained head), computed
        once per (model, split, ``settings``, ``code``) and cached under ``name``."""
        key = {"model": self.model.fingerprint, "split": self.source_splits["train"].fingerprint,
               "settings": dict(settings), "code": code}
        return self.cache.get_or_compute(name, key, compute)

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
    """Base class of every method plugin: hyperparameters from the declaration, and the one lifecycle."""

    name: ClassVar[str]
    family: ClassVar[str]
    #: hyperparameter -> declaration (kind, range, default); a subclass's entries extend its bases'
    hyperparameters: ClassVar[dict[str, Hyperparameter]] = {}
    #: hyperparameter -> values swept by the runner (the defaults if empty), or a list of such sub-grids
    grid: ClassVar[dict[str, list] | list[dict[str, list]]] = {}
    #: seed of the method's own randomness; not a hyperparameter: ``run`` sets it from the task
    random_state: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, Hyperparameter] = {}
        for klass in reversed(cls.__mro__):
            declared.update(klass.__dict__.get("hyperparameters", {}))
        cls._declared = declared
        cls.__signature__ = inspect.Signature(
            [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=h.default) for k, h in declared.items()])

    def __init__(self, *args: Any, **kwargs: Any):
        names = list(self._declared)
        if len(args) > len(names):
            raise ShiftbenchError(f"method {self._owner()!r} takes at most {len(names)} positional hyperparameters "
                                  f"({', '.join(names) or 'none'}); got {len(args)}")
        given = dict(zip(names, args))
        twice = sorted(set(given) & set(kwargs))
        if twice:
            raise ShiftbenchError(f"method {self._owner()!r}: {', '.join(twice)} given both by position and by name")
        for key, value in self.check_setting({**given, **kwargs}).items():
            setattr(self, key, value)

    @classmethod
    def _owner(cls) -> str:
        return getattr(cls, "name", cls.__name__)

    @classmethod
    def declared(cls) -> dict[str, Hyperparameter]:
        """Hyperparameter name -> declaration, bases' first."""
        return dict(cls._declared)

    @classmethod
    def default_hyperparameters(cls) -> dict[str, Any]:
        """Every hyperparameter and its declared default."""
        return {k: h.default for k, h in cls._declared.items()}

    @classmethod
    def check_setting(cls, setting: Mapping[str, Any]) -> dict[str, Any]:
        """The complete setting (defaults filled in) if every value is valid, else a one-line ShiftbenchError
        naming the first bad or unknown hyperparameter. The runner calls it on every grid point up front."""
        unknown = sorted(set(setting) - set(cls._declared))
        if unknown:
            raise ShiftbenchError(f"method {cls._owner()!r} has no hyperparameter {', '.join(unknown)}; its "
                                  f"hyperparameters: {', '.join(cls._declared) or '(none)'}")
        values = {k: h.check(setting.get(k, h.default), k, cls._owner()) for k, h in cls._declared.items()}
        cls.check_together(values)
        return values

    @classmethod
    def check_together(cls, values: dict[str, Any]) -> None:
        """Raise a ShiftbenchError if hyperparameters that are valid one by one clash (none clash by default)."""

    def get_params(self) -> dict[str, Any]:
        """Current hyperparameters (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._declared}

    def not_applicable(self, model: SourceModel, data: DataFacts) -> str | None:
        """A reason why this method cannot run with ``model`` (e.g. ``model.has_batchnorm()``) on data
        described by ``data`` (name, input kind, number of classes; never the labelled dataset), or ``None``."""
        return None

    def prepare(self, task: Task) -> None:
        """Called once per cell before the first batch (fit on labelled source data, set up a network)."""

    @abstractmethod
    def process(self, batch: Batch) -> Any:
        """The method's answer for one batch, in its family's form (see the module's table)."""

    def stream(self, task: Task) -> list[Batch]:
        """The batches ``process`` is called on, in order: the scenario's stream."""
        return task.stream()

    @abstractmethod
    def checked(self, answer: Any, batch: Batch) -> Any:
        """``process``'s answer for ``batch``, checked (and converted) by the family as soon as it is given."""

    @abstractmethod
    def collect(self, answers: list[Any], batches: list[Batch], task: Task) -> Any:
        """The cell's output from the checked answers, one per batch (the family does this)."""

    def run(self, task: Task) -> Any:
        """The one lifecycle: seed, ``prepare``, ``process`` each batch, ``collect``. Plugins do not override it."""
        import torch

        self.random_state = task.random_state
        torch.manual_seed(task.random_state)
        self.prepare(task)
        batches = self.stream(task)
        return self.collect([self.checked(self.process(batch), batch) for batch in batches], batches, task)

    def cached(self, task: Task, settings: Mapping[str, Any], compute: Callable[[], dict[str, np.ndarray]]
               ) -> dict[str, np.ndarray]:
        """What ``compute`` derives from the source model and its ``train`` split for ``settings``, cached
        across cells and keyed on this plugin's code (see :meth:`Task.cached`)."""
        return task.cached(self.name, settings, compute, code_version(type(self)))

    @abstractmethod
    def evaluate(self, output: Any, truth: Truth, task: Task) -> dict[str, float]:
        """Metrics of ``output`` against the target labels (runner only)."""


class PredictionMethod(Method):
    """A method whose output is target class probabilities (N, K), in target order."""

    abstract = True

    def checked(self, answer: Any, batch: Batch) -> np.ndarray:
        return check_probs(answer, f"probabilities returned by method {self.name!r} for a target batch")

    def collect(self, answers: list[np.ndarray], batches: list[Batch], task: Task) -> np.ndarray:
        probs = np.empty((len(task.target), task.n_classes))
        for batch, answer in zip(batches, answers):
            probs[batch.index] = answer
        return probs

    def evaluate(self, output: Any, truth: Truth, task: Task) -> dict[str, float]:
        probs = check_probs(output, f"probabilities returned by method {self.name!r}")
        if probs.shape != (len(truth.split), task.n_classes):
            raise ShiftbenchError(
                f"method {self.name!r} returned probabilities of shape {probs.shape}; "
                f"expected {(len(truth.split), task.n_classes)} (one row per target example, in target order)"
            )
        return truth.dataset.evaluate(truth.split, probs.argmax(1), probs)


class OutputAdapter(PredictionMethod):
    """Adapts each target batch's output probabilities (LAME, prior correction); updates no network.

    ``process(batch)`` returns the batch's adapted probabilities from ``batch.probs`` and ``batch.feats``.
    """

    abstract = True
    family = "output"


class ModelAdapter(PredictionMethod):
    """Updates the model online from unlabelled target batches (BN-adapt, Tent).

    ``prepare(task)`` takes a fresh copy of the source network (``task.network()``) and sets it up;
    ``process(batch)`` returns the logits of ``batch.inputs`` (and makes whatever update the method makes).
    """

    abstract = True
    family = "tta"

    @abstractmethod
    def prepare(self, task: Task) -> None:
        ...

    def checked(self, answer: Any, batch: Batch) -> np.ndarray:
        import torch

        check_matrix(answer, f"logits returned by method {self.name!r} for a target batch", n_rows=len(batch))
        return torch.softmax(answer.detach().double(), 1).cpu().numpy()


class DomainAdapter(PredictionMethod):
    """Fits its own estimator on labelled source and unlabelled target features (DW-GCS, KMM, IW).

    A plugin implements scikit-learn's ``fit(X_source, y_source, X_target)`` and ``predict_proba(X)``
    (selection refits it on splits); ``prepare`` fits it on the source ``train`` features and the whole
    target's, and the stream is one batch, the whole target (transductive).
    """

    abstract = True
    family = "domain"

    @abstractmethod
    def fit(self, X_source: np.ndarray, y_source: np.ndarray, X_target: np.ndarray) -> DomainAdapter:
        ...

    @abstractmethod
    def predict_proba(self, X_target: np.ndarray) -> np.ndarray:
        ...

    def prepare(self, task: Task) -> None:
        source, target = task.source_outputs("train"), task.target_outputs()
        self.fit(source.feats, source.y, target.feats)

    def stream(self, task: Task) -> list[Batch]:
        return [task.batch(np.arange(len(task.target)))]

    def process(self, batch: Batch) -> np.ndarray:
        return self.predict_proba(batch.feats)


#: the metrics of :meth:`PerformanceEstimator.evaluate`: mean and largest absolute error of the per-chunk
#: accuracy estimates, mean estimate and mean realised accuracy
register_metric("mae_acc", MetricFacts(lower_is_better=True))
register_metric("max_ae_acc", MetricFacts(lower_is_better=True))
register_metric("est_acc", MetricFacts())
register_metric("real_acc", MetricFacts(proportion=True))


class PerformanceEstimator(Method):
    """Estimates the source model's accuracy on unlabelled target chunks from a labelled reference.

    A plugin implements ``fit(reference)`` (the labelled reference :class:`Outputs`: probabilities,
    features, labels; selection refits it on splits of the reference) and ``process(chunk)``, the
    estimated accuracy of the model's argmax predictions on one chunk (:class:`Batch`), from whichever
    of ``chunk.probs`` and ``chunk.feats`` it needs. ``prepare`` fits it on the ``id_val`` outputs.
    """

    abstract = True
    family = "estimator"

    @abstractmethod
    def fit(self, reference: Outputs) -> PerformanceEstimator:
        ...

    def prepare(self, task: Task) -> None:
        self.fit(task.source_outputs("id_val"))

    def checked(self, answer: Any, batch: Batch) -> float:
        return answer

    def collect(self, answers: list[float], batches: list[Batch], task: Task) -> pd.DataFrame:
        check_matrix(np.reshape(answers, (-1, 1)), f"accuracy estimates of method {self.name!r}")
        return pd.DataFrame({"chunk": range(len(batches)), "estimate": answers})

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
