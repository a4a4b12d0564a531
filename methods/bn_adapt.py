"""BN-adapt (test-time BatchNorm statistics): normalise with each target batch's statistics.

Schneider et al. (2020), Nado et al. (2020). ``momentum=None`` uses the current batch's mean and
variance only (each batch on its own); ``momentum=m`` additionally keeps running statistics,
updated with momentum ``m`` from every batch, and normalises with those (a continual estimate).
``prior=N`` (Schneider et al. 2020) normalises each batch of size ``n`` with a mix of source and
batch statistics, ``N/(N+n)`` source + ``n/(N+n)`` batch, for both mean and (biased) variance;
``N=0`` is plain batch statistics, large ``N`` the source model. Nothing but the normalisation
statistics changes; affine parameters stay as trained.
"""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Float
from shiftbench.methods._batchnorm import batchnorm_layers, require_batch_statistics, use_batch_statistics


def mix_with_source_statistics(network: nn.Module, prior: float) -> nn.Module:
    """Normalise every BatchNorm layer with ``N/(N+n)`` source + ``n/(N+n)`` batch statistics (in place)."""
    network.eval()
    for bn in batchnorm_layers(network):
        source = (bn.running_mean.clone(), bn.running_var.clone())
        bn.register_forward_pre_hook(_mixing_hook(source, prior))
    return network


def _mixing_hook(source: tuple[torch.Tensor, torch.Tensor], prior: float):
    def hook(bn: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor]) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.ndim)]
        n = x.shape[0]
        w = prior / (prior + n)
        bn.running_mean = w * source[0] + (1 - w) * x.mean(dims)
        bn.running_var = w * source[1] + (1 - w) * x.var(dims, unbiased=False)
    return hook


class BNAdapt(ModelAdapter):
    """Test-time BatchNorm: statistics from each target batch (or a running average with momentum)."""

    name = "bn_adapt"
    hyperparameters = {
        "momentum": Float(None, above=0, at_most=1, allow_none=True,
                          doc="momentum of running target statistics (None: each batch's own statistics)"),
        "prior": Float(None, at_least=0, allow_none=True,
                       doc="Schneider et al.'s N: weight of the source statistics against the batch's"),
    }
    grid = {"momentum": [None]}

    @classmethod
    def check_together(cls, values: dict) -> None:
        if values["prior"] is not None and values["momentum"] is not None:
            raise ShiftbenchError("bn_adapt: give either momentum (running target statistics) or prior "
                                  "(Schneider et al. source/batch mixing), not both; set the other to None")

    def not_applicable(self, model, data) -> str | None:
        return None if model.has_batchnorm() else f"model {model.name!r} has no BatchNorm layers"

    def prepare(self, task: Task) -> None:
        if self.prior is not None:
            self.network = mix_with_source_statistics(task.network(), self.prior)
        else:
            self.network = use_batch_statistics(task.network(), self.momentum)

    @torch.no_grad()
    def process(self, batch: Batch) -> torch.Tensor:
        x = batch.inputs
        if self.prior is None:
            require_batch_statistics(x, "bn_adapt")
        if self.momentum is None:
            return self.network(x)
        self.network(x)  # update the running statistics with this batch
        for bn in batchnorm_layers(self.network):
            bn.eval()
        logits = self.network(x)
        for bn in batchnorm_layers(self.network):
            bn.train()
        return logits
