"""BN-adapt (test-time BatchNorm statistics): normalise with each target batch's statistics.

Schneider et al. (2020), Nado et al. (2020). ``momentum=None`` uses the current batch's mean and
variance only (each batch on its own); ``momentum=m`` additionally keeps running statistics,
updated with momentum ``m`` from every batch, and normalises with those (a continual estimate).
Nothing but the normalisation statistics changes; affine parameters stay as trained.
"""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.families import ModelAdapter, Task


def batchnorm_layers(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def use_batch_statistics(network: nn.Module, momentum: float | None = None) -> nn.Module:
    """Put every BatchNorm layer of ``network`` in test-time batch-statistics mode (in place)."""
    network.eval()
    for bn in batchnorm_layers(network):
        bn.train()
        if momentum is None:
            bn.track_running_stats = False
            bn.running_mean, bn.running_var = None, None
        else:
            bn.momentum = momentum
    return network


class BNAdapt(ModelAdapter):
    """Test-time BatchNorm: statistics from each target batch (or a running average with momentum)."""

    name = "bn_adapt"
    grid = {"momentum": [None]}

    def __init__(self, momentum: float | None = None):
        self.momentum = momentum

    def not_applicable(self, model, dataset) -> str | None:
        return None if model.has_batchnorm() else f"model {model.name!r} has no BatchNorm layers"

    def setup(self, network: nn.Module, task: Task) -> None:
        self.network = use_batch_statistics(network, self.momentum)

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.momentum is None:
            return self.network(x)
        self.network(x)  # update the running statistics with this batch
        for bn in batchnorm_layers(self.network):
            bn.eval()
        logits = self.network(x)
        for bn in batchnorm_layers(self.network):
            bn.train()
        return logits
