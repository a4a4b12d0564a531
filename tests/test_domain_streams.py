"""Streams over several domains: mixed domains, Dirichlet-interleaved domains, gradual severity
schedules, and the split's own order (``order: given``)."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench import datasets
from shiftbench.cache import ArrayCache
from shiftbench.corruptions.splits import corrupted_split
from shiftbench.errors import ShiftbenchError
from shiftbench.runner import scenario_group
from shiftbench.scenarios import Scenario, dirichlet_order, expand_scenarios

N_DOMAINS, BLOCK = 4, 300
#: four equal domain blocks of ten classes, as a target split over a corruption sequence holds them
Y = np.tile(np.repeat(np.arange(10), BLOCK // 10), N_DOMAINS)
SEQUENCE = "gaussian_noise+shot_noise+brightness+contrast"


def domain_of(index: np.ndarray) -> np.ndarray:
    return index // BLOCK


def test_sequence_is_the_default_and_keeps_scenario_dicts_and_streams():
    s = Scenario(target="id_test", corruption=SEQUENCE, severity=3)
    assert "domain_order" not in s.as_dict() and "domain_alpha" not in s.as_dict()
    assert s.domains == [(c, 3) for c in SEQUENCE.split("+")]
    batches = s.batches(Y, seed=0)
    assert all(len(np.unique(domain_of(b))) == 1 for b in batches)
    assert batches.labels[0] == "gaussian_noise/0"


def test_mixed_domains_pool_every_domain_and_visit_each_example_once():
    s = Scenario(target="id_test", corruption=SEQUENCE, severity=3, domain_order="mixed")
    batches = s.batches(Y, seed=0)
    order = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(Y)))
    domains_per_batch = [len(np.unique(domain_of(b))) for b in batches[:-1]]
    assert min(domains_per_batch) == N_DOMAINS  # 64 draws from 4 equal domains: all four, every batch
    share = np.mean(domain_of(order[: len(Y) // 2]) == 0)  # first half of the stream: a quarter from domain 0
    assert abs(share - 0.25) < 0.05
    assert s.name.endswith(":domains-mixed:bs64")


def test_mixed_domains_class_sorted_sorts_the_pool():
    s = Scenario(target="id_test", corruption=SEQUENCE, severity=3, domain_order="mixed", order="class_sorted")
    order = np.concatenate(s.batches(Y, seed=1))
    assert np.all(np.diff(Y[order]) >= 0)
    assert len(np.unique(domain_of(order[:BLOCK]))) == N_DOMAINS  # class 0..2 from every domain


@pytest.mark.parametrize("order", ["iid", "class_sorted"])
def test_domain_dirichlet_keeps_each_domains_own_order(order):
    s = Scenario(target="id_test", corruption=SEQUENCE, severity=3, domain_order="dirichlet", order=order)
    stream = np.concatenate(s.batches(Y, seed=2))
    np.testing.assert_array_equal(np.sort(stream), np.arange(len(Y)))
    for d in range(N_DOMAINS):
        own = stream[domain_of(stream) == d]
        if order == "class_sorted":
            assert np.all(np.diff(Y[own]) >= 0)  # each domain arrives class-sorted, interleaved with others
    # the domain order is not the block sequence: some domain arrives before the previous one is used up
    first_seen = [np.flatnonzero(domain_of(stream) == d)[0] for d in range(N_DOMAINS)]
    last_seen = [np.flatnonzero(domain_of(stream) == d)[-1] for d in range(N_DOMAINS)]
    assert any(first_seen[j] < last_seen[i] for i in range(N_DOMAINS) for j in range(N_DOMAINS) if i != j)


def test_domain_alpha_sets_how_many_domains_share_a_batch():
    def domains_per_batch(alpha: float) -> float:
        s = Scenario(target="id_test", corruption=SEQUENCE, severity=3, domain_order="dirichlet",
                     domain_alpha=alpha, batch_size=50)
        return float(np.mean([len(np.unique(domain_of(b))) for b in s.batches(Y, seed=0)[:-4]]))

    assert domains_per_batch(0.01) < 1.5 < 3.5 < domains_per_batch(100.0)


def test_dirichlet_label_order_is_unchanged_by_the_shared_interleaving():
    """The LAME-paper order, written out from its definition, gives the same stream as before the
    interleaving was shared with domain orders (the rng draws in the same sequence)."""
    y = np.repeat(np.arange(5), 40)
    rng = np.random.default_rng(7)
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in range(5)}
    expected: list[int] = []
    while pools:
        classes = list(pools)
        counts = rng.multinomial(16, rng.dirichlet(np.full(len(classes), 0.3)))
        for c, k in zip(classes, counts):
            expected += pools[c][:k]
            pools[c] = pools[c][k:]
            if not pools[c]:
                del pools[c]
    np.testing.assert_array_equal(dirichlet_order(y, 0.3, 16, np.random.default_rng(7)), expected)


def test_given_order_streams_the_split_as_stored():
    batches = Scenario(order="given", batch_size=64).batches(Y, seed=5)
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(len(Y)))
    assert Scenario(order="given").name == "test:given:bs64"


def test_gradual_schedule_visits_each_corruption_at_each_severity(tmp_path):
    digits = datasets.load("digits")
    cache = ArrayCache(tmp_path)
    s = Scenario(target="id_test", corruption="gaussian_noise+brightness", severity="1+3+5+3+1", batch_size=128)
    assert s.domains == [("gaussian_noise", v) for v in (1, 3, 5, 3, 1)] + [("brightness", v) for v in (1, 3, 5, 3, 1)]
    split = s.target_split(digits, cache, seed=0)
    base = digits.split("id_test")
    n = len(base)
    assert len(split) == 10 * n
    np.testing.assert_array_equal(split.x[2 * n:3 * n], corrupted_split(base, "gaussian_noise", 5, cache).x)
    np.testing.assert_array_equal(split.metadata["severity"].to_numpy()[::n], [1, 3, 5, 3, 1] * 2)
    batches = s.batches(split.y, seed=0)
    assert batches.labels[0] == "gaussian_noise/1/0"
    arrival = [split.metadata["severity"].to_numpy()[b] for b in batches]
    assert all(len(np.unique(a)) == 1 for a in arrival)  # no batch straddles two severities
    assert scenario_group(s) == "id_test-c+gradual"


def test_stream_kinds_get_their_own_leaderboard_columns():
    groups = {scenario_group(s) for s in expand_scenarios([
        {"target": "id_test", "corruption": SEQUENCE, "severity": 3,
         "domain_order": ["sequence", "mixed", "dirichlet"]},
    ])}
    assert groups == {"id_test-c", "id_test-c+domains-mixed", "id_test-c+domains-dirichlet"}


def test_domain_stream_options_are_checked_with_one_line_errors():
    with pytest.raises(ShiftbenchError, match="valid values: sequence, mixed, dirichlet"):
        Scenario(corruption=SEQUENCE, severity=3, domain_order="shuffled")
    with pytest.raises(ShiftbenchError, match="has one; name a corruption sequence"):
        Scenario(corruption="fog", severity=3, domain_order="mixed")
    with pytest.raises(ShiftbenchError, match="domain_alpha must be > 0"):
        Scenario(corruption=SEQUENCE, severity=3, domain_order="dirichlet", domain_alpha=0.0)
    with pytest.raises(ShiftbenchError, match="chunk_by"):
        Scenario(corruption=SEQUENCE, severity=3, domain_order="dirichlet", chunk_by="month")
    for bad in ("0", "1+6", "1+x", "1,2"):
        with pytest.raises(ShiftbenchError, match="schedule of them joined by"):
            Scenario(corruption="fog", severity=bad)
    assert Scenario(corruption="fog", severity="1+2").domain_order == "sequence"
