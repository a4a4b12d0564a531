"""Stream scenarios added for test-time adaptation: long-tailed targets and continual domain sequences."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench import datasets
from shiftbench.cache import ArrayCache
from shiftbench.corruptions.splits import corrupted_split
from shiftbench.errors import ShiftbenchError
from shiftbench.scenarios import Scenario, expand_scenarios, long_tail_profile


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def test_long_tail_profiles_have_the_requested_ratio_and_direction():
    fwd = long_tail_profile(10, "forward", 100)
    np.testing.assert_allclose(fwd.max() / fwd.min(), 100)
    assert fwd.argmax() == 0 and np.all(np.diff(fwd) < 0)
    np.testing.assert_allclose(long_tail_profile(10, "backward", 100), fwd[::-1])
    np.testing.assert_allclose(long_tail_profile(10, "uniform", 100), np.full(10, 0.1))
    np.testing.assert_allclose(fwd[1] / fwd[0], 100 ** (-1 / 9))


def test_long_tailed_target_follows_profile(digits, tmp_path):
    for kind in ("forward", "backward"):
        s = Scenario(target="id_test", long_tail=kind, imbalance_ratio=100)
        split = s.target_split(digits, ArrayCache(tmp_path), seed=0)
        counts = np.bincount(split.y, minlength=10)
        assert len(split) == len(digits.split("id_test"))
        expected = long_tail_profile(10, kind, 100) * len(split)
        assert np.abs(counts - expected).max() < 4 * np.sqrt(expected.max())
        head = 0 if kind == "forward" else 9
        assert counts.argmax() == head
    assert "lt-backward100" in Scenario(target="id_test", long_tail="backward").name


def test_new_fields_at_defaults_leave_scenario_dicts_unchanged():
    d = Scenario(target="test", order="class_sorted").as_dict()
    assert "long_tail" not in d and "imbalance_ratio" not in d
    assert Scenario(**d) == Scenario(target="test", order="class_sorted")
    assert Scenario(long_tail="forward").as_dict()["long_tail"] == "forward"


def test_continual_domain_sequence_visits_domains_in_order(digits, tmp_path):
    cache = ArrayCache(tmp_path)
    s = Scenario(target="id_test", corruption="gaussian_noise+brightness", severity=3, order="class_sorted", batch_size=64)
    split = s.target_split(digits, cache, seed=0)
    base = digits.split("id_test")
    n = len(base)
    assert len(split) == 2 * n
    np.testing.assert_array_equal(split.x[:n], corrupted_split(base, "gaussian_noise", 3, cache).x)
    np.testing.assert_array_equal(split.x[n:], corrupted_split(base, "brightness", 3, cache).x)
    batches = s.batches(split.y, seed=0)
    for b in batches:  # no batch straddles two domains
        assert (b < n).all() or (b >= n).all()
    order = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(order[:n]), np.arange(n))
    np.testing.assert_array_equal(np.sort(order[n:]), np.arange(n, 2 * n))
    for block in (order[:n], order[n:]):
        assert np.all(np.diff(split.y[block]) >= 0)  # class-sorted within each domain
    assert s.corruptions == ["gaussian_noise", "brightness"]


def test_bad_scenarios_raise_clear_errors():
    with pytest.raises(ShiftbenchError, match="forward, uniform, backward"):
        Scenario(long_tail="sideways")
    with pytest.raises(ShiftbenchError, match="imbalance_ratio"):
        Scenario(long_tail="forward", imbalance_ratio=0.5)
    with pytest.raises(ShiftbenchError, match="choose one label shift"):
        Scenario(long_tail="forward", label_shift=1.0)
    assert len(expand_scenarios([{"long_tail": ["forward", "uniform", "backward"]}])) == 3
