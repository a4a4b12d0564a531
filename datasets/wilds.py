"""WILDS datasets (``wilds/<name>``) loaded through the ``wilds`` package's own dataset classes.

Each adapter constructs the WILDS dataset with ``wilds.get_dataset(..., download=False)`` from
``<root_dir>/<name>_v<version>/`` (the layout the WILDS downloader writes) and exposes:

- ``splits``: every split WILDS defines for the split scheme (``train``, ``id_val``, ``id_test``,
  ``val``, ``test`` as the dataset has them), with ``y`` and ``metadata`` (a DataFrame whose
  columns are WILDS' ``metadata_fields``, integer codes as WILDS stores them; ``metadata_maps``
  decodes them);
- ``grouper``: the fields of WILDS' evaluation grouper (for civilcomments, whose official groups
  overlap, the ``black x y`` grouping WILDS trains GroupDRO with);
- ``unlabelled``: WILDS' unlabelled pools (``train_unlabeled``, ``val_unlabeled``,
  ``test_unlabeled``, ``extra_unlabeled``) when ``<name>_unlabeled_v<version>/`` is present;
- ``evaluate(split, y_pred)``: WILDS' official summary metrics under WILDS' names (``acc_wg``,
  ``F1-macro_all``, ``acc_worst_region``, ...; ``official_metrics`` returns WILDS' whole dict with
  the per-group entries), computed in shiftbench (``datasets/_wilds_eval.py``) because ``wilds``'
  group averaging needs ``torch_scatter``.

Inputs are read lazily, per index, when a model asks for them:

- image datasets: uint8 arrays (N, S, S, 3), each image converted to RGB and resized (bilinear)
  to ``image_size`` x ``image_size`` (default: the WILDS resolution, e.g. 96 for camelyon17,
  448 for iwildcam). Global Wheat's boxes stay in original 1024-px coordinates.
- text datasets (civilcomments, amazon): the raw strings, as an object array; tokenising is the
  model's business.
- poverty: the 8-band float32 Landsat/nightlight tiles, channel-last (N, 224, 224, 8).
- py150: the token-id sequences (N, 255) int64; ogb-molpcba: the graph objects (object array).

Targets other than classes (poverty: regression; py150: next-token sequences; ogb-molpcba:
128 binary tasks with NaN; globalwheat: boxes) use ``Split.task``; their ``y_pred`` formats are
those WILDS' ``eval`` takes (see each class). Those datasets and the text ones (civilcomments,
amazon) are ``experimental``: they load and evaluate, but no model plugin or method family consumes
them yet, so ``shiftbench run`` refuses them.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import pandas as pd

from shiftbench.arrays import check_labels, to_numpy
from shiftbench.cache import stable_hash
from shiftbench.dataset import Dataset, Grouper, Split, UnlabelledSplit, fingerprint_arrays
from shiftbench.datasets import _wilds_eval as official
from shiftbench.datasets._options import as_flag
from shiftbench.errors import MissingDataError, ShiftbenchError
from shiftbench.metrics import classification_metrics
from shiftbench.safe_io import safe_extract

#: ask before downloading more than this many bytes (or an archive of unknown size)
CONFIRM_ABOVE_BYTES = 1_000_000_000
#: shiftbench's own metrics added to the official ones for classification datasets
GENERIC_METRICS = ("acc_avg", "balanced_acc", "ece", "nll")


@contextmanager
def _without_version_check() -> Iterator[None]:
    """Hide ``outdated`` while ``wilds`` (and ``ogb``) import: their import starts a PyPI version
    check in a non-daemon thread, which can hang an offline process at exit."""
    saved = sys.modules.get("outdated", None)
    had = "outdated" in sys.modules
    sys.modules["outdated"] = None  # type: ignore[assignment]  # makes `from outdated import ...` fail
    try:
        yield
    finally:
        if had:
            sys.modules["outdated"] = saved
        else:
            del sys.modules["outdated"]


@contextmanager
def _object_strings() -> Iterator[None]:
    """pandas 3 reads text columns as the ``str`` dtype, into which wilds 2.0 writes integers
    (civilcomments' split codes); wilds was written for object columns, so read them that way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pd.option_context("future.infer_string", False):
            yield


def import_wilds() -> Any:
    """The ``wilds`` package, imported without its network version check."""
    if "wilds" not in sys.modules:
        with _without_version_check():
            importlib.import_module("wilds")
            importlib.import_module("wilds.datasets.wilds_dataset")
    return sys.modules["wilds"]


def _resolve(path: str) -> type:
    module, _, attr = path.partition(":")
    import_wilds()
    with _without_version_check():
        return getattr(importlib.import_module(module), attr)


def human_size(n_bytes: int | None) -> str:
    """Size in GB/MB, or ``"size unknown"``."""
    if n_bytes is None:
        return "size unknown"
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


def latest_version(versions: dict[str, Any]) -> str:
    """The highest ``major.minor`` key of a WILDS ``_versions_dict``."""
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


# ---- metadata validation (run when WILDS fails to parse a file, to name the file and the row) ----

def _is_int(v: Any) -> bool:
    try:
        return float(v) == int(float(v))
    except (TypeError, ValueError, OverflowError):
        return False


def _is_float(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _is_datetime(v: Any) -> bool:
    try:
        return not pd.isna(pd.to_datetime(v))
    except (TypeError, ValueError):
        return False


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (_is_int, "an integer"),
    "float": (_is_float, "a number"),
    "str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "datetime": (_is_datetime, "a date-time"),
}


def validate_table(path: Path, columns: dict[str, str], read_options: dict[str, Any] | None = None) -> None:
    """Raise a :class:`ShiftbenchError` naming ``path``, the row and the column of the first value
    that does not have the expected kind (``int``, ``float``, ``str``, ``datetime``)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, **(read_options or {}))
    except Exception as exc:  # a CSV that does not parse at all
        raise ShiftbenchError(f"malformed metadata file {path}: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ShiftbenchError(f"malformed metadata file {path}: missing column(s) {missing}; it has {list(df.columns)}")
    for column, kind in columns.items():
        check, what = _CHECKS[kind]
        for row, value in enumerate(df[column].tolist()):
            if not check(value):
                raise ShiftbenchError(
                    f"malformed metadata file {path}: row {row + 1} (after the header), column {column!r} "
                    f"is {value!r}, expected {what}")


# ---- input loaders by input kind --------------------------------------------------------------

def _image_loader(ds: Any, size: int) -> Callable[[np.ndarray], np.ndarray]:
    from PIL import Image

    def load(indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
        for k, i in enumerate(indices):
            image = ds.get_input(int(i)).convert("RGB")
            out[k] = np.asarray(image.resize((size, size), Image.BILINEAR))
        return out

    return load


def _object_loader(ds: Any, size: int) -> Callable[[np.ndarray], np.ndarray]:
    def load(indices: np.ndarray) -> np.ndarray:
        out = np.empty(len(indices), dtype=object)
        out[:] = [ds.get_input(int(i)) for i in indices]
        return out

    return load


def _tensor_loader(channel_last: bool) -> Callable[[Any, int], Callable[[np.ndarray], np.ndarray]]:
    def make(ds: Any, size: int) -> Callable[[np.ndarray], np.ndarray]:
        def load(indices: np.ndarray) -> np.ndarray:
            arrays = [to_numpy(ds.get_input(int(i))) for i in indices]
            batch = np.stack(arrays) if arrays else np.empty((0,))
            return np.moveaxis(batch, 1, -1) if channel_last and batch.ndim == 4 else batch

        return load

    return make


LOADERS: dict[str, Callable[[Any, int], Callable[[np.ndarray], np.ndarray]]] = {
    "image": _image_loader,
    "text": _object_loader,
    "graph": _object_loader,
    "multispectral": _tensor_loader(channel_last=True),
    "tokens": _tensor_loader(channel_last=False),
}


def _guard_missing_files(load: Callable[[np.ndarray], Any], where: str, command: str) -> Callable[[np.ndarray], Any]:
    def guarded(indices: np.ndarray) -> Any:
        try:
            return load(indices)
        except FileNotFoundError as exc:
            raise MissingDataError(f"an input file of {where}", str(exc.filename or exc), command) from exc

    return guarded


def _global_indices(split_array: Any, split_id: int) -> np.ndarray:
    return np.flatnonzero(np.asarray(split_array) == split_id)


def _y_of(ds: Any, indices: np.ndarray, task: str) -> np.ndarray:
    y = ds.y_array
    if task == "detection":
        out = np.empty(len(indices), dtype=object)
        out[:] = [{"boxes": y[int(i)]["boxes"].numpy()} for i in indices]
        return out
    y = to_numpy(y)[indices]
    return y.reshape(len(indices)) if task == "regression" else y


def _content_hash(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype != object:
            h.update(fingerprint_arrays(p).encode())
        else:
            h.update(pickle.dumps(p if not isinstance(p, np.ndarray) else [repr(v) for v in p]))
    return h.hexdigest()[:16]


class WildsDataset(Dataset):
    """Generic adapter of a WILDS dataset; subclasses only name the dataset and its specifics."""

    abstract = True
    #: WILDS' dataset name (``wilds.get_dataset(dataset=...)``)
    wilds_name: ClassVar[str]
    #: the WILDS class (``module:Class``), for versions and archive sizes without constructing it
    wilds_class: ClassVar[str]
    wilds_unlabeled_class: ClassVar[str | None] = None
    #: "classification", "regression", "multitask", "sequence" or "detection"
    task: ClassVar[str] = "classification"
    #: the official metric of the WILDS benchmark for this dataset
    headline_metric: ClassVar[str] = "acc_avg"
    evaluator: ClassVar[Callable[..., dict[str, float]]] = staticmethod(official.accuracy_by_eval_grouper)
    default_image_size: ClassVar[int] = 224
    #: grouper fields when not WILDS' evaluation grouper's
    group_fields: ClassVar[list[str] | None] = None
    #: modules the WILDS class needs beyond shiftbench's dependencies (module -> pip package)
    requires: ClassVar[dict[str, str]] = {}
    #: metadata files (relative to the data folder) -> column -> kind, checked when WILDS fails to parse them
    metadata_schema: ClassVar[dict[str, dict[str, str]]] = {}
    metadata_read_options: ClassVar[dict[str, dict[str, Any]]] = {}
    #: which of WILDS' ``metadata_fields`` a method may see (the domain attributes; never ``y`` nor a
    #: field derived from it), declared per dataset
    visible_metadata: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "wilds_name" in cls.__dict__:
            cls.name = f"wilds/{cls.wilds_name}"
            cls.download_command = f"shiftbench data download {cls.name}"

    def __init__(self, root_dir: str = "data", split_scheme: str = "official", image_size: int | None = None,
                 version: str | None = None, unlabelled: bool = True):
        super().__init__()
        self.root_dir = Path(root_dir).expanduser()
        self.image_size = int(image_size or self.default_image_size)
        self.check_requirements()
        wilds_cls = _resolve(self.wilds_class)
        self.version = str(version or latest_version(wilds_cls._versions_dict))
        self.data_dir = self._require_data(wilds_cls, self.version)
        self.wilds = self._construct(split_scheme=split_scheme, version=version)
        self.n_classes = int(self.wilds.n_classes or 0) if self.task == "classification" else 0
        self.metadata_fields: list[str] = list(self.wilds.metadata_fields)
        self.metadata_maps: dict[str, list[Any]] = {k: list(v) for k, v in (self.wilds.metadata_map or {}).items()}
        eval_fields = getattr(getattr(self.wilds, "_eval_grouper", None), "groupby_fields", None)
        self.grouper = Grouper(self.group_fields or eval_fields or [])
        #: each split's indices into the WILDS dataset (its examples' ids)
        self.pool_indices: dict[str, np.ndarray] = {}
        self._build_splits()
        if as_flag(unlabelled) and self.wilds_unlabeled_class is not None:
            self._build_unlabelled()

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def check_requirements(cls) -> None:
        """A clear error when the WILDS class needs a package that is not installed."""
        for module, package in cls.requires.items():
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ShiftbenchError(
                    f"{cls.name} needs the {package!r} package, which wilds' {cls.wilds_name} loader imports; "
                    f"install it with: pip install {package}") from exc

    def _require_data(self, wilds_cls: type, version: str) -> Path:
        """The data folder, or a :class:`MissingDataError` naming it, the download command and the size."""
        if version not in wilds_cls._versions_dict:
            raise ShiftbenchError(f"{self.name}: version {version!r} unknown; WILDS has {sorted(wilds_cls._versions_dict)}")
        data_dir = self.root_dir / f"{wilds_cls._dataset_name}_v{version}"
        release = data_dir / f"RELEASE_v{version}.txt"
        if not release.exists():
            size = human_size(wilds_cls._versions_dict[version]["compressed_size"])
            raise MissingDataError(f"WILDS {wilds_cls._dataset_name} v{version}", str(release),
                                   f"{self.download_command} --option root_dir={self.root_dir}", f"{size} compressed")
        return data_dir

    def _construct(self, unlabeled: bool = False, **options: Any) -> Any:
        wilds = import_wilds()
        try:
            with _object_strings():
                return wilds.get_dataset(dataset=self.wilds_name, root_dir=str(self.root_dir), download=False,
                                         unlabeled=unlabeled, **options)
        except Exception as exc:
            data_dir = self.root_dir / f"{self.wilds_name}{'_unlabeled' if unlabeled else ''}_v{self.version}"
            for relative, columns in self.metadata_schema.items():
                if (data_dir / relative).exists():
                    validate_table(data_dir / relative, columns, self.metadata_read_options.get(relative))
            raise ShiftbenchError(f"wilds could not load {self.name} from {data_dir}: {type(exc).__name__}: {exc}. "
                                  f"If the folder is incomplete, fetch it again with {self.download_command}") from exc

    def _metadata_frame(self, ds: Any, indices: np.ndarray) -> pd.DataFrame:
        values = to_numpy(ds.metadata_array)[indices]
        return pd.DataFrame(values, columns=list(ds.metadata_fields))

    def _inputs(self, ds: Any, indices: np.ndarray, where: str) -> Callable[[Any], Any]:
        load = _guard_missing_files(LOADERS[self.input_kind](ds, self.image_size), where, self.download_command)
        return lambda index: load(indices[index])

    def _fingerprint(self, split: str, indices: np.ndarray, *content: Any) -> str:
        return stable_hash({"dataset": self.name, "version": self.version, "scheme": self.options["split_scheme"],
                            "split": split, "image_size": self.image_size, "input_kind": self.input_kind,
                            "content": _content_hash(indices, *content)})

    def _build_splits(self) -> None:
        for split, split_id in self.wilds.split_dict.items():
            indices = _global_indices(self.wilds.split_array, split_id)
            if not len(indices):
                continue
            y = _y_of(self.wilds, indices, self.task)
            metadata = self._metadata_frame(self.wilds, indices)
            self.pool_indices[split] = indices
            self.splits[split] = Split(split, y, metadata, load_inputs=self._inputs(self.wilds, indices, split),
                                       fingerprint=self._fingerprint(split, indices, y, metadata.to_numpy()),
                                       task=self.task)

    def _build_unlabelled(self) -> None:
        wilds_cls = _resolve(self.wilds_unlabeled_class)
        version = latest_version(wilds_cls._versions_dict)
        if not (self.root_dir / f"{wilds_cls._dataset_name}_v{version}" / f"RELEASE_v{version}.txt").exists():
            return
        self.wilds_unlabeled = self._construct(unlabeled=True, split_scheme=self.options["split_scheme"])
        for split, split_id in self.wilds_unlabeled.split_dict.items():
            indices = _global_indices(self.wilds_unlabeled.split_array, split_id)
            if not len(indices):
                continue
            metadata = self._metadata_frame(self.wilds_unlabeled, indices).drop(columns=["y"], errors="ignore")
            fp = self._fingerprint(split, indices, metadata.to_numpy())
            visible = metadata[[c for c in self.visible_metadata if c in metadata.columns]]
            self.unlabelled[split] = UnlabelledSplit(split, len(indices),
                                                     self._inputs(self.wilds_unlabeled, indices, split), visible, fp)

    def example_ids(self, key: str) -> np.ndarray:
        """The examples' indices into the WILDS dataset (all splits index one pool)."""
        self.split(key)
        return self.pool_indices[key]

    # -- evaluation -----------------------------------------------------------------------------

    def _prepare_predictions(self, split: Split, y_pred: Any) -> Any:
        if self.task == "classification":
            return check_labels(y_pred, self.n_classes, "y_pred", n=len(split))
        if self.task == "detection":
            if len(y_pred) != len(split):
                raise ShiftbenchError(f"y_pred has {len(y_pred)} entries but split {split.name!r} has {len(split)} images")
            return list(y_pred)
        y_pred = to_numpy(y_pred, "y_pred")
        if len(y_pred) != len(split):
            raise ShiftbenchError(f"y_pred has {len(y_pred)} rows but split {split.name!r} has {len(split)} examples")
        return y_pred

    def official_metrics(self, split: str | Split, y_pred: Any) -> dict[str, float]:
        """Exactly the dictionary WILDS' ``eval()`` returns for these predictions (same names and values)."""
        s = split if isinstance(split, Split) else self.split(split)
        metadata = s.metadata[self.metadata_fields].to_numpy()
        return type(self).evaluator(self.wilds, s.y, self._prepare_predictions(s, y_pred), metadata)

    def evaluate(self, split: str | Split, y_pred: Any, y_prob: Any = None) -> dict[str, float]:
        """WILDS' official summary metrics (per-group entries, whose keys hold ``field:value``, are left
        to :meth:`official_metrics`: Amazon alone has thousands); for classification also ``acc_avg``,
        ``balanced_acc`` (and ``ece``, ``nll`` given ``y_prob``) where WILDS does not define them."""
        s = split if isinstance(split, Split) else self.split(split)
        out = {k: v for k, v in self.official_metrics(s, y_pred).items() if ":" not in k}
        if self.task == "classification":
            generic = classification_metrics(s.y, y_pred, y_prob, n_classes=self.n_classes)
            out = {**{k: v for k, v in generic.items() if k in GENERIC_METRICS}, **out}
        return out

    def info(self) -> pd.DataFrame:
        """One row per split (labelled and unlabelled): size and number of groups."""
        rows = []
        for key, s in self.splits.items():
            groups, _ = self.grouper.group_ids(s.metadata)
            rows.append({"split": key, "n": len(s), "labelled": True, "groups": len(np.unique(groups))})
        for key, u in self.unlabelled.items():
            groups, _ = self.grouper.group_ids(u.metadata.assign(y=-1))
            rows.append({"split": key, "n": len(u), "labelled": False, "groups": len(np.unique(groups))})
        return pd.DataFrame(rows)

    @classmethod
    def download(cls, root_dir: str = "data", yes: bool = False, unlabeled: bool | str = False) -> Path:
        """Fetch this dataset with the WILDS downloader (asks before a multi-GB download unless ``yes``)."""
        return download(cls.wilds_name, root_dir, yes=yes, unlabeled=as_flag(unlabeled))


# ---- the datasets -------------------------------------------------------------------------------

class Camelyon17(WildsDataset):
    """Camelyon17-WILDS: 96x96 lymph-node patches, tumour or not; hospitals are domains. Official: acc_avg."""

    wilds_name = "camelyon17"
    wilds_class = "wilds.datasets.camelyon17_dataset:Camelyon17Dataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.camelyon17_unlabeled_dataset:Camelyon17UnlabeledDataset"
    input_kind, default_image_size = "image", 96
    visible_metadata = ("hospital", "slide")
    metadata_schema = {"metadata.csv": {"patient": "str", "node": "int", "x_coord": "int", "y_coord": "int",
                                        "tumor": "int", "slide": "int", "center": "int", "split": "int"}}


class Waterbirds(WildsDataset):
    """Waterbirds: land/water birds on land/water backgrounds. Official: adj_acc_avg and acc_wg (4 groups)."""

    wilds_name = "waterbirds"
    wilds_class = "wilds.datasets.waterbirds_dataset:WaterbirdsDataset"
    headline_metric = "acc_wg"
    evaluator = staticmethod(official.waterbirds)
    input_kind = "image"
    visible_metadata = ("background",)
    metadata_schema = {"metadata.csv": {"img_filename": "str", "y": "int", "place": "int", "split": "int"}}


class CelebA(WildsDataset):
    """CelebA (WILDS version): blond hair or not, grouped by male x blond. Official: acc_wg."""

    wilds_name = "celebA"
    wilds_class = "wilds.datasets.celebA_dataset:CelebADataset"
    headline_metric = "acc_wg"
    input_kind = "image"
    visible_metadata = ("male",)
    metadata_schema = {"list_attr_celeba.csv": {"image_id": "str", "Blond_Hair": "int", "Male": "int"},
                       "list_eval_partition.csv": {"partition": "int"}}


class IWildCam(WildsDataset):
    """iWildCam2020-WILDS: camera-trap species; camera locations are domains. Official: F1-macro_all."""

    wilds_name = "iwildcam"
    wilds_class = "wilds.datasets.iwildcam_dataset:IWildCamDataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.iwildcam_unlabeled_dataset:IWildCamUnlabeledDataset"
    headline_metric = "F1-macro_all"
    evaluator = staticmethod(official.iwildcam)
    input_kind, default_image_size = "image", 448
    group_fields = ["location"]
    # not ``sequence``: the images of one camera-trap burst show the same animal
    visible_metadata = ("location", "year", "month")
    metadata_schema = {"metadata.csv": {"split": "str", "filename": "str", "y": "int", "location_remapped": "int",
                                        "sequence_remapped": "int", "datetime": "datetime"}}


class FMoW(WildsDataset):
    """FMoW-WILDS: satellite land use; time (after 2016) and region shift. Official: acc_worst_region."""

    wilds_name = "fmow"
    wilds_class = "wilds.datasets.fmow_dataset:FMoWDataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.fmow_unlabeled_dataset:FMoWUnlabeledDataset"
    headline_metric = "acc_worst_region"
    evaluator = staticmethod(official.fmow)
    input_kind = "image"
    group_fields = ["region"]
    visible_metadata = ("region", "year")
    metadata_schema = {"rgb_metadata.csv": {"split": "str", "timestamp": "datetime", "country_code": "str",
                                            "category": "str"},
                       "country_code_mapping.csv": {"alpha-3": "str", "region": "str"}}


class RxRx1(WildsDataset):
    """RxRx1-WILDS: siRNA perturbation from cell images; experimental batches are domains. Official: acc_avg."""

    wilds_name = "rxrx1"
    wilds_class = "wilds.datasets.rxrx1_dataset:RxRx1Dataset"
    input_kind, default_image_size = "image", 256
    # not ``well``: within an experiment and plate, the well fixes the siRNA (the label)
    visible_metadata = ("cell_type", "experiment", "plate", "site")
    metadata_schema = {"metadata.csv": {"dataset": "str", "experiment": "str", "plate": "int", "well": "str",
                                        "site": "int", "cell_type": "str", "sirna_id": "int"}}


class GlobalWheat(WildsDataset):
    """GlobalWheat-WILDS: wheat-head detection; acquisition sessions are domains. Official: detection_acc_avg_dom.

    ``y`` holds each image's boxes (x1, y1, x2, y2 in original pixels); ``y_pred`` is a list of dicts
    with ``boxes`` (k, 4) and ``scores`` (k,), as WILDS' ``eval`` takes them.
    """

    wilds_name = "globalwheat"
    wilds_class = "wilds.datasets.globalwheat_dataset:GlobalWheatDataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.globalwheat_unlabeled_dataset:GlobalWheatUnlabeledDataset"
    task, headline_metric = "detection", "detection_acc_avg_dom"
    experimental = "a detection task; every model plugin is a classifier"
    evaluator = staticmethod(official.globalwheat)
    input_kind, default_image_size = "image", 1024
    visible_metadata = ("session", "country", "location", "stage")
    metadata_schema = {name: {"image_name": "str", "domain": "int", "BoxesString": "str"}
                       for name in ("official_train.csv", "official_val.csv", "official_test.csv")}


class CivilComments(WildsDataset):
    """CivilComments-WILDS: toxicity of comments; worst group over 8 identities x toxic. Official: acc_wg."""

    wilds_name = "civilcomments"
    wilds_class = "wilds.datasets.civilcomments_dataset:CivilCommentsDataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.civilcomments_unlabeled_dataset:CivilCommentsUnlabeledDataset"
    headline_metric = "acc_wg"
    evaluator = staticmethod(official.civilcomments)
    input_kind = "text"
    experimental = "text inputs; no model plugin takes text"
    group_fields = ["black", "y"]
    # the identities only: the auxiliary fields (severe_toxicity, obscene, insult ...) are toxicity labels
    visible_metadata = ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white",
                        "identity_any")
    metadata_schema = {"all_data_with_identities.csv": {
        "comment_text": "str", "split": "str", "toxicity": "float",
        **{c: "float" for c in ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white",
                                "identity_any", "severe_toxicity", "obscene", "threat", "insult", "identity_attack",
                                "sexual_explicit")}}}


