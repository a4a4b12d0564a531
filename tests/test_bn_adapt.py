"""BN-adapt normalises with each target batch's statistics, as its definition says."""

import torch
from torch import nn

from shiftbench.families import Batch
from shiftbench.methods._batchnorm import batchnorm_layers, use_batch_statistics
from shiftbench.methods.bn_adapt import BNAdapt
from tasks import network_task


def make_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    net[1].running_mean.fill_(5.0)
    net[1].running_var.fill_(9.0)
    net[1].weight.data.uniform_(0.5, 1.5)
    net[1].bias.data.uniform_(-1, 1)
    return net.eval()


def test_batch_statistics_replace_running_statistics():
    net = make_net()
    x = torch.randn(32, 4) * 3 + 1
    h = net[0](x)
    mean, var = h.mean(0), h.var(0, unbiased=False)
    expected = net[3](torch.relu((h - mean) / torch.sqrt(var + net[1].eps) * net[1].weight + net[1].bias))
    method = BNAdapt()
    method.prepare(network_task(make_net()))
    assert torch.allclose(method.process(Batch.from_arrays(inputs=x)), expected, atol=1e-5)


def test_output_of_a_batch_does_not_depend_on_earlier_batches():
    method = BNAdapt()
    method.prepare(network_task(make_net()))
    x1, x2 = Batch.from_arrays(inputs=torch.randn(16, 4)), Batch.from_arrays(inputs=torch.randn(16, 4) + 10)
    first = method.process(x1)
    method.process(x2)
    assert torch.allclose(method.process(x1), first)


def test_momentum_variant_tracks_a_running_estimate():
    net = make_net()
    method = BNAdapt(momentum=0.5)
    method.prepare(network_task(net))
    x = torch.randn(64, 4)
    method.process(Batch.from_arrays(inputs=x))
    h = net[0](x)
    expected_mean = 0.5 * 5.0 + 0.5 * h.mean(0)
    assert torch.allclose(batchnorm_layers(method.network)[0].running_mean, expected_mean, atol=1e-5)


def test_source_weights_are_untouched():
    net = make_net()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    use_batch_statistics(net)
    net(torch.randn(8, 4))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
