"""Dataset options are captured from the adapter's ``__init__`` signature (defaults filled in, tuples as
lists), pinned per offline adapter to the values they had when adapters repeated them by hand; unknown
options are refused before any data is loaded; experimental datasets are listed apart and not run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from shiftbench.cli import main
from shiftbench.dataset import Dataset, check_dataset_for_run
from shiftbench.datasets import load, registry
from shiftbench.errors import ShiftbenchError
from shiftbench.models import registry as models
from shiftbench.runner import expand_cells

sys.path.insert(0, str(Path(__file__).parent))
import metashift_fixtures  # noqa: E402
import wilds_fixtures  # noqa: E402

ROOT = "<root>"  # the fixture folder, in the options given and expected
SMALL_DIGITS = {"n_train": 600, "n_val": 200, "n_test": 200}
METASHIFT = {"root_dir": ROOT, "image_size": 8}
WILDS_DEFAULTS = {"split_scheme": "official", "image_size": None, "version": None, "unlabelled": True}

#: (dataset, options given, Dataset.options): the values each adapter recorded before options were captured
PINNED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("digits", {}, {"split_seed": 0, "n_train": 3000, "n_val": 1000, "n_test": 1000}),
    ("digits", {"split_seed": 3, "n_train": 700}, {"split_seed": 3, "n_train": 700, "n_val": 1000, "n_test": 1000}),
    ("digits_lt", {}, {"split_seed": 0, "n_train": 3000, "n_val": 1000, "n_test": 1000, "imbalance_ratio": 100.0}),
    ("digits_lt", {**SMALL_DIGITS, "imbalance_ratio": 10}, {"split_seed": 0, **SMALL_DIGITS, "imbalance_ratio": 10}),
    ("biased_sampling", {}, {"source": "breast_cancer", "feature": 0, "seed": 0}),
    ("biased_sampling", {"source": "wine", "feature": 2, "seed": 5}, {"source": "wine", "feature": 2, "seed": 5}),
    ("skada_shift", {}, {"shift": "covariate_shift", "n_samples": 100, "noise": None, "seed": 0}),
    ("skada_shift", {"shift": "target_shift", "noise": 0.5, "seed": 2},
     {"shift": "target_shift", "n_samples": 100, "noise": 0.5, "seed": 2}),
    ("nycflights", {"max_per_month": 300}, {"source_months": 4, "split_seed": 0, "max_per_month": 300}),
    ("nycflights", {"max_per_month": 300, "source_months": 3, "split_seed": 1},
     {"source_months": 3, "split_seed": 1, "max_per_month": 300}),
    ("nycflights_airports", {"max_per_airport": 600},
     {"source_origin": "EWR", "target_origin": "LGA", "months": [1, 2, 3], "max_per_airport": 600, "seed": 0}),
    ("nycflights_airports", {"max_per_airport": 600, "months": (2, 3), "source_origin": "JFK", "seed": 4},
     {"source_origin": "JFK", "target_origin": "LGA", "months": [2, 3], "max_per_airport": 600, "seed": 4}),
    *[(f"metashift/catdog-d{d}", METASHIFT, {**METASHIFT, "seed": 0, "holdout_fraction": 0.2, "test_cats": False})
      for d in ("0.44", "0.71", "1.12", "1.43")],
    ("metashift/catdog-d0.44", {**METASHIFT, "test_cats": True, "holdout_fraction": 0.3, "seed": 1},
     {**METASHIFT, "seed": 1, "holdout_fraction": 0.3, "test_cats": True}),
    ("metashift/catdog-indoor-outdoor", {**METASHIFT, "num_minority": 2, "minority_size": 10, "majority_size": 20,
                                         "test_size": 4},
     {**METASHIFT, "seed": 0, "num_minority": 2, "minority_size": 10, "majority_size": 20, "test_size": 4}),
    ("metashift/contexts", {**METASHIFT, "min_size": 3, "classes": ("cat", "dog")},
     {**METASHIFT, "seed": 0, "classes": ["cat", "dog"], "test_context": "shelf", "min_size": 3,
      "holdout_fraction": 0.2}),
    *[(f"wilds/{name}", {"root_dir": ROOT}, {"root_dir": ROOT, **WILDS_DEFAULTS}) for name in wilds_fixtures.BUILDERS],
    ("wilds/camelyon17", {"root_dir": ROOT, "image_size": 16, "unlabelled": False},
     {"root_dir": ROOT, **WILDS_DEFAULTS, "image_size": 16, "unlabelled": False}),
]
#: one construction per adapter module, on its fixture: the options of the built dataset itself
BUILT = ["digits_lt", "biased_sampling", "skada_shift", "nycflights", "nycflights_airports",
         "metashift/catdog-indoor-outdoor", "metashift/contexts", "wilds/camelyon17"]


def _rooted(options: dict[str, Any], root: Path) -> dict[str, Any]:
    return {k: str(root) if v == ROOT else v for k, v in options.items()}


@pytest.mark.parametrize("name, given, expected", PINNED, ids=[f"{n}-{i}" for i, (n, *_) in enumerate(PINNED)])
def test_options_are_the_signature_with_defaults_as_pinned(name, given, expected, tmp_path):
    options = registry.get(name).bind_options(**_rooted(given, tmp_path))
    assert options == _rooted(expected, tmp_path)
    assert json.loads(json.dumps(options)) == options  # the form a run config and a record hold


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fixtures")
    metashift_fixtures.build(root)
    wilds_fixtures.camelyon17(root)
    return root


@pytest.mark.parametrize("name", BUILT)
def test_a_built_dataset_keeps_the_pinned_options(name, fixture_root):
    given, expected = next((g, e) for n, g, e in reversed(PINNED) if n == name)
    dataset = load(name, **_rooted(given, fixture_root))
    assert dataset.options == _rooted(expected, fixture_root)


def test_an_unknown_option_is_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(ShiftbenchError) as caught:
        load("wilds/camelyon17", root_dir=str(tmp_path / "absent"), image_sise=32)
    message = str(caught.value)
    assert "\n" not in message and "'wilds/camelyon17'" in message and "['image_sise']" in message
    assert "image_size" in message and "split_scheme" in message


def test_a_direct_construction_is_checked_too():
    with pytest.raises(ShiftbenchError, match=r"dataset 'digits' has no options \['n_trian'\]; its options: "
                                              r"n_test, n_train, n_val, split_seed"):
        registry.get("digits")(n_trian=500)
    with pytest.raises(ShiftbenchError, match="dataset 'biased_sampling': too many positional arguments"):
        registry.get("biased_sampling")("wine", 0, 0, 1)


def test_an_adapter_records_its_options_without_repeating_them():
    class Plain(Dataset):
        name = "plain"

        def __init__(self, size: int = 3, tags: tuple[str, ...] = ("a",)):
            super().__init__()

    assert Plain(5).options == {"size": 5, "tags": ["a"]}


# ---- experimental datasets --------------------------------------------------------------------------

def _consumed(cls: type[Dataset]) -> bool:
    """Whether some model plugin takes the dataset's inputs and its task is classification (what every
    model's head and every method family consume)."""
    kinds = {k for m in models.scan_all().values() for k in m.input_kinds}
    return cls.input_kind in kinds and getattr(cls, "task", "classification") == "classification"