class Amazon(WildsDataset):
    """Amazon-WILDS: review star rating (1-5 as 0-4); reviewers are domains. Official: 10th_percentile_acc."""

    wilds_name = "amazon"
    wilds_class = "wilds.datasets.amazon_dataset:AmazonDataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.amazon_unlabeled_dataset:AmazonUnlabeledDataset"
    headline_metric = "10th_percentile_acc"
    evaluator = staticmethod(official.amazon)
    input_kind = "text"
    experimental = "text inputs; no model plugin takes text"
    visible_metadata = ("user", "product", "category", "year")
    metadata_schema = {"reviews.csv": {"reviewerID": "str", "asin": "str", "category": "str", "reviewYear": "int",
                                       "overall": "int", "unixReviewTime": "int"},
                       "splits/user.csv": {"split": "int"}}


class Poverty(WildsDataset):
    """PovertyMap-WILDS: asset wealth from 8-band satellite tiles; countries are domains. Official: r_wg.

    ``y_pred`` is the predicted wealth index (N,) or (N, 1).
    """

    wilds_name = "poverty"
    wilds_class = "wilds.datasets.poverty_dataset:PovertyMapDataset"
    wilds_unlabeled_class = "wilds.datasets.unlabeled.poverty_unlabeled_dataset:PovertyMapUnlabeledDataset"
    task, headline_metric = "regression", "r_wg"
    evaluator = staticmethod(official.poverty)
    input_kind = "multispectral"
    experimental = "a regression task on multispectral tiles; every model plugin is a classifier of images or tables"
    visible_metadata = ("urban", "country")
    metadata_schema = {"dhs_metadata.csv": {"wealthpooled": "float", "country": "str"}}


