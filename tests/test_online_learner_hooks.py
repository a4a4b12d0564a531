"""The shared online loop (methods/_online.py) with a method-defined step: what OnlineLoop promises CoTTA and SAR."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shiftbench.methods._online import OnlineLearner, OnlineLoop
from shiftbench.methods.cotta import CoTTA
from shiftbench.methods.sar import SAR


class CountingStep(OnlineLoop):
    """Each step adds 1 to a scalar parameter and returns its value before the update; counts the resets."""

    def __init__(self, steps: int = 1, episodic: bool = False):
        self.weight = nn.Parameter(torch.zeros(()))
        model = nn.Module()
        model.weight = self.weight
        super().__init__(model, torch.optim.SGD([self.weight], lr=1.0), steps, episodic)
        self.resets = 0
        self.checked: list[int] = []

    def reset(self) -> None:
        super().reset()
        self.resets += 1

    def check(self, x: torch.Tensor) -> None:
        self.checked.append(len(x))

    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        before = self.weight.detach().clone()
        with torch.no_grad():
            self.weight.add_(1.0)
        return before.expand(len(x))


def test_the_loop_runs_the_subclass_step_steps_times_and_returns_the_last_steps_logits():
    learner = CountingStep(steps=3)
    assert torch.equal(learner(torch.zeros(2)), torch.full((2,), 2.0))
    assert float(learner.weight.detach()) == 3.0 and learner.checked == [2] and learner.resets == 0


def test_episodic_calls_the_subclass_reset_before_every_batch_and_restores_the_saved_state():
    learner = CountingStep(steps=2, episodic=True)
    for _ in range(3):
        assert torch.equal(learner(torch.zeros(4)), torch.full((4,), 1.0))
    assert float(learner.weight.detach()) == 2.0 and learner.resets == 3


def test_a_loop_needs_a_step_and_a_loss_learner_needs_a_loss():
    with pytest.raises(TypeError):
        OnlineLoop(nn.Linear(1, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0))
    with pytest.raises(TypeError):
        OnlineLearner(nn.Linear(1, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0))
    assert issubclass(OnlineLearner, OnlineLoop) and issubclass(CoTTA, OnlineLoop) and issubclass(SAR, OnlineLoop)
