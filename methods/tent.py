"""Tent: fully test-time adaptation by entropy minimisation (Wang et al., ICLR 2021).

Semantics of the official code (DequanWang/tent):
- the model is put in train mode; every BatchNorm layer normalises with the current batch's
  statistics (running statistics dropped, ``track_running_stats=False``), in train and eval mode;
- only the BatchNorm affine parameters (scale and shift) require gradients;
- each call on a batch, ``steps`` times: forward, loss = mean softmax entropy of the logits,
  backward, one Adam step (betas (0.9, 0.999), no weight decay), zero the gradients; the logits
  returned are those of the last forward pass, i.e. computed *before* that pass's update;
- ``episodic=True`` restores the model and optimizer states saved at construction before every
  batch.

One deliberate widening: the official code configures ``BatchNorm2d`` only; here every
BatchNorm layer (1d/2d/3d) counts, so that networks with a BatchNorm1d feature layer adapt all
their normalisation layers.
"""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._batchnorm import batchnorm_layers, require_batch_statistics
from shiftbench.methods._online import OnlineLearner


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax distribution of each row of ``logits``."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def configure_for_tent(model: nn.Module) -> list[nn.Parameter]:
    """Put ``model`` in Tent's mode (in place) and return the BatchNorm affine parameters it trains."""
    norms = batchnorm_layers(model)
    params = [p for m in norms for p in (m.weight, m.bias) if p is not None]
    if not params:
        raise ShiftbenchError("Tent needs a network with affine BatchNorm layers; this one has none "
                              "(use an output adapter such as 'lame' for networks without BatchNorm)")
    model.train()
    model.requires_grad_(False)
    for m in norms:
        m.requires_grad_(True)
        m.track_running_stats = False
        m.running_mean, m.running_var = None, None
    return params


class Tent(OnlineLearner):
    """A model wrapped for Tent: ``tent(x)`` returns logits of batch ``x`` and adapts on it."""

    def __init__(self, model: nn.Module, lr: float = 1e-3, steps: int = 1, episodic: bool = False):
        TentAdapter.check_setting({"lr": lr, "steps": steps, "episodic": episodic})
        self.lr = lr
        self.params = configure_for_tent(model)
        super().__init__(model, torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0),
                         steps, episodic)

    def check(self, x: torch.Tensor) -> None:
        require_batch_statistics(x, "Tent")

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return softmax_entropy(logits).mean(0)


class TentAdapter(ModelAdapter):
    """Tent (Wang et al. 2021): entropy minimisation on BatchNorm affine parameters, batch statistics, Adam."""

    name = "tent"
    hyperparameters = {
        "lr": Float(1e-3, above=0, doc="Adam learning rate"),
        "steps": Int(1, doc="adaptation steps per batch"),
        "episodic": Bool(False, doc="restore the source model before every batch"),
    }
    grid = {"lr": [1e-4, 1e-3, 1e-2], "steps": [1, 3]}

    def not_applicable(self, model, data) -> str | None:
        return None if model.has_batchnorm() else f"model {model.name!r} has no BatchNorm layers"

    def prepare(self, task: Task) -> None:
        self.tent = Tent(task.network(), self.lr, self.steps, self.episodic)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.tent(batch.inputs)
