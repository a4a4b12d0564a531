"""BatchNorm helpers shared by the test-time methods that renormalise (BN-adapt, Tent, the label shift adapter)."""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError


def batchnorm_layers(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer (1d, 2d, 3d) of ``network``, in module order."""
    return [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def require_batch_statistics(x: torch.Tensor, method: str) -> None:
    """Refuse, with the reason, a batch too small to have batch statistics."""
    if x.shape[0] < 2:
        raise ShiftbenchError(f"{method} normalises with each batch's statistics, which need at least 2 examples "
                              f"per batch; got a batch of {x.shape[0]} (use a scenario with batch_size >= 2)")


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
