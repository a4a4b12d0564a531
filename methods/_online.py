"""The online update loop several test-time adaptation methods share (their plugins live beside this module).

A wrapped network adapts on each batch it predicts: ``steps`` times a forward pass, the method's ``loss``,
backward and one optimizer step (none when ``loss`` returns ``None``: nothing in the batch passed its
filters); the logits returned are those of the last forward pass, computed *before* that pass's update, as
in Tent. ``episodic=True`` restores the network and the optimizer saved at construction before every batch.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import torch
from torch import nn


class OnlineLearner(ABC):
    """``learner(x)``: the logits of batch ``x``, after checking it (:meth:`check`), then adapting on it."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 1, episodic: bool = False):
        self.model, self.optimizer, self.steps, self.episodic = model, optimizer, steps, episodic
        self._saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))

    def reset(self) -> None:
        """Restore the network and the optimizer to their state at construction."""
        self.model.load_state_dict(self._saved[0], strict=True)
        self.optimizer.load_state_dict(self._saved[1])

    def check(self, x: torch.Tensor) -> None:
        """Refuse a batch the method cannot adapt on (a clear error before anything changes); accepts any."""

    @abstractmethod
    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """The loss to minimise on batch ``x`` with the network's ``logits`` (``None``: no update)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.episodic:
            self.reset()
        for _ in range(self.steps):
            logits = self._forward_and_adapt(x)
        return logits

    @torch.enable_grad()
    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        loss = self.loss(x, logits)
        if loss is not None:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad()
        return logits.detach()
