"""The no-estimation baseline: every chunk is estimated at the model's accuracy on the reference."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Outputs


def random_logits(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, k)) * 3


def random_probs(n: int, k: int, seed: int) -> np.ndarray:
    z = random_logits(n, k, seed)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def test_every_chunk_gets_the_reference_accuracy():
    logits = random_logits(200, 4, 0)
    y = np.random.default_rng(1).integers(0, 4, size=200)
    y[:120] = logits[:120].argmax(1)  # at least 120 of 200 correct
    reference = Outputs(None, logits, y)
    reference_accuracy = np.mean(reference.probs.argmax(1) == y)
    est = methods.load("reference_accuracy").fit(reference)
    for chunk in (random_probs(50, 4, 2), random_probs(7, 4, 3), np.eye(4)[[0, 0, 1]]):
        assert est.process(Batch.from_arrays(probs=chunk)) == pytest.approx(reference_accuracy, abs=1e-15)
    assert 0.6 <= reference_accuracy < 1.0


def test_bad_reference_is_refused():
    with pytest.raises(ShiftbenchError, match="reference.y"):
        methods.load("reference_accuracy").fit(Outputs(None, random_logits(10, 3, 0), np.full(10, 5)))
