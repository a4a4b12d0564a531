"""BN-adapt's Schneider et al. prior: N/(N+n) source + n/(N+n) batch statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch
from tasks import network_task


def net() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-0.5, 0.5)
    return m.eval()


def hand_forward(m: nn.Module, x: torch.Tensor, prior: float) -> torch.Tensor:
    h = m[0](x)
    w = prior / (prior + len(x))
    mean = w * m[1].running_mean + (1 - w) * h.mean(0)
    var = w * m[1].running_var + (1 - w) * h.var(0, unbiased=False)
    h = (h - mean) / torch.sqrt(var + m[1].eps) * m[1].weight + m[1].bias
    return m[3](torch.relu(h))


@pytest.mark.parametrize("prior", [0.0, 16.0, 1e9])
def test_prior_mixes_source_and_batch_statistics(prior):
    m, x = net(), torch.randn(32, 5) * 3 + 1
    plugin = methods.load("bn_adapt", prior=prior)
    plugin.prepare(network_task(m))
    with torch.no_grad():
        want = hand_forward(m, x, prior)
        torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=x)), want)
        torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=x)), want)  # source statistics are not overwritten
    if prior == 1e9:
        torch.testing.assert_close(want, m(x), rtol=1e-4, atol=1e-4)


def test_prior_zero_is_plain_batch_statistics_and_default_unchanged():
    m, x = net(), torch.randn(32, 5)
    mixed, plain = methods.load("bn_adapt", prior=0.0), methods.load("bn_adapt")
    mixed.prepare(network_task(m))
    plain.prepare(network_task(m))
    batch = Batch.from_arrays(inputs=x)
    torch.testing.assert_close(mixed.process(batch), plain.process(batch), rtol=1e-5, atol=1e-5)
    with pytest.raises(ShiftbenchError, match="not both"):
        methods.load("bn_adapt", prior=1.0, momentum=0.1)
    with pytest.raises(ShiftbenchError, match="not both"):
        methods.registry.get("bn_adapt").check_setting({"prior": 1.0, "momentum": 0.1})
