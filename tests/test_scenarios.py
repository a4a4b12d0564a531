"""Stream orders, label-shift resampling and scenario expansion."""

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.scenarios import Scenario, expand_scenarios, label_shift_indices

Y = np.repeat(np.arange(10), 50)


@pytest.mark.parametrize("order", ["iid", "class_sorted", "dirichlet"])
def test_every_example_arrives_exactly_once(order):
    batches = Scenario(order=order, batch_size=32).batches(Y, seed=3)
    seen = np.concatenate(batches)
    assert np.array_equal(np.sort(seen), np.arange(len(Y)))
    assert all(len(b) <= 32 for b in batches)


def test_class_sorted_is_sorted_and_iid_is_mixed():
    sorted_stream = np.concatenate(Scenario(order="class_sorted").batches(Y, 0))
    assert np.all(np.diff(Y[sorted_stream]) >= 0)
    first_iid_batch = Scenario(order="iid", batch_size=64).batches(Y, 0)[0]
    assert len(np.unique(Y[first_iid_batch])) >= 8


def test_dirichlet_order_concentrates_batches():
    def classes_per_batch(alpha):
        batches = Scenario(order="dirichlet", order_alpha=alpha, batch_size=50).batches(Y, 0)
        return np.mean([len(np.unique(Y[b])) for b in batches[:-2]])

    assert classes_per_batch(0.01) < 3 < classes_per_batch(100.0)


def test_label_shift_prior_follows_dirichlet_draw():
    idx = label_shift_indices(Y, 10, alpha=0.1, seed=0)
    counts = np.bincount(Y[idx], minlength=10)
    assert len(idx) == len(Y)
    assert counts.max() / len(idx) > 0.3  # alpha 0.1 concentrates the prior on few classes
    uniform = np.bincount(Y[label_shift_indices(Y, 10, alpha=1e4, seed=0)], minlength=10) / len(Y)
    assert np.abs(uniform - 0.1).max() < 0.05


def test_seeded_streams_are_reproducible_and_seed_dependent():
    s = Scenario(order="iid")
    assert all(np.array_equal(a, b) for a, b in zip(s.batches(Y, 1), s.batches(Y, 1)))
    assert not np.array_equal(s.batches(Y, 1)[0], s.batches(Y, 2)[0])


def test_expansion_is_a_cross_product():
    scenarios = expand_scenarios([{"target": "id_test", "corruption": ["a", "b"], "severity": [1, 2, 3]}], {"batch_size": 16})
    assert len(scenarios) == 6 and all(s.batch_size == 16 for s in scenarios)


def test_bad_scenarios_are_explained():
    with pytest.raises(ShiftbenchError, match="valid orders"):
        Scenario(order="random")
    with pytest.raises(ShiftbenchError, match="valid keys"):
        expand_scenarios([{"targett": "test"}])
    with pytest.raises(ShiftbenchError, match="severity"):
        Scenario(corruption="gaussian_noise")


def test_leaderboard_groups_separate_shift_kinds():
    from shiftbench.runner import scenario_group

    groups = {scenario_group(s) for s in expand_scenarios([
        {"target": "id_test", "corruption": ["a", "b"], "severity": [1, 5]},
        {"target": "id_test", "label_shift": [0.1, 1.0]},
        {"target": "id_test", "long_tail": ["forward", "backward"]},
        {"target": "test", "order": "class_sorted"},
    ])}
    assert groups == {"id_test-c", "id_test+labelshift0.1", "id_test+labelshift1", "id_test+longtail-forward100",
                      "id_test+longtail-backward100", "test+class_sorted"}
