"""The online update loop several test-time adaptation methods share (their plugins live beside this module).

A wrapped network adapts on each batch it predicts: after :meth:`~OnlineLoop.check` refuses what the method
cannot adapt on, ``episodic=True`` restores the network and the optimizer saved at construction, then the
method's adaptation step runs ``steps`` times and the logits of the last step are returned.

- :class:`OnlineLoop` is that loop alone; a subclass defines the step, :meth:`~OnlineLoop._forward_and_adapt`
  (CoTTA: student, EMA teacher and stochastic restore; SAR: a two-pass sharpness-aware step and model recovery).
- :class:`OnlineLearner` adds the common step: a forward pass, the method's ``loss``, backward and one optimizer
  step (none when ``loss`` returns ``None``: nothing in the batch passed its filters); the logits returned are
  those of that forward pass, computed *before* its update, as in Tent (tent, eta/eata, deyo, shot_im,
  pseudo_label).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import torch
from torch import nn


class OnlineLoop(ABC):
    """``learner(x)``: the logits of batch ``x``, after checking it (:meth:`check`), then adapting on it.

    Saves the state of ``model`` and ``optimizer`` at construction (so build the optimizer, and configure the
    network, before calling ``__init__``); :meth:`reset` restores it."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 1, episodic: bool = False):
        self.model, self.optimizer, self.steps, self.episodic = model, optimizer, steps, episodic
        self._saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))

    def reset(self) -> None:
        """Restore the network and the optimizer to their state at construction (``episodic=True`` calls it before
        every batch; a subclass keeping more adapted state extends it)."""
        self.model.load_state_dict(self._saved[0], strict=True)
        self.optimizer.load_state_dict(self._saved[1])

    def check(self, x: torch.Tensor) -> None:
        """Refuse a batch the method cannot adapt on (a clear error before anything changes); accepts any."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.episodic:
            self.reset()
        for _ in range(self.steps):
            logits = self._forward_and_adapt(x)
        return logits

    @abstractmethod
    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        """One adaptation step on batch ``x``; returns the logits to report for it (detached)."""


class OnlineLearner(OnlineLoop):
    """An :class:`OnlineLoop` whose step minimises the method's :meth:`loss` by one optimizer step."""

    @abstractmethod
    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """The loss to minimise on batch ``x`` with the network's ``logits`` (``None``: no update)."""

    @torch.enable_grad()
    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        loss = self.loss(x, logits)
        if loss is not None:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad()
        return logits.detach()
