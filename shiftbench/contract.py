"""The method-plugin contract: checks every plugin must pass, run by ``shiftbench check-method NAME``
and by ``tests/test_contract.py`` over every registered method.

The behavioural checks run the plugin through the one lifecycle (:meth:`Method.run`: ``prepare``,
then ``process`` on each batch, checked and collected by the family) on a tiny synthetic task exactly
as the runner would: 3 classes of 6-D Gaussian blobs and a small MLP with BatchNorm, or, for a plugin
that is not applicable to that (its ``not_applicable`` says why: test-time methods that augment
images or shuffle patches), 3 classes of 16x16 RGB 8-bit images and a small CNN with BatchNorm. Each
is trained in a fraction of a second. A plugin applicable to neither skips them, saying why.

- ``interface``: subclass of a family, a ``name``, the family's hooks implemented, no ``__init__`` of
  its own (the declaration builds it) and no override of ``run`` (the lifecycle is the family's);
- ``hyperparameters``: declared in ``hyperparameters`` with :mod:`shiftbench.hyperparameters`
  declarations, every default passes its own check, the ``grid`` (a dict, or a list of dicts crossed
  separately: :mod:`shiftbench.grids`) has declared keys, non-empty value lists and values that pass
  ``cls.check_setting``, and ``get_params()`` gives back the setting an instance was built with;
- ``determinism``: two fresh instances under the same seed give identical outputs;
- ``no_target_labels``: the output does not change when the hidden target labels are permuted
  (and the task handed over has no ``y``);
- ``batch_size_1``: a stream of single-example batches gives finite outputs of the right shape, or
  an explicit :class:`ShiftbenchError` saying why the method cannot (not a crash deep inside);
- ``nan_inputs``: target data containing NaN raises a clear error (one that says NaN / non-finite)
  rather than a crash deep inside or silent NaN results (8-bit images cannot hold NaN, so the image
  task's are float32 pixel values; a plugin that refuses float32 images even without NaN, in a
  ShiftbenchError, cannot be handed NaN and skips the check, saying so);
- ``config_roundtrip``: every grid point survives JSON and OmegaConf (the Hydra config) unchanged
  and rebuilds an instance with the same ``get_params()``.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from shiftbench.cache import ArrayCache, error_line
from shiftbench.dataset import Dataset, Split
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter, Method, ModelAdapter, OutputAdapter, PerformanceEstimator, Task
from shiftbench.grids import grid_points, sub_grids
from shiftbench.hyperparameters import Hyperparameter
from shiftbench.model import SourceModel, image_preprocess, state_fingerprint
from shiftbench.seeding import seed_globals

FAMILIES: dict[str, type] = {"output": OutputAdapter, "tta": ModelAdapter, "domain": DomainAdapter,
                             "estimator": PerformanceEstimator}
N_CLASSES, N_FEATURES = 3, 6
#: side of the image task's square RGB images
IMAGE_SIZE = 16
#: examples streamed one at a time by the batch-size-1 check
N_SINGLE = 24
#: hooks of the API before the one lifecycle, and what replaces each (named when a plugin still has them)
OLD_HOOKS = {
    "adapt": "process(batch), reading batch.probs and batch.feats",
    "setup": "prepare(task), taking task.network()",
    "step": "process(batch), returning the logits of batch.inputs",
    "estimate_accuracy": "process(chunk), reading chunk.probs (and chunk.feats if needed)",
}


class ContractError(ShiftbenchError, AssertionError):
    """A plugin broke the contract; the message says which rule and how."""


class NotApplicable(Exception):
    """A check cannot run on a plugin (e.g. it applies to none of the contract's tasks); the message says why."""


@dataclass
class CheckResult:
    """Outcome of one contract check on one plugin: ``status`` is passed, failed or skipped."""

    check: str
    status: str
    message: str = ""


# --- the synthetic task ----------------------------------------------------------------------------------


class ContractDataset(Dataset):
    """3 Gaussian blobs in 6-D; the target split is shifted (scaled and translated). Variants of the target:
    its labels permuted, its inputs as float32 with NaN in every seventh example, or as float32 alone."""

    name = "contract-synthetic"
    input_kind = "tabular"
    visible_metadata = ("domain",)
    #: where in an example of every seventh target row the NaN variant puts its NaN
    nan_position: tuple[int, ...] = (1,)

    def __init__(self, target_label_permutation_seed: int | None = None, nan_target: bool = False,
                 float_target: bool = False):
        super().__init__()
        self.n_classes = N_CLASSES
        for name, (x, y) in self.examples(np.random.default_rng(0)).items():
            self.splits[name] = Split(name, y, pd.DataFrame({"domain": [name] * len(y)}), x=x)
        test = self.splits["test"]
        if target_label_permutation_seed is not None:
            y = np.random.default_rng(target_label_permutation_seed).permutation(test.y)
            self.splits["test"] = Split("test", y, test.metadata, x=test.x)
        if nan_target or float_target:
            x = test.x.astype(np.float32)
            if nan_target:
                x[(slice(None, None, 7), *self.nan_position)] = np.nan
            self.splits["test"] = Split("test", test.y, test.metadata, x=x,
                                        fingerprint=test.fingerprint + ("-nan" if nan_target else "-float32"))

    @staticmethod
    def examples(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The ``train``, ``id_val`` and ``test`` inputs and labels, drawn from ``rng``."""
        centres = rng.normal(0, 2.0, size=(N_CLASSES, N_FEATURES))

        def blobs(n: int, shift: float = 0.0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
            y = np.arange(n) % N_CLASSES
            x = (centres[y] + rng.normal(0, 1.0, size=(n, N_FEATURES))) * scale + shift
            return x.astype(np.float32), y

        return {name: blobs(n, shift, scale)
                for name, n, shift, scale in (("train", 150, 0.0, 1.0), ("id_val", 60, 0.0, 1.0), ("test", 60, 0.7, 1.3))}


class ContractImageDataset(ContractDataset):
    """3 classes of 16x16 RGB uint8 images (horizontal stripes, vertical stripes, a checkerboard, each with
    its own tint) plus noise; the target split has lower contrast, a brighter background and more noise."""

    name = "contract-images"
    input_kind = "image"
    nan_position = (2, 3, 1)  # row, column, channel

    @staticmethod
    def examples(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        rows, cols = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
        patterns = np.stack([(rows // 2) % 2, (cols // 2) % 2, (rows // 4 + cols // 4) % 2]).astype(np.float64)
        tints = np.array([[1.0, 0.6, 0.6], [0.6, 1.0, 0.6], [0.6, 0.6, 1.0]])

        def images(n: int, contrast: float, background: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
            y = np.arange(n) % N_CLASSES
            pixels = background + contrast * patterns[y][..., None] * tints[y][:, None, None, :]
            pixels += rng.normal(0, noise, size=pixels.shape)
            return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8), y

        return {name: images(n, *look) for name, n, look in (("train", 150, (0.7, 0.15, 0.08)),
                                                             ("id_val", 60, (0.7, 0.15, 0.08)),
                                                             ("test", 24, (0.25, 0.45, 0.25)))}


#: the contract's datasets, in the order a plugin is tried on them
CONTRACT_DATASETS: tuple[type[ContractDataset], ...] = (ContractDataset, ContractImageDataset)


class ContractModel(SourceModel):
    """The contract's source model; its outputs are not validated, so NaN inputs reach the plugin."""

    def outputs(self, split: Any, cache: ArrayCache, batch_size: int = 512) -> dict[str, np.ndarray]:
        return self.forward_arrays(np.asarray(split.inputs()), batch_size)


def _network(input_kind: str) -> nn.Sequential:
    """The untrained source network (backbone, head) for the contract task of ``input_kind``."""
    if input_kind == "image":
        backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                 nn.Flatten())
        return nn.Sequential(backbone, nn.Linear(32, N_CLASSES))
    return nn.Sequential(nn.Sequential(nn.Linear(N_FEATURES, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Linear(16, N_CLASSES))


def _preprocess(input_kind: str) -> Callable[[Any], torch.Tensor]:
    """Raw inputs of the contract task of ``input_kind`` -> network inputs."""
    if input_kind == "image":
        return image_preprocess(IMAGE_SIZE, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    return lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)


@lru_cache(maxsize=len(CONTRACT_DATASETS))
def _trained_weights(input_kind: str) -> dict[str, torch.Tensor]:
    data = next(d for d in CONTRACT_DATASETS if d.input_kind == input_kind)()
    torch.manual_seed(0)
    net = _network(input_kind)
    x = _preprocess(input_kind)(data.splits["train"].x)
    y = torch.as_tensor(data.splits["train"].y)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def contract_model(input_kind: str = "tabular") -> ContractModel:
    """A fresh copy of the small trained network of the contract task of ``input_kind``: for ``tabular`` an
    MLP (backbone Linear-BN-ReLU, linear head), for ``image`` a CNN (two Conv-BN-ReLU blocks, linear head)."""
    net = _network(input_kind)
    net.load_state_dict(_trained_weights(input_kind))
    return ContractModel(f"contract_{'cnn' if input_kind == 'image' else 'mlp'}", net[0], net[1],
                         _preprocess(input_kind), state_fingerprint(net))


def contract_task(dataset: ContractDataset, cache_dir: Path, batch_size: int = 20, n_target: int | None = None,
                  seed: int = 0) -> tuple[Task, ContractModel]:
    """The label-free task a method receives for the dataset's ``test`` split, as the runner builds it, with
    the contract's model for the dataset's kind of inputs."""
    split = dataset.splits["test"]
    if n_target is not None:
        split = split.subset(np.arange(n_target), tag=f"first{n_target}")
    order = np.random.default_rng(seed).permutation(len(split))
    batches = [order[i:i + batch_size] for i in range(0, len(split), batch_size)]
    model = contract_model(dataset.input_kind)
    task = Task(dataset.n_classes, dataset.label_free(split), batches, seed, model, ArrayCache(cache_dir),
                {k: dataset.splits[k] for k in ("train", "id_val")})
    return task, model


def run_method(cls: type, hparams: dict[str, Any], task: Task) -> Any:
    """Build a plugin and run its lifecycle on the task under the cell's seed, as the runner does."""
    method = cls(**hparams)
    seed_globals(task.seed)
    return method.run(task)


# --- the checks --------------------------------------------------------------------------------------------


def first_point(cls: type) -> dict[str, Any]:
    """The first setting of the plugin's grid, the one the behavioural checks run."""
    return grid_points(cls)[0]


def contract_dataset_for(cls: type) -> type[ContractDataset]:
    """The first of the contract's datasets that the plugin (at its first grid point) is applicable to; a
    :class:`NotApplicable` giving its reason for each when it is applicable to none."""
    method = cls(**first_point(cls))
    reasons = []
    for dataset in CONTRACT_DATASETS:
        model = contract_model(dataset.input_kind)
        reason = method.not_applicable(model, dataset().facts())
        if not reason:
            return dataset
        reasons.append(f"{dataset.input_kind} task ({model.name}): {reason}")
    raise NotApplicable(f"not applicable to any of the contract's tasks; {'; '.join(reasons)}")


def check_interface(cls: type, cache_dir: Path) -> None:
    """Family subclass, a name, the family's hooks implemented; no own ``__init__``, no override of ``run``."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ContractError(f"{cls!r} is not a subclass of shiftbench.families.Method")
    family = next((f for f, base in FAMILIES.items() if issubclass(cls, base)), None)
    if family is None:
        raise ContractError(f"{cls.__qualname__} subclasses none of the families {', '.join(f'{k} ({v.__name__})' for k, v in FAMILIES.items())}")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name.replace("_", "").replace("-", "").isalnum():
        raise ContractError(f"{cls.__qualname__} needs a class attribute `name` (letters, digits, _ or -)")
    if cls.__init__ is not Method.__init__:
        raise ContractError(f"{_defined_in(cls, '__init__')} defines __init__; remove it and declare the hyperparameters "
                            "instead (hyperparameters = {\"lr\": Float(1e-3, above=0)}, shiftbench.hyperparameters), "
                            "building fitted helpers in prepare or fit")
    if cls.run is not Method.run:
        raise ContractError(f"{_defined_in(cls, 'run')} overrides run, the lifecycle every method shares; remove it and "
                            f"put the work in prepare(task) (once per cell) and process(batch) (each batch) of the "
                            f"{family} family")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        old = [f"{hook} -> {new}" for hook, new in OLD_HOOKS.items() if hasattr(cls, hook)]
        raise ContractError(f"{cls.__qualname__} does not implement {', '.join(missing)} of the {family} family"
                            + (f"; it has hooks of the old API, replace them: {'; '.join(old)}" if old else
                               " (see the table in shiftbench.families)"))


@contextmanager
def _breach(context: str = "") -> Iterator[None]:
    """A ShiftbenchError raised inside becomes a broken rule: a ContractError, ``context`` before its message."""
    try:
        yield
    except ShiftbenchError as exc:
        raise ContractError(f"{context}{exc}") from exc


def _defined_in(cls: type, attribute: str) -> str:
    """The qualified name of the class in ``cls``'s MRO that defines ``attribute``."""
    return next(k.__qualname__ for k in cls.__mro__ if attribute in vars(k))


def check_hyperparameters(cls: type, cache_dir: Path) -> None:
    """Declared hyperparameters with valid defaults; grid keys declared, grid values valid; get_params round-trips."""
    declared = cls.declared()
    bad = {k: h for k, h in declared.items() if not (isinstance(k, str) and k.isidentifier() and isinstance(h, Hyperparameter))}
    if bad:
        raise ContractError(f"hyperparameters {bad} of {cls.name!r} are not declared with shiftbench.hyperparameters "
                            "(name -> Float, Int, Bool, Choice, e.g. {\"lr\": Float(1e-3, above=0)})")
    for key, hyperparameter in declared.items():
        with _breach(f"the declared default of {key!r} fails its own declaration: "):
            hyperparameter.check(hyperparameter.default, key, cls.name)
    with _breach(f"the declared defaults of {cls.name!r} are rejected together (check_together): "):
        cls.check_setting({})
    with _breach():
        subs = sub_grids(cls.grid, f"`grid` of {cls.name!r}")
    for sub in subs:
        for key, values in sub.items():
            if not isinstance(values, list) or not values:
                raise ContractError(f"grid[{key!r}] of {cls.name!r} must be a non-empty list; got {values!r}")
    with _breach():
        points = grid_points(cls)
    for point in points:
        params = cls(**point).get_params()
        expected = cls.check_setting(point)
        if set(params) != set(expected) or not all(_same_value(params[k], v) for k, v in expected.items()):
            raise ContractError(f"{cls.name!r} built with {point} reports get_params() = {params}, expected {expected} "
                                "(every declared hyperparameter, as given or its default)")
        rebuilt = cls(**params).get_params()
        if not all(_same_value(rebuilt.get(k), v) for k, v in params.items()):
            raise ContractError(f"{cls.name!r} rebuilt from its get_params() {params} reports {rebuilt}")


def check_determinism(cls: type, cache_dir: Path) -> None:
    """Two fresh instances under the same seed give identical outputs."""
    task, _ = contract_task(contract_dataset_for(cls)(), cache_dir)
    first, second = (run_method(cls, first_point(cls), task) for _ in range(2))
    if not _same_output(first, second):
        raise ContractError(f"{cls.name!r} gave different outputs in two runs under seed {task.seed}; draw every random "
                            "number from self.random_state (set by run from the cell's seed) or task.rng(purpose)")


def check_no_target_labels(cls: type, cache_dir: Path) -> None:
    """The task has no target ``y``, and permuting the hidden target labels leaves the output unchanged."""
    dataset = contract_dataset_for(cls)
    task, _ = contract_task(dataset(), cache_dir)
    if hasattr(task.target, "y") or {"y", "label"} & set(task.target.metadata.columns):
        raise ContractError("the task handed to methods exposes target labels")  # a harness bug, not the plugin's
    permuted, _ = contract_task(dataset(target_label_permutation_seed=1), cache_dir)
    ours, other = run_method(cls, first_point(cls), task), run_method(cls, first_point(cls), permuted)
    if not _same_output(ours, other):
        raise ContractError(f"{cls.name!r} changes its output when only the target labels change: it reads target labels")


def check_batch_size_1(cls: type, cache_dir: Path) -> None:
    """Single-example batches give finite outputs of the right shape (or a ShiftbenchError explaining why not)."""
    task, _ = contract_task(contract_dataset_for(cls)(), cache_dir, batch_size=1, n_target=N_SINGLE)
    try:
        output = run_method(cls, first_point(cls), task)
    except ShiftbenchError:
        return  # an explicit, explained refusal (e.g. "needs batches of at least 2") is allowed
    values = output["estimate"].to_numpy() if isinstance(output, pd.DataFrame) else np.asarray(output)
    expected = (len(task.batches),) if isinstance(output, pd.DataFrame) else (N_SINGLE, N_CLASSES)
    if values.shape != expected or not np.all(np.isfinite(values)):
        raise ContractError(f"{cls.name!r} on batches of one example returned shape {values.shape} "
                            f"(expected {expected}) with {int((~np.isfinite(values)).sum())} non-finite values")


def check_nan_inputs(cls: type, cache_dir: Path) -> None:
    """Target data with NaN raises an error that says so (not silent NaN output, not an obscure crash)."""
    dataset = contract_dataset_for(cls)
    task, _ = contract_task(dataset(nan_target=True), cache_dir)
    try:
        run_method(cls, first_point(cls), task)
    except Exception as exc:  # noqa: BLE001 - any exception is inspected below
        text = str(exc).lower()
        if isinstance(exc, (ShiftbenchError, ValueError)) and any(w in text for w in ("nan", "finite", "infinit")):
            return
        if isinstance(exc, ShiftbenchError) and dataset.input_kind == "image":
            _skip_if_float_images_refused(cls, dataset, cache_dir)
        raise ContractError(f"{cls.name!r} on target data containing NaN raised {type(exc).__name__}: {exc}; expected a "
                            "clear error naming the NaN (validate inputs with shiftbench.arrays.check_matrix)") from exc
    raise ContractError(f"{cls.name!r} accepted target data containing NaN without an error")


def _skip_if_float_images_refused(cls: type, dataset: type[ContractDataset], cache_dir: Path) -> None:
    """Raise :class:`NotApplicable` if the plugin refuses the NaN-free float32 copy of the target images too
    (a ShiftbenchError: e.g. it takes 8-bit images only, which cannot hold NaN); return if it runs on them or
    crashes (the NaN run's error is then the one to report)."""
    task, _ = contract_task(dataset(float_target=True), cache_dir)
    try:
        run_method(cls, first_point(cls), task)
    except ShiftbenchError as exc:
        raise NotApplicable(f"{cls.name!r} refuses float32 target images even without NaN ({error_line(exc)}), and "
                            "8-bit images cannot hold NaN, so no NaN can reach it") from exc
    except Exception:  # noqa: BLE001 - not a refusal of the format
        return


def check_config_roundtrip(cls: type, cache_dir: Path) -> None:
    """Every grid point survives JSON and OmegaConf unchanged and rebuilds the same hyperparameters."""
    from omegaconf import OmegaConf

    for point in grid_points(cls):
        try:
            via_json = json.loads(json.dumps(point))
        except TypeError as exc:
            raise ContractError(f"grid point {point!r} of {cls.name!r} is not JSON-serialisable ({exc}); use numbers, "
                                "strings, booleans, None or lists of them") from exc
        via_config = OmegaConf.to_container(OmegaConf.create({"grid": {cls.name: via_json}}), resolve=True)["grid"][cls.name]
        for label, restored in (("JSON", via_json), ("the Hydra config", via_config)):
            if not _same_value(restored, point):
                raise ContractError(f"grid point {point!r} of {cls.name!r} comes back from {label} as {restored!r}")
            params = cls(**restored).get_params()
            if not all(_same_value(params[k], v) for k, v in point.items()):
                raise ContractError(f"{cls.name!r} rebuilt from {label} has hyperparameters {params}, expected {point}")


CHECKS: dict[str, Callable[[type, Path], None]] = {
    "interface": check_interface,
    "hyperparameters": check_hyperparameters,
    "determinism": check_determinism,
    "no_target_labels": check_no_target_labels,
    "batch_size_1": check_batch_size_1,
    "nan_inputs": check_nan_inputs,
    "config_roundtrip": check_config_roundtrip,
}


def run_check(cls: type, check: str, cache_dir: Path) -> CheckResult:
    """Run one named check on a plugin class and report passed / failed / skipped (not applicable, and why); a
    plugin that crashes anywhere (its ``__init__`` included) fails the check, never the whole run."""
    try:
        CHECKS[check](cls, Path(cache_dir))
    except NotApplicable as exc:
        return CheckResult(check, "skipped", str(exc))
    except ContractError as exc:
        return CheckResult(check, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash is a failed check, reported in one line
        rule = (CHECKS[check].__doc__ or "").strip().splitlines()[0]
        return CheckResult(check, "failed", f"{crash_summary(exc, cls)}\n(rule: {rule})")
    return CheckResult(check, "passed")


def crash_summary(exc: BaseException, cls: type) -> str:
    """One line for a plugin's crash: the exception's first line and where it was raised (the innermost
    frame in the plugin's own files, else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    plugin_files = {getattr(sys.modules.get(c.__module__), "__file__", None) for c in cls.__mro__}
    where = next((f for f in reversed(frames) if f.filename in plugin_files), frames[-1] if frames else None)
    location = f" (at {where.filename}:{where.lineno}, in {where.name})" if where else ""
    return f"crashed with {error_line(exc)}{location}"


def check_method(cls: type, checks: list[str] | None = None) -> list[CheckResult]:
    """Every contract check (or those named) on a plugin class; the checks share one temporary cache, so
    whatever a plugin caches (e.g. a trained adapter) is paid once."""
    unknown = sorted(set(checks or []) - set(CHECKS))
    if unknown:
        raise ShiftbenchError(f"unknown contract checks {unknown}; valid: {', '.join(CHECKS)}")
    with tempfile.TemporaryDirectory(prefix="shiftbench-contract-") as tmp:
        return [run_check(cls, name, Path(tmp)) for name in (checks or list(CHECKS))]


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                             and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _same_output(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.shape == b.shape and np.allclose(
            a.select_dtypes("number").to_numpy(float), b.select_dtypes("number").to_numpy(float), rtol=0, atol=1e-9,
            equal_nan=True)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)