class Py150(WildsDataset):
    """Py150-WILDS: next-token code completion; repositories are domains. Official: acc (class and method tokens).

    ``y_pred`` holds predicted token ids (N, 255). Needs ``transformers`` (WILDS loads the CodeGPT tokenizer).
    """

    wilds_name = "py150"
    wilds_class = "wilds.datasets.py150_dataset:Py150Dataset"
    task, headline_metric = "sequence", "acc"
    evaluator = staticmethod(official.py150)
    input_kind = "tokens"
    experimental = "a token-sequence task; every model plugin is a classifier of images or tables"
    group_fields = ["repo"]
    # not ``tok_<i>_type``: the kinds of the target tokens
    visible_metadata = ("repo",)
    requires = {"transformers": "transformers"}


class OGBMolPCBA(WildsDataset):
    """OGB-MolPCBA (WILDS): 128 bioassays per molecule; scaffolds are domains. Official: ap.

    ``y_pred`` holds a score per task (N, 128). Needs ``ogb`` and ``torch_geometric``; the data is
    fetched by OGB itself into ``<root_dir>/ogbg_molpcba``.
    """

    wilds_name = "ogb-molpcba"
    wilds_class = "wilds.datasets.ogbmolpcba_dataset:OGBPCBADataset"
    task, headline_metric = "multitask", "ap"
    evaluator = staticmethod(official.ogb_molpcba)
    input_kind = "graph"
    experimental = "a multi-task problem on molecular graphs; every model plugin is a classifier of images or tables"
    visible_metadata = ("scaffold",)
    requires = {"torch_geometric": "torch_geometric", "ogb": "ogb"}

    def _require_data(self, wilds_cls: type, version: str) -> Path:
        data_dir = self.root_dir / "ogbg_molpcba"
        if not (data_dir / "processed").exists() and not (data_dir / "raw").exists():
            raise MissingDataError("OGB ogbg-molpcba", str(data_dir),
                                   f"{self.download_command} --option root_dir={self.root_dir}", "about 0.1 GB")
        return data_dir

    def _construct(self, unlabeled: bool = False, **options: Any) -> Any:
        return super()._construct(unlabeled=unlabeled, **{**options, "version": None})