@pytest.mark.parametrize("name", [n for n in registry.scan_all() if n.startswith("wilds/")])
def test_a_wilds_dataset_is_experimental_exactly_when_nothing_consumes_it(name):
    cls = registry.get(name)
    assert (cls.experimental is None) == _consumed(cls), cls.experimental
    assert cls.experimental is None or "\n" not in cls.experimental


def test_list_shows_experimental_datasets_apart_with_their_reason(capsys):
    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    supported, experimental = out.split("experimental datasets")
    assert "wilds/camelyon17" in supported and "wilds/civilcomments" not in supported
    assert "wilds/civilcomments" in experimental and "[text inputs; no model plugin takes text]" in experimental
    assert "digits" not in experimental


def test_run_refuses_an_experimental_dataset_up_front():
    cfg = {"method": ["source_only"], "seed": [0], "model": "small_cnn",
           "dataset": {"name": "wilds/poverty", "options": {"root_dir": "/nonexistent"}}}
    with pytest.raises(ShiftbenchError, match=r"dataset 'wilds/poverty' is experimental \(a regression task") as caught:
        expand_cells(cfg)  # at cell expansion: nothing is loaded
    assert "\n" not in str(caught.value) and "shiftbench list datasets" in str(caught.value)
    check_dataset_for_run("digits", {})


# ---- user errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, message", [
    ("digits_lt", {"imbalance_ratio": 0.5}, "dataset digits_lt: imbalance_ratio must be a finite number >= 1"),
    ("nycflights", {"source_months": 11}, "dataset nycflights: source_months must be at most 10"),
    ("biased_sampling", {"source": "wine", "feature": 13},
     "dataset biased_sampling: feature must index one of the 13 columns of wine"),
    ("biased_sampling", {"feature": "0"}, "dataset biased_sampling: feature must be an integer >= 0"),
    ("biased_sampling", {"source": "iris"}, "unknown biased-sampling source 'iris'"),
    ("skada_shift", {"shift": "drift"}, "unknown skada shift 'drift'"),
])
def test_a_bad_option_value_is_a_one_line_shiftbench_error(name, options, message):
    with pytest.raises(ShiftbenchError) as caught:
        registry.get(name)(**options)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
