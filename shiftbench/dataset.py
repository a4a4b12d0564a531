"""The dataset contract, WILDS style: named splits with labels and metadata, a grouper, and eval.

A dataset adapter subclasses :class:`Dataset`, sets ``name`` (the registry key, e.g. ``"digits"``
or ``"wilds/camelyon17"``) and fills ``self.splits`` in ``__init__``, whose parameters are the
dataset's options: the base class captures them (``Dataset.options``, defaults filled in) and
rejects names ``__init__`` does not take, before any data is loaded. Split names follow WILDS:
``train`` (labelled source), ``id_val``/``id_test`` (held-out source), ``val``/``test`` (shifted).
Methods never receive a :class:`Split`; they receive an :class:`UnlabelledSplit`, which has no ``y``
and only the metadata columns the dataset declares visible (``Dataset.visible_metadata``, an
allow-list), built by :meth:`Dataset.label_free`.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from shiftbench.arrays import check_labels, to_numpy
from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import classification_metrics
from shiftbench.seeding import int_seed


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """Content hash of arrays (shape, dtype and bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


#: metadata columns the harness's scenarios add to a target split (``corruptions.splits.corrupted_split``):
#: domain facts, visible to methods on every dataset
SCENARIO_METADATA: tuple[str, ...] = ("corruption", "severity")
#: columns that hold the label; never visible, whatever a dataset declares
LABEL_COLUMNS: tuple[str, ...] = ("y", "label")


@dataclass(frozen=True)
class DataFacts:
    """What a method may know about a dataset before it runs (``Method.not_applicable``): no data, no labels."""

    name: str
    input_kind: str
    n_classes: int


@dataclass
class UnlabelledSplit:
    """What a method may see of a target split: inputs and label-free metadata, never ``y``."""

    name: str
    n: int
    _inputs: Callable[[np.ndarray], Any] = field(repr=False)
    metadata: pd.DataFrame = field(repr=False)
    fingerprint: str = ""

    def __len__(self) -> int:
        return self.n

    def inputs(self, index: np.ndarray | slice | None = None) -> Any:
        """Raw inputs for ``index`` (all if ``None``): an array of images or feature rows."""
        return self._inputs(_as_index(index, self.n))


@dataclass
class Split:
    """A labelled split: ``y`` (n,), ``metadata`` (a DataFrame with one row per example) and inputs.

    Inputs live either in memory (``x``) or behind ``load_inputs(index) -> array`` for data read
    from disk on demand (WILDS images). ``fingerprint`` identifies the content for caching.
    ``task`` is ``"classification"`` (``y`` integer classes, validated) or another target kind whose
    ``y`` is kept as given: ``"regression"`` (floats), ``"multitask"`` / ``"sequence"`` (2-D, NaN =
    unlabelled) or ``"detection"`` (an object array of box dicts).
    """

    name: str
    y: np.ndarray
    metadata: pd.DataFrame
    x: np.ndarray | None = field(default=None, repr=False)
    load_inputs: Callable[[np.ndarray], Any] | None = field(default=None, repr=False)
    fingerprint: str = ""
    task: str = "classification"

    def __post_init__(self) -> None:
        if self.task == "classification":
            self.y = check_labels(self.y, name=f"labels of split {self.name!r}")
        else:
            self.y = np.asarray(self.y)
        if self.x is None and self.load_inputs is None:
            raise ShiftbenchError(f"split {self.name!r} needs either in-memory inputs x or a load_inputs function")
        if self.x is not None and len(self.x) != len(self.y):
            raise ShiftbenchError(f"split {self.name!r}: {len(self.x)} inputs but {len(self.y)} labels")
        if len(self.metadata) != len(self.y):
            raise ShiftbenchError(f"split {self.name!r}: {len(self.metadata)} metadata rows but {len(self.y)} labels")
        self.metadata = self.metadata.reset_index(drop=True)
        if not self.fingerprint:
            if self.x is None:
                raise ShiftbenchError(f"split {self.name!r} loads inputs lazily, so it must be given a fingerprint")
            self.fingerprint = fingerprint_arrays(self.x, self.y)

    def __len__(self) -> int:
        return len(self.y)

    def inputs(self, index: np.ndarray | slice | None = None) -> Any:
        """Raw inputs for ``index`` (all if ``None``)."""
        index = _as_index(index, len(self))
        if self.x is not None:
            return self.x[index]
        return self.load_inputs(index)

    def subset(self, index: np.ndarray, name: str | None = None, tag: str = "") -> Split:
        """The examples at ``index`` (in that order, repeats allowed) as a new split."""
        index = np.asarray(index, dtype=np.int64)
        fp = hashlib.sha256(f"{self.fingerprint}|{tag}|".encode() + index.tobytes()).hexdigest()[:16]
        if self.x is not None:
            return Split(name or self.name, self.y[index], self.metadata.iloc[index], x=self.x[index],
                         fingerprint=fp, task=self.task)
        parent = self.load_inputs
        return Split(name or self.name, self.y[index], self.metadata.iloc[index],
                     load_inputs=lambda i: parent(index[i]), fingerprint=fp, task=self.task)

    def unlabelled(self, visible: Sequence[str] = ()) -> UnlabelledSplit:
        """The label-free view handed to methods and unsupervised scorers: the inputs and only the
        metadata columns named in ``visible`` (an allow-list; those the split lacks are skipped).
        Build it with :meth:`Dataset.label_free`, which passes the dataset's declared columns."""
        leaked = sorted(set(visible) & set(LABEL_COLUMNS))
        if leaked:
            raise ShiftbenchError(f"split {self.name!r}: label columns {leaked} cannot be visible metadata; "
                                  f"remove them from the dataset's visible_metadata")
        meta = self.metadata[[c for c in dict.fromkeys(visible) if c in self.metadata.columns]]
        # hand over the inputs alone, not a bound method of this split (which would reach self.y)
        x, load = self.x, self.load_inputs
        inputs = load if x is None else x.__getitem__
        return UnlabelledSplit(self.name, len(self), lambda index: inputs(_as_index(index, len(meta))), meta,
                               self.fingerprint)


def _example_bytes(example: Any) -> bytes:
    """The content of one input (an array row, a string, a graph object) as bytes, for its id."""
    if isinstance(example, np.ndarray) and example.dtype != object:
        return f"{example.shape}{example.dtype}".encode() + np.ascontiguousarray(example).tobytes()
    return repr(example).encode()


def _label(cls: type) -> str:
    """A dataset class's registry name, or its class name for an abstract base."""
    return getattr(cls, "name", cls.__name__)


def _as_index(index: np.ndarray | slice | None, n: int) -> np.ndarray | slice:
    if index is None:
        return slice(0, n)
    return index


class Grouper:
    """Maps metadata rows to integer groups by the combinations of ``columns`` (WILDS' CombinatorialGrouper)."""

    def __init__(self, columns: Sequence[str]):
        self.columns = list(columns)

    def group_ids(self, metadata: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """Integer group per row and the name of each group (e.g. ``"y=3"``)."""
        missing = [c for c in self.columns if c not in metadata.columns]
        if missing:
            raise ShiftbenchError(f"grouper needs metadata columns {missing}; available: {list(metadata.columns)}")
        if not self.columns:
            return np.zeros(len(metadata), dtype=np.int64), ["all"]
        keys = metadata[self.columns].astype(str).agg(",".join, axis=1) if len(self.columns) > 1 \
            else metadata[self.columns[0]].astype(str)
        names_sorted, ids = np.unique(keys.to_numpy(), return_inverse=True)
        prefix = ",".join(self.columns)
        return ids.astype(np.int64), [f"{prefix}={n}" for n in names_sorted]


class Dataset:
    """Base class of dataset adapters: subclasses set ``name`` and fill ``splits`` in ``__init__``.

    The parameters of the adapter's ``__init__`` are its options. Constructing an adapter records the
    options it was given, defaults filled in, as ``options`` (:meth:`bind_options`), so an adapter
    calls ``super().__init__()`` without repeating them; an option ``__init__`` does not take is a
    :class:`ShiftbenchError` before ``__init__`` runs.
    """

    name: ClassVar[str]
    #: "image" (uint8 arrays N,H,W[,C]) or "tabular" (float N,d) or another modality.
    input_kind: ClassVar[str] = "image"
    #: the shell command that fetches the data (shown in the error when it is missing), if any
    download_command: ClassVar[str | None] = None
    #: why no model or method family can consume this dataset yet (one line), or ``None`` for a
    #: supported one; ``shiftbench list`` marks an experimental dataset and ``shiftbench run`` refuses it
    experimental: ClassVar[str | None] = None
    #: metadata columns a method may see (domain attributes that do not reveal ``y``): an allow-list;
    #: ``SCENARIO_METADATA`` (corruption, severity) is visible on top
    visible_metadata: ClassVar[tuple[str, ...]] = ()
    #: a dataset of targets only (pre-generated corruptions of a test set, for pretrained models): no train split
    target_only: ClassVar[bool] = False
    #: a metadata column holding a stable example id (unique within the pool the splits are drawn
    #: from); ``None``: examples are identified by the bytes of their inputs (:meth:`example_ids`)
    id_column: ClassVar[str | None] = None
    #: the ``__init__`` option that seeds the dataset's random sampling (splits, subsets), or
    #: ``None`` when its splits are fixed; the runner sets it from each cell's seed (:func:`load_for_seed`)
    seed_option: ClassVar[str | None] = None

    #: the options the adapter was constructed with, defaults filled in (:meth:`bind_options`)
    options: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Dataset:
        """An adapter with the options of this construction recorded (unknown ones refused) before its
        ``__init__`` runs and reads any data."""
        dataset = super().__new__(cls)
        dataset.options = cls.bind_options(*args, **kwargs)
        return dataset

    def __init__(self) -> None:
        self.splits: dict[str, Split] = {}
        #: unlabelled target pools (e.g. WILDS' ``test_unlabeled``), where the dataset has them
        self.unlabelled: dict[str, UnlabelledSplit] = {}
        self.n_classes: int = 0
        self.grouper = Grouper([])
        self.class_names: list[str] | None = None

    @classmethod
    def option_names(cls) -> list[str]:
        """The named parameters of ``__init__``: the dataset's options."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Reject option names ``__init__`` does not take (a typo would otherwise be ignored), listing the valid
        ones; an ``__init__`` with ``**options`` takes any name."""
        params = inspect.signature(cls.__init__).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return
        valid = sorted(cls.option_names())
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ShiftbenchError(f"dataset {_label(cls)!r} has no options {unknown}; its options: "
                                  f"{', '.join(valid) or '(none)'}")

    @classmethod
    def bind_options(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The options of the construction ``cls(*args, **kwargs)``: each parameter of ``__init__`` by name
        (those of ``**options`` merged in), defaults filled in, tuples as lists (their form in a run config)."""
        cls.check_options(kwargs)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise ShiftbenchError(f"dataset {_label(cls)!r}: {exc}; its options: "
                                  f"{', '.join(cls.option_names()) or '(none)'}") from None
        bound.apply_defaults()
        options: dict[str, Any] = {}
        for key, value in list(bound.arguments.items())[1:]:
            options.update(value if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD else {key: value})
        return {key: list(value) if isinstance(value, tuple) else value for key, value in options.items()}

    @classmethod
    def options_for_seed(cls, options: dict[str, Any], seed: int) -> dict[str, Any]:
        """``options`` with the seed option (if any) set to the data seed of the cell seed ``seed``."""
        if cls.seed_option is None:
            return dict(options)
        if cls.seed_option in options:
            raise ShiftbenchError(f"dataset option {cls.seed_option!r} of {cls.name!r} follows the run's seed "
                                  f"(seed=0,1,2 draws three samples); remove it from dataset.options")
        return {**options, cls.seed_option: int_seed(seed, "data")}

    @property
    def fingerprint(self) -> str:
        """Content hash over all splits."""
        h = hashlib.sha256(self.name.encode())
        for key in sorted(self.splits):
            h.update(f"{key}:{self.splits[key].fingerprint};".encode())
        return h.hexdigest()[:16]

    def label_free(self, split: Split) -> UnlabelledSplit:
        """The view of ``split`` a method receives: inputs and the declared visible metadata, no ``y``."""
        return split.unlabelled((*self.visible_metadata, *SCENARIO_METADATA))

    def facts(self) -> DataFacts:
        """The label-free facts a method's ``not_applicable`` decides on."""
        return DataFacts(self.name, self.input_kind, int(self.n_classes))

    def example_ids(self, key: str) -> np.ndarray:
        """A stable id per example of split ``key``, equal for the same example in two splits: the
        ``id_column`` values where the dataset declares one, else a hash of each example's input bytes."""
        s = self.split(key)
        if self.id_column is not None:
            return s.metadata[self.id_column].astype(str).to_numpy()
        ids = []
        for start in range(0, len(s), 1024):
            batch = s.inputs(np.arange(start, min(start + 1024, len(s))))
            ids += [hashlib.sha256(_example_bytes(v)).hexdigest() for v in batch]
        return np.array(ids, dtype=object)

    def disjoint_pools(self) -> list[list[str]]:
        """Groups of splits drawn from one pool without replacement, whose examples must not overlap
        (checked by the dataset contract); by default all labelled splits form one group."""
        return [list(self.splits)]

    def split(self, name: str) -> Split:
        """The split called ``name``; a clear error lists the ones this dataset has."""
        if name not in self.splits:
            raise ShiftbenchError(f"dataset {self.name!r} has no split {name!r}; its splits: {', '.join(self.splits)}")
        return self.splits[name]

    def evaluate(self, split: str | Split, y_pred: Any, y_prob: Any = None) -> dict[str, float]:
        """Metrics of predictions on a split, named as WILDS names them (``acc_avg``, ``acc_wg`` ...).

        ``y_pred`` are predicted classes; ``y_prob`` (optional, (N, K)) adds calibration metrics.
        """
        s = split if isinstance(split, Split) else self.split(split)
        y_pred = to_numpy(y_pred, "y_pred")
        groups, _ = self.grouper.group_ids(s.metadata.assign(y=s.y))
        return classification_metrics(s.y, y_pred, y_prob, groups=groups, n_classes=self.n_classes)

    def info(self) -> pd.DataFrame:
        """One row per split: size, number of groups, class counts."""
        rows = []
        for key, s in self.splits.items():
            groups, names = self.grouper.group_ids(s.metadata.assign(y=s.y))
            rows.append({"split": key, "n": len(s), "groups": len(np.unique(groups)),
                         "classes": int(len(np.unique(s.y)))})
        return pd.DataFrame(rows)


def seeded_options(name: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
    """The options dataset ``name`` is loaded with in a cell of seed ``seed``: ``options`` with the
    dataset's seed option set from the cell seed; a :class:`ShiftbenchError` if ``options`` set it."""
    from shiftbench import datasets  # the registry imports this module

    cls, implied = datasets.registry.resolve(name)  # a name of a family (``<base>-c``) implies options
    return cls.options_for_seed({**implied, **options}, seed)


def check_dataset_for_run(name: str, options: dict[str, Any]) -> None:
    """Fail early (at cell expansion) if dataset ``name`` is experimental (no model or method family consumes
    it), or a run config sets the seed option that the run's ``seed`` drives, or an option name the adapter
    does not take."""
    from shiftbench import datasets

    cls = datasets.adapter_class(name)
    if cls.experimental:
        raise ShiftbenchError(f"dataset {name!r} is experimental ({cls.experimental}), so it cannot be run yet; "
                              f"pick a supported dataset from `shiftbench list datasets`")
    cls.check_options(seeded_options(name, options, 0))


def load_for_seed(name: str, options: dict[str, Any], seed: int) -> Dataset:
    """Dataset ``name`` with ``options`` as a cell of seed ``seed`` sees it (its random sampling follows the seed)."""
    from shiftbench import datasets

    return datasets.load(name, **seeded_options(name, options, seed))