# ---- download -----------------------------------------------------------------------------------

def download(name: str, root_dir: str | Path = "data", yes: bool = False, unlabeled: bool = False,
             ask: Callable[[str], str] = input) -> Path:
    """Fetch WILDS dataset ``name`` (``"camelyon17"`` or ``"wilds/camelyon17"``) into ``root_dir`` with
    the WILDS downloader; shows the size and asks first when it exceeds 1 GB or is unknown."""
    short = name.split("/", 1)[1] if name.startswith("wilds/") else name
    adapters = {c.wilds_name: c for c in _adapter_classes()}
    if short not in adapters:
        from shiftbench.errors import UnknownNameError

        raise UnknownNameError("WILDS dataset", short, list(adapters))
    adapter = adapters[short]
    adapter.check_requirements()
    class_path = adapter.wilds_unlabeled_class if unlabeled else adapter.wilds_class
    if class_path is None:
        raise ShiftbenchError(f"WILDS has no unlabelled data for {short}")
    wilds_cls = _resolve(class_path)
    version = latest_version(wilds_cls._versions_dict)
    entry = wilds_cls._versions_dict[version]
    root = Path(root_dir).expanduser()
    data_dir = root / f"{wilds_cls._dataset_name}_v{version}"
    if (data_dir / f"RELEASE_v{version}.txt").exists():
        print(f"{wilds_cls._dataset_name} v{version} is already at {data_dir}")
        return data_dir
    if entry["download_url"] is None and short != "ogb-molpcba":
        raise ShiftbenchError(f"{short} cannot be downloaded automatically; see https://wilds.stanford.edu/downloads")
    size = entry["compressed_size"]
    print(f"{wilds_cls._dataset_name} v{version}: {human_size(size)} compressed, to be extracted into {data_dir}")
    if not yes and (size is None or size > CONFIRM_ABOVE_BYTES):
        try:
            answer = ask("Download it? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise ShiftbenchError(f"download of {short} cancelled (pass --yes to download without asking)")
    wilds = import_wilds()
    refused: list[ShiftbenchError] = []
    try:
        with _object_strings(), _safe_extraction(short, refused):
            wilds.get_dataset(dataset=short, root_dir=str(root), download=True, unlabeled=unlabeled)
    except Exception as exc:
        if not refused:
            raise ShiftbenchError(f"the WILDS downloader failed for {short} into {data_dir}: {exc}") from exc
    if refused:  # wilds prints and swallows its downloader's errors: the refusal is the cause
        raise refused[0]
    if short != "ogb-molpcba" and not (data_dir / f"RELEASE_v{version}.txt").exists():
        raise ShiftbenchError(f"the WILDS downloader did not complete {data_dir} (no RELEASE_v{version}.txt); "
                              f"delete {data_dir / 'archive.tar.gz'} if present and run the command again")
    return data_dir


@contextmanager
def _safe_extraction(short: str, refused: list[ShiftbenchError]) -> Iterator[None]:
    """While the WILDS downloader (and OGB's, for ogb-molpcba) runs, its archives are extracted by
    :func:`safe_extract` instead of an unfiltered ``extractall``; refusals are appended to ``refused``."""

    def extract(archive: str, target: str) -> None:
        try:
            safe_extract(archive, target)
        except ShiftbenchError as exc:
            refused.append(exc)
            raise

    def wilds_extract_archive(from_path: str, to_path: str | None = None, remove_finished: bool = False) -> None:
        extract(from_path, to_path or os.path.dirname(from_path))
        if remove_finished:
            os.remove(from_path)

    def ogb_extract_zip(path: str, folder: str, log: bool = True) -> None:
        extract(path, folder)

    patches = [(importlib.import_module("wilds.datasets.download_utils"), "extract_archive", wilds_extract_archive)]
    if short == "ogb-molpcba":
        with _without_version_check():
            patches.append((importlib.import_module("ogb.graphproppred.dataset_pyg"), "extract_zip", ogb_extract_zip))
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, replacement in patches:
        setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _adapter_classes() -> list[type[WildsDataset]]:
    return [c for c in WildsDataset.__subclasses__() if "wilds_name" in c.__dict__]
