"""Seeds reach data sampling and methods: one generator per purpose, the run's seed drives datasets'
seed options, and a method's randomness follows the task, never a hyperparameter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftbench import datasets, methods
from shiftbench.dataset import UnlabelledSplit, load_for_seed, seeded_options
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Outputs, Task
from shiftbench.runner import Runner, RunSettings, expand_cells
from shiftbench.scenarios import Scenario
from shiftbench.seeding import PURPOSES, generator, int_seed

SMALL_DIGITS = {"n_train": 1000, "n_val": 300, "n_test": 300}


def test_each_purpose_has_its_own_reproducible_generator():
    draws = {p: generator(3, p).random(8) for p in PURPOSES}
    for p in PURPOSES:
        np.testing.assert_array_equal(generator(3, p).random(8), draws[p])  # same seed and purpose, same draws
    salted = [p for p, salt in PURPOSES.items() if salt is not None]
    assert len({draws[p].tobytes() for p in salted}) == len(salted)
    assert not np.array_equal(generator(4, "stream").random(8), draws["stream"])
    assert int_seed(0, "method") != int_seed(1, "method")
    with pytest.raises(ShiftbenchError, match="unknown seed purpose 'strem'.*stream"):
        generator(0, "strem")


def test_streams_draw_from_the_stream_purpose_only():
    y = np.arange(200) % 10
    order = np.concatenate(Scenario(order="iid", batch_size=32).batches(y, seed=5))
    np.testing.assert_array_equal(order, generator(5, "stream").permutation(len(y)))
    assert not np.array_equal(order, generator(5, "method").permutation(len(y)))


def test_seed_zero_of_digits_is_the_default_split_and_other_seeds_resample():
    default = datasets.load("digits", **SMALL_DIGITS)
    assert load_for_seed("digits", SMALL_DIGITS, 0).fingerprint == default.fingerprint
    other = load_for_seed("digits", SMALL_DIGITS, 1)
    assert other.fingerprint == datasets.load("digits", **SMALL_DIGITS, split_seed=1).fingerprint
    assert other.split("id_test").fingerprint != default.split("id_test").fingerprint


def test_a_corrupted_view_follows_the_seed_of_its_base():
    options = {"corruptions": ["gaussian_noise"], "severities": [1]}
    assert seeded_options("digits-c", options, 2)["base_options"] == {"split_seed": 2}
    corrupted = load_for_seed("digits-c", options, 1)
    assert corrupted.split("train").fingerprint == load_for_seed("digits", {}, 1).split("train").fingerprint
    assert seeded_options("wilds/camelyon17", {"root_dir": "x"}, 4) == {"root_dir": "x"}  # fixed splits: untouched


def run_config(tmp_path, dataset: dict, method: str, seeds=(0, 1)) -> dict:
    return {"dataset": dataset, "method": [method], "model": None, "seed": list(seeds), "grid": {},
            "store_dir": str(tmp_path / "store"), "cache_dir": str(tmp_path / "cache")}


def test_setting_the_seed_option_in_a_run_config_is_a_clear_error(tmp_path):
    dataset = {"name": "digits", "options": {"split_seed": 1}, "models": ["small_cnn"], "scenarios": [{"target": "test"}]}
    with pytest.raises(ShiftbenchError, match="'split_seed' of 'digits' follows the run's seed"):
        expand_cells(run_config(tmp_path, dataset, "source_only"))


def test_two_seeds_of_a_tabular_domain_adaptation_cell_differ(tmp_path):
    dataset = {"name": "biased_sampling", "options": {"source": "breast_cancer"}, "models": ["tabular_logistic"],
               "stream": {"batch_size": 1000}, "scenarios": [{"target": "test"}]}
    cfg = {**run_config(tmp_path, dataset, "domain_classifier_iw"),
           "grid": {"domain_classifier_iw": {"C": [1.0], "classifier": ["logistic"]}}}
    cells = expand_cells(cfg)
    runner = Runner(RunSettings(tmp_path / "store", tmp_path / "cache", progress=False))
    assert runner.run(cells)["ok"] == len(cells) == 2
    records = {c.seed: runner.store.load(c.key) for c in cells}
    assert records[0]["data_hash"] == datasets.load("biased_sampling", source="breast_cancer").fingerprint
    assert records[1]["data_hash"] == datasets.load("biased_sampling", source="breast_cancer", seed=1).fingerprint
    assert records[0]["data_hash"] != records[1]["data_hash"]
    assert records[0]["metrics"] != records[1]["metrics"]


def test_no_registered_method_has_a_seed_hyperparameter():
    for name in methods.registry.names():
        cls = methods.registry.get(name)
        sub_grids = cls.grid if isinstance(cls.grid, (list, tuple)) else [cls.grid]
        names = set(cls.default_hyperparameters()) | {k for sub in sub_grids for k in sub}
        assert not names & {"seed", "random_state", "split_seed"}, f"{name} sweeps its randomness: {names}"


class ArrayTask(Task):
    """A task whose source and target outputs are given arrays (no model, no cache)."""

    def __init__(self, seed: int, source: Outputs, target: Outputs):
        n = len(target)
        split = UnlabelledSplit("target", n, lambda index: target.feats[index], pd.DataFrame(index=range(n)))
        super().__init__(2, split, [np.arange(n)], seed, None, None)
        self.arrays = {"source": source, "target": target}

    def source_outputs(self, split: str = "train") -> Outputs:
        return self.arrays["source"]

    def target_outputs(self) -> Outputs:
        return self.arrays["target"]


def shifted_outputs(n: int = 120, t: int = 80) -> tuple[Outputs, Outputs]:
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(n, 3)), rng.normal(0.7, 1.0, size=(t, 3))
    return Outputs(xs, np.zeros((n, 2)), (xs[:, 0] > 0).astype(int)), Outputs(xt, np.zeros((t, 2)))


def test_a_methods_randomness_follows_the_task_seed():
    source, target = shifted_outputs()
    fitted = {}
    for seed in (0, 1):
        method = methods.load("kmm_iw", max_source=40)  # KMM on a random subset of 40 source rows
        method.run(ArrayTask(seed, source, target))
        assert method.random_state == ArrayTask(seed, source, target).random_state
        fitted[seed] = method
    assert fitted[0].random_state != fitted[1].random_state
    assert not np.array_equal(fitted[0].weights_ > 0, fitted[1].weights_ > 0)  # another subset
    again = methods.load("kmm_iw", max_source=40)
    again.run(ArrayTask(0, source, target))
    np.testing.assert_array_equal(again.weights_, fitted[0].weights_)


def test_standalone_methods_are_deterministic_and_their_random_state_can_be_set():
    source, target = shifted_outputs()
    a, b, c = (methods.load("kmm_iw", max_source=40) for _ in range(3))
    c.random_state = 7
    for m in (a, b, c):
        m.fit(source.feats, source.y, target.feats)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert not np.array_equal(a.weights_ > 0, c.weights_ > 0)
