"""The dataset contract over every registered dataset (offline or on its fixture), one planted flaw per
check showing that check fails, and the label boundary: the allow-list view, MetaShift's target view."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from shiftbench.cli import main
from shiftbench.contract import ContractDataset
from shiftbench.dataset import Dataset, Split
from shiftbench.dataset_contract import CHECKS, check_dataset, determining_column, grouped_by_class
from shiftbench.datasets import load, registry
from shiftbench.datasets import metashift as ms
from shiftbench.errors import ShiftbenchError

sys.path.insert(0, str(Path(__file__).parent))
import metashift_fixtures  # noqa: E402
import wilds_fixtures  # noqa: E402
from test_corruption_datasets import make_cifar_c, make_imagenet_c  # noqa: E402

SMALL_DIGITS = {"n_train": 600, "n_val": 200, "n_test": 200}
SMALL_INDOOR = {"num_minority": 2, "minority_size": 10, "majority_size": 20, "test_size": 4}


def _metashift(root: Path, **options: Any) -> dict[str, Any]:
    metashift_fixtures.build(root)
    return {"root_dir": str(root), "image_size": 8, **options}


def _wilds(name: str) -> Callable[[Path], dict[str, Any]]:
    def build(root: Path) -> dict[str, Any]:
        wilds_fixtures.BUILDERS[name](root)
        return {"root_dir": str(root)}
    return build


def _cifar(folder: str) -> Callable[[Path], dict[str, Any]]:
    def build(root: Path) -> dict[str, Any]:
        make_cifar_c(root, folder=folder)
        return {"root_dir": str(root)}
    return build


def _imagenet(root: Path) -> dict[str, Any]:
    make_imagenet_c(root)
    return {"root_dir": str(root)}


#: how each registered dataset is built offline: options (from a fixture under the given folder)
BUILDS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "census_employment": lambda root: {},
    "digits": lambda root: SMALL_DIGITS,
    "digits_lt": lambda root: SMALL_DIGITS,
    "biased_sampling": lambda root: {"source": "wine"},
    "skada_shift": lambda root: {},
    "nycflights": lambda root: {"max_per_month": 300},
    "nycflights_airports": lambda root: {"max_per_airport": 600},
    "corrupted": lambda root: {"corruptions": ["contrast", "saturate"], "severities": [1], "cache_dir": str(root),
                               "base_options": SMALL_DIGITS},
    "cifar10-c": _cifar("CIFAR-10-C"),
    "cifar100-c": _cifar("CIFAR-100-C"),
    "imagenet-c": _imagenet,
    "tiny-imagenet-c": _imagenet,
    **{name: (lambda root: _metashift(root)) for name in ("metashift/catdog-d0.44", "metashift/catdog-d0.71",
                                                           "metashift/catdog-d1.12", "metashift/catdog-d1.43")},
    "metashift/catdog-indoor-outdoor": lambda root: _metashift(root, **SMALL_INDOOR),
    "metashift/contexts": lambda root: _metashift(root, min_size=3),
    **{f"wilds/{name}": _wilds(name) for name in wilds_fixtures.BUILDERS},
}
#: registered datasets that need a download and have no fixture, with the reason they are skipped
NO_FIXTURE = {name: f"{name} needs its download and has no fixture in tests/wilds_fixtures.py"
              for name in ("wilds/celebA", "wilds/rxrx1", "wilds/py150", "wilds/ogb-molpcba")}


@pytest.mark.parametrize("name", sorted(registry.scan_all()))
def test_every_registered_dataset_passes_the_contract(name, tmp_path):
    if name in NO_FIXTURE:
        pytest.skip(NO_FIXTURE[name])
    assert name in BUILDS, f"dataset {name!r} has no offline build here: add a fixture to BUILDS or a reason to NO_FIXTURE"
    dataset = load(name, **BUILDS[name](tmp_path))
    results = check_dataset(dataset)
    assert [r.check for r in results] == list(CHECKS)
    failed = {r.check: r.message for r in results if r.status == "failed"}
    assert not failed, failed


# ---- planted flaws: a tiny dataset with exactly one flaw fails exactly that check ------------------

class Toy(Dataset):
    """Two classes, 2-D inputs, train / id_val / test from one pool; each option plants one flaw."""

    name = "toy"
    input_kind = "tabular"
    visible_metadata = ("domain",)

    def __init__(self, flaw: str | None = None):
        super().__init__()
        rng = np.random.default_rng(0)
        n = 120
        y = rng.permutation(np.arange(n) % 2)
        x = (rng.normal(size=(n, 2)) + y[:, None]).astype(np.float32)
        meta = pd.DataFrame({"domain": np.where(np.arange(n) < 80, "source", "target"), "leak": y, "y": y})
        parts = {"train": np.arange(0, 60), "id_val": np.arange(60, 80), "test": np.arange(80, n)}
        if flaw == "overlap":
            parts["test"] = np.arange(50, n)
        if flaw == "class_sorted":
            parts["test"] = parts["test"][np.argsort(y[parts["test"]], kind="stable")]
        if flaw == "no_train":
            del parts["train"]
        if flaw == "empty":
            parts["id_val"] = np.arange(0)
        if flaw == "visible_label":
            self.visible_metadata = ("domain", "leak")
        self.n_classes = 2
        for key, idx in parts.items():
            fp = "same" if flaw == "same_fingerprint" else ""
            self.splits[key] = Split(key, y[idx], meta.iloc[idx], x=x[idx], fingerprint=fp)

    def evaluate(self, split: str | Split, y_pred: Any, y_prob: Any = None) -> dict[str, float]:
        metrics = super().evaluate(split, y_pred, y_prob)
        return {**metrics, "acc_wg": 0.5} if self.options["flaw"] == "wrong_evaluate" else metrics


def _failed(dataset: Dataset) -> list[str]:
    return [r.check for r in check_dataset(dataset) if r.status == "failed"]


def test_the_flawless_toy_passes_every_check():
    assert _failed(Toy()) == []


@pytest.mark.parametrize("flaw, check", [
    ("visible_label", "visible_columns_hide_y"),
    ("class_sorted", "not_class_sorted"),
    ("overlap", "disjoint_splits"),
    ("same_fingerprint", "distinct_fingerprints"),
    ("wrong_evaluate", "perfect_predictions"),
    ("no_train", "train_split"),
    ("empty", "split_sizes"),
])
def test_a_planted_flaw_fails_its_check(flaw, check):
    assert _failed(Toy(flaw)) == [check]


def test_class_order_is_judged_only_where_chance_cannot_explain_it():
    assert grouped_by_class(np.repeat([1, 0, 2], 8))  # sorted by class, in any class order
    assert not grouped_by_class(np.array([0, 0, 1, 1]))  # a random order does this a third of the time
    assert not grouped_by_class(np.tile([0, 1], 20)) and not grouped_by_class(np.zeros(50, dtype=int))


def test_check_dataset_command_exits_1_on_a_failed_check(capsys, monkeypatch):
    flawed = type("FlawedToy", (Toy,), {"name": "toy-flawed", "__init__": lambda self: Toy.__init__(self, "overlap")})
    with registry.temporarily(flawed):
        assert main(["check-dataset", "toy-flawed"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  disjoint_splits" in out and "PASS  not_class_sorted" in out


def test_check_dataset_options_are_yaml_scalars(capsys):
    assert main(["check-dataset", "digits", "-o", "n_train=600", "-o", "n_val=200", "-o", "n_test=200",
                 "--check", "split_sizes"]) == 0
    assert "PASS  split_sizes" in capsys.readouterr().out
    assert main(["check-dataset", "digits", "-o", "n_train"]) != 0
    assert "'n_train' is not KEY=VALUE" in capsys.readouterr().err


# ---- the label boundary ---------------------------------------------------------------------------

def test_the_label_free_view_is_an_allow_list():
    split = Toy().split("test")
    assert list(split.unlabelled().metadata.columns) == []
    assert list(Toy().label_free(split).metadata.columns) == ["domain"]
    with pytest.raises(ShiftbenchError, match="label columns"):
        split.unlabelled(["domain", "y"])


@pytest.mark.parametrize("name, options", [
    ("metashift/catdog-d0.44", {"test_cats": "true"}),
    ("metashift/catdog-indoor-outdoor", SMALL_INDOOR),
    ("metashift/contexts", {"min_size": 3}),
])
def test_metashift_target_view_hides_the_class_and_its_order(tmp_path, name, options):
    dataset = load(name, **_metashift(tmp_path, **options))
    for key in dataset.splits:
        split = dataset.split(key)
        view = dataset.label_free(split)
        assert not {"y", "class"} & set(view.metadata.columns)
        assert determining_column(split, list(view.metadata.columns)) is None
        assert not grouped_by_class(split.y), key
        assert list(split.metadata["image_id"]) == sorted(split.metadata["image_id"])
    assert len(np.unique(dataset.split("test").y)) == 2  # the order check above had both classes to judge


def test_metashift_context_would_leak_the_class_of_the_domain_generalisation_sets(tmp_path):
    leaky = type("Leaky", (ms.CatDogD044,), {"visible_metadata": ("context",)})
    dataset = leaky(**_metashift(tmp_path))
    assert "visible_columns_hide_y" in _failed(dataset)


def test_scrambled_target_labels_leave_the_label_free_view_unchanged(tmp_path):
    plain, scrambled = ContractDataset(), ContractDataset(target_label_permutation_seed=3)
    assert not np.array_equal(plain.split("test").y, scrambled.split("test").y)
    for dataset in (plain, scrambled):
        view = dataset.label_free(dataset.split("test"))
        pd.testing.assert_frame_equal(view.metadata, plain.label_free(plain.split("test")).metadata)
        np.testing.assert_array_equal(view.inputs(), plain.split("test").x)
    dataset = load("metashift/catdog-indoor-outdoor", **_metashift(tmp_path, **SMALL_INDOOR))
    split = dataset.split("test")
    order = np.random.default_rng(0).permutation(len(split))
    meta = split.metadata.assign(y=split.y[order], **{"class": split.metadata["class"].to_numpy()[order]})
    relabelled = Split("test", split.y[order], meta, load_inputs=split.load_inputs, fingerprint=split.fingerprint)
    before, after = dataset.label_free(split), dataset.label_free(relabelled)
    pd.testing.assert_frame_equal(before.metadata, after.metadata)
    np.testing.assert_array_equal(before.inputs(), after.inputs())
