"""The dataset contract: checks every built dataset must pass, run by ``shiftbench check-dataset NAME``
and by ``tests/test_dataset_contract.py`` over every registered dataset (offline or on its fixture).

- ``train_split``: a ``train`` split exists (skipped for ``target_only`` datasets, e.g. CIFAR-10-C);
- ``split_sizes``: every split holds at least one example;
- ``disjoint_splits``: within each pool of splits (:meth:`Dataset.disjoint_pools`), no example is in
  two splits. Examples are identified by :meth:`Dataset.example_ids`: a declared id column
  (MetaShift's image id, nycflights' table row), WILDS' index into its dataset, or else the bytes
  of the example's input, which works for every adapter (MNIST and sklearn digits share no image);
- ``visible_columns_hide_y``: on every labelled split, no column of the label-free view determines
  ``y``: the column is not a function of it where that would mean something (every value with at least
  ``MIN_PER_VALUE`` examples has one class, and such values hold at least half of the split);
- ``not_class_sorted``: no split is ordered by class, i.e. grouped into one block per class (in any class
  order), unless a random order would do that with a chance above ``CHANCE`` (tiny splits);
- ``distinct_fingerprints``: no two splits share a fingerprint (caches would mix them up);
- ``perfect_predictions``: ``evaluate`` on the true labels (one-hot probabilities) gives perfect
  scores: every accuracy / F1 / recall metric 1, ECE and NLL 0.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Callable

import numpy as np

from shiftbench.contract import CheckResult
from shiftbench.dataset import Dataset, Split
from shiftbench.errors import ShiftbenchError

#: a visible value is evidence about ``y`` only if this many examples carry it
MIN_PER_VALUE = 10
#: a split grouped by class fails only if a random order would group it with at most this chance
CHANCE = 1e-6
#: metric name parts whose perfect value is 1 (higher is better) and 0 (errors)
PERFECT_ONE = ("acc", "f1", "recall", "precision")
PERFECT_ZERO = ("ece", "nll")


class DatasetContractError(ShiftbenchError, AssertionError):
    """A dataset broke the contract; the message says which rule, where and how."""


class CheckSkipped(Exception):
    """A check that does not apply to this dataset; the message says why."""


def _classification_splits(dataset: Dataset) -> dict[str, Split]:
    """The non-empty splits with class labels (``split_sizes`` reports empty ones)."""
    return {k: s for k, s in ((k, dataset.split(k)) for k in dataset.splits) if s.task == "classification" and len(s)}


def check_train_split(dataset: Dataset) -> None:
    """A ``train`` split (labelled source) exists."""
    if dataset.target_only:
        raise CheckSkipped("a target-only dataset (for pretrained models) has no train split")
    if "train" not in dataset.splits:
        raise DatasetContractError(f"no 'train' split; the dataset has {', '.join(dataset.splits) or 'no splits'}")


def check_split_sizes(dataset: Dataset) -> None:
    """Every split holds at least one example."""
    if not len(dataset.splits):
        raise DatasetContractError("the dataset has no splits")
    empty = [k for k in dataset.splits if len(dataset.split(k)) == 0]
    if empty:
        raise DatasetContractError(f"empty splits: {', '.join(empty)}")


def check_disjoint_splits(dataset: Dataset) -> None:
    """No example is in two splits of one pool (ids from :meth:`Dataset.example_ids`)."""
    pools = dataset.disjoint_pools()
    if not pools:
        raise CheckSkipped("every split holds the same examples (under another corruption); no pool to check")
    for pool in pools:
        ids = {k: set(dataset.example_ids(k).tolist()) for k in pool}
        for a, b in combinations(pool, 2):
            shared = ids[a] & ids[b]
            if shared:
                raise DatasetContractError(f"splits {a!r} and {b!r} share {len(shared)} examples, e.g. id "
                                           f"{sorted(map(str, shared))[0]}; draw them without replacement from one pool")


def determining_column(split: Split, visible: list[str]) -> str | None:
    """The first of the ``visible`` metadata columns whose value determines ``split.y``, or ``None``."""
    labels, y = np.unique(np.asarray(split.y), return_inverse=True)
    if len(labels) < 2:
        return None
    for column in visible:
        names, codes = np.unique(split.metadata[column].astype(str).to_numpy(), return_inverse=True)
        counts = np.bincount(codes, minlength=len(names))
        pairs = np.unique(codes.astype(np.int64) * len(labels) + y)
        classes = np.bincount(pairs // len(labels), minlength=len(names))  # distinct classes per value
        meaningful = counts >= MIN_PER_VALUE
        if meaningful.any() and (classes[meaningful] == 1).all() and counts[meaningful].sum() * 2 >= len(y):
            return column
    return None


def check_visible_columns_hide_y(dataset: Dataset) -> None:
    """No column a method sees (the label-free view) determines ``y`` on any labelled split."""
    for key, split in _classification_splits(dataset).items():
        visible = list(dataset.label_free(split).metadata.columns)
        column = determining_column(split, visible)
        if column is not None:
            raise DatasetContractError(f"split {key!r}: the visible metadata column {column!r} determines y (each of "
                                       f"its values with {MIN_PER_VALUE}+ examples has one class); remove it from "
                                       f"{type(dataset).__name__}.visible_metadata")


def grouped_by_class(y: np.ndarray) -> bool:
    """Whether ``y`` is one block per class (sorted by class, in any class order) and would be so
    by chance with probability at most ``CHANCE`` under a random order."""
    y = np.asarray(y)
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2:
        return False
    runs = 1 + int(np.count_nonzero(y[1:] != y[:-1]))
    if runs != len(counts):
        return False
    # P(random order is grouped) = K! * prod(n_c!) / n!
    log_chance = math.lgamma(len(counts) + 1) + sum(math.lgamma(c + 1) for c in counts) - math.lgamma(len(y) + 1)
    return log_chance <= math.log(CHANCE)


def check_not_class_sorted(dataset: Dataset) -> None:
    """No split is handed over ordered by class (only a scenario's stream may sort, and says so)."""
    sorted_splits = [k for k, s in _classification_splits(dataset).items() if grouped_by_class(s.y)]
    if sorted_splits:
        raise DatasetContractError(f"splits ordered by class: {', '.join(sorted_splits)}; order examples by id or "
                                   f"a seeded shuffle (class-sorted streams are a scenario: order: class_sorted)")


def check_distinct_fingerprints(dataset: Dataset) -> None:
    """No two splits share a fingerprint."""
    seen: dict[str, str] = {}
    for key in dataset.splits:
        fp = dataset.split(key).fingerprint
        if fp in seen:
            raise DatasetContractError(f"splits {seen[fp]!r} and {key!r} have the same fingerprint {fp}; "
                                       f"caches keyed on it would mix them up")
        seen[fp] = key


def imperfect_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics of perfect predictions that are not perfect (accuracy-like not 1, errors not 0)."""
    bad = {}
    for name, value in metrics.items():
        lower = name.lower()
        if any(p in lower for p in PERFECT_ZERO):
            target = 0.0
        elif any(p in lower for p in PERFECT_ONE):
            target = 1.0
        else:
            continue
        if not (np.isfinite(value) and abs(value - target) <= 1e-6):
            bad[name] = value
    return bad


def check_perfect_predictions(dataset: Dataset) -> None:
    """``evaluate`` on the true labels and one-hot probabilities gives perfect scores on every split."""
    splits = _classification_splits(dataset)
    if not splits:
        raise CheckSkipped("no classification split (perfect predictions of other targets are not checked)")
    for key, split in splits.items():
        y = np.asarray(split.y)
        probs = np.eye(dataset.n_classes)[y]
        bad = imperfect_metrics(dataset.evaluate(split, y.copy(), probs))
        if bad:
            raise DatasetContractError(f"split {key!r}: evaluate on perfect predictions gives {bad}")


CHECKS: dict[str, Callable[[Dataset], None]] = {
    "train_split": check_train_split,
    "split_sizes": check_split_sizes,
    "disjoint_splits": check_disjoint_splits,
    "visible_columns_hide_y": check_visible_columns_hide_y,
    "not_class_sorted": check_not_class_sorted,
    "distinct_fingerprints": check_distinct_fingerprints,
    "perfect_predictions": check_perfect_predictions,
}


def run_check(dataset: Dataset, check: str) -> CheckResult:
    """Run one named check on a built dataset: passed, failed (with the reason) or skipped."""
    try:
        CHECKS[check](dataset)
    except CheckSkipped as exc:
        return CheckResult(check, "skipped", str(exc))
    except DatasetContractError as exc:
        return CheckResult(check, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - a crash is a failed check, with what crashed
        return CheckResult(check, "failed", f"crashed with {type(exc).__name__}: {exc}")
    return CheckResult(check, "passed")


def check_dataset(dataset: Dataset, checks: list[str] | None = None) -> list[CheckResult]:
    """Every dataset-contract check (or those named) on a built dataset."""
    unknown = sorted(set(checks or []) - set(CHECKS))
    if unknown:
        raise ShiftbenchError(f"unknown dataset checks {unknown}; valid: {', '.join(CHECKS)}")
    return [run_check(dataset, c) for c in (checks or CHECKS)]
