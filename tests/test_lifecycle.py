"""The one lifecycle every family runs (Method.run): seed, prepare once, process each batch in stream order,
collect; cached outputs read once per cell, a batch's outputs and inputs loaded only when read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, DomainAdapter, ModelAdapter, Outputs, OutputAdapter, PerformanceEstimator
from tasks import outputs_task


def logits_outputs(n: int, k: int = 3, seed: int = 0, labelled: bool = False) -> Outputs:
    rng = np.random.default_rng(seed)
    return Outputs(rng.normal(size=(n, 4)), rng.normal(size=(n, k)), rng.integers(0, k, n) if labelled else None)


def counted_task(batches: list[np.ndarray], n_target: int = 12, source_split: str = "id_val"):
    """A task over given outputs whose model counts how often it is asked for outputs, per split."""
    task = outputs_task(logits_outputs(30, labelled=True), logits_outputs(n_target, seed=1), batches, source_split)
    calls: dict[str, int] = {}
    given = task.model.outputs

    def outputs(split, cache):
        calls[split.name] = calls.get(split.name, 0) + 1
        return given(split, cache)

    task.model.outputs = outputs
    return task, calls


class Recording(OutputAdapter):
    name = "test_recording"

    def prepare(self, task):
        self.events = ["prepare"]

    def process(self, batch):
        self.events.append(tuple(batch.index))
        return batch.probs


def test_prepare_once_then_process_each_batch_in_stream_order_and_outputs_read_once():
    batches = [np.array([5, 1, 7]), np.array([0, 2]), np.array([3, 4, 6, 8, 9, 10, 11])]
    task, calls = counted_task(batches)
    method = Recording()
    probs = method.run(task)
    assert method.events == ["prepare", (5, 1, 7), (0, 2), (3, 4, 6, 8, 9, 10, 11)]
    np.testing.assert_array_equal(probs, task.target_outputs().probs)  # collected back in target order
    assert calls == {"target": 1}  # read once for three batches (and for the check above)
    assert task.target_outputs() is task.target_outputs()
    assert method.random_state == task.random_state


def test_probabilities_are_computed_once_and_subsets_carry_them():
    out = logits_outputs(6)
    first = out.probs
    assert out.probs is first
    part = out.subset(np.array([4, 0]))
    assert "probs" in part.__dict__  # not recomputed from the logits
    np.testing.assert_array_equal(part.probs, first[[4, 0]])


class LogitsOfInputs(ModelAdapter):
    name = "test_logits_of_inputs"

    def prepare(self, task):
        self.seen = []

    def process(self, batch):
        self.seen.append(batch.inputs)
        return batch.inputs.double()


def test_a_test_time_method_never_loads_cached_outputs_it_does_not_read():
    batches = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    task, calls = counted_task(batches, n_target=6)
    task.target_inputs = lambda index: torch.as_tensor(np.eye(3)[index % 3] * 2.0)
    probs = LogitsOfInputs().run(task)
    assert calls == {}
    np.testing.assert_allclose(probs[:3], torch.softmax(torch.eye(3, dtype=torch.float64) * 2, 1).numpy())


def test_an_output_adapter_never_loads_inputs():
    batch = Batch(np.array([0, 1]), lambda: logits_outputs(2), inputs=lambda index: pytest.fail("inputs were loaded"))
    method = Recording()
    method.events = []
    assert method.process(batch).shape == (2, 3)


class Nearest(DomainAdapter):
    name = "test_nearest"

    def fit(self, X_source, y_source, X_target):
        self.fitted_on = (len(X_source), len(X_target))
        return self

    def predict_proba(self, X_target):
        self.predicted_on = len(X_target)
        return np.full((len(X_target), 3), 1 / 3)


def test_a_domain_adapter_fits_once_and_predicts_the_whole_target_as_one_batch():
    task, _ = counted_task([np.array([0, 1]), np.array([2, 3])], n_target=4, source_split="train")
    method = Nearest()
    method.run(task)
    assert method.fitted_on == (30, 4) and method.predicted_on == 4


class MeanConfidence(PerformanceEstimator):
    name = "test_mean_confidence"

    def fit(self, reference):
        self.reference_size = len(reference)
        return self

    def process(self, chunk):
        return float(chunk.probs.max(1).mean())


def test_an_estimator_answers_one_float_per_chunk():
    batches = [np.array([0, 1, 2]), np.array([3, 4])]
    task, _ = counted_task(batches, n_target=5)
    method = MeanConfidence()
    frame = method.run(task)
    probs = task.target_outputs().probs
    assert method.reference_size == 30
    np.testing.assert_array_equal(frame["estimate"], [probs[:3].max(1).mean(), probs[3:].max(1).mean()])


def test_a_batch_without_what_is_read_says_so():
    with pytest.raises(ShiftbenchError, match="carries no inputs"):
        Batch.from_arrays(probs=np.ones((2, 2)) / 2).inputs
    with pytest.raises(ShiftbenchError, match="carries no feats"):
        Batch.from_arrays(probs=np.ones((2, 2)) / 2).feats
