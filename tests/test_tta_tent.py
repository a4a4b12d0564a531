"""Tent against a hand-written functional forward pass, entropy gradient and Adam update."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch
from shiftbench.methods.tent import Tent
from tasks import network_task

EPS_BN = 1e-5


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5),
    )
    with torch.no_grad():  # non-trivial source statistics and affine parameters
        for bn in (net[1], net[5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return net.eval()


def batch_norm(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Normalisation with the batch's own (biased) statistics, then the affine map."""
    dims = [0] + list(range(2, h.ndim))
    shape = [1, -1] + [1] * (h.ndim - 2)
    mean = h.mean(dims, keepdim=True)
    var = h.var(dims, unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + EPS_BN) * weight.view(shape) + bias.view(shape)


def reference_forward(net: nn.Module, bn_params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``net``'s function with batch statistics, its BN affine parameters given explicitly."""
    h = nn.functional.conv2d(x, net[0].weight, net[0].bias, padding=1)
    h = torch.relu(batch_norm(h, bn_params[0], bn_params[1])).flatten(1)
    h = nn.functional.linear(h, net[4].weight, net[4].bias)
    h = torch.relu(batch_norm(h, bn_params[2], bn_params[3]))
    return nn.functional.linear(h, net[7].weight, net[7].bias)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, 1)
    return -(p * torch.log(p)).sum(1).mean()


def hand_adam(net: nn.Module, batches: list[torch.Tensor], lr: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Logits returned and BN parameters after Adam (0.9, 0.999, eps 1e-8) on the entropy, batch by batch."""
    params = [p.detach().clone() for p in (net[1].weight, net[1].bias, net[5].weight, net[5].bias)]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    outputs = []
    for t, x in enumerate(batches, start=1):
        leaves = [p.clone().requires_grad_(True) for p in params]
        logits = reference_forward(net, leaves, x)
        grads = torch.autograd.grad(entropy(logits), leaves)
        outputs.append(logits.detach())
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat, v_hat = m[i] / (1 - 0.9 ** t), v[i] / (1 - 0.999 ** t)
            params[i] = params[i] - lr * m_hat / (torch.sqrt(v_hat) + 1e-8)
    return outputs, params


def batches(n: int = 3, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 1, 6, 6, generator=g) * 2 + 0.5 for _ in range(n)]


def bn_affine(net: nn.Module) -> list[torch.Tensor]:
    return [net[1].weight, net[1].bias, net[5].weight, net[5].bias]


def test_only_batchnorm_affine_parameters_change():
    net = small_net()
    before = copy.deepcopy(net.state_dict())
    tent = Tent(net, lr=1e-2)
    tent(batches(1)[0])
    changed = {k for k, v in tent.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"1.weight", "1.bias", "5.weight", "5.bias"}
    assert {n for n, p in tent.model.named_parameters() if p.requires_grad} == changed


def test_returned_logits_come_from_the_forward_pass_before_the_update():
    net = small_net()
    x = batches(1)[0]
    with torch.no_grad():
        expected = reference_forward(net, [p.clone() for p in bn_affine(net)], x)
    tent = Tent(copy.deepcopy(net), lr=0.1)
    torch.testing.assert_close(tent(x), expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the parameters did move, so a second forward differs
        assert not torch.allclose(tent.model(x), expected, atol=1e-4)


def test_updates_equal_hand_computed_adam_steps_on_the_entropy():
    net = small_net()
    xs = batches(3)
    want_logits, want_params = hand_adam(net, xs, lr=1e-2)
    tent = Tent(copy.deepcopy(net), lr=1e-2)
    for x, want in zip(xs, want_logits):
        torch.testing.assert_close(tent(x), want, rtol=1e-5, atol=1e-5)
    for got, want in zip(bn_affine(tent.model), want_params):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


def test_several_steps_return_logits_before_the_last_update():
    net = small_net()
    x = batches(1)[0]
    want_logits, want_params = hand_adam(net, [x, x, x], lr=1e-2)
    tent = Tent(copy.deepcopy(net), lr=1e-2, steps=3)
    torch.testing.assert_close(tent(x), want_logits[-1], rtol=1e-5, atol=1e-5)
    for got, want in zip(bn_affine(tent.model), want_params):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


def test_episodic_resets_model_and_optimizer_before_each_batch():
    net = small_net()
    x1, x2 = batches(2)
    tent = Tent(copy.deepcopy(net), lr=1e-2, episodic=True)
    tent(x1)
    out2 = tent(x2)
    fresh = Tent(copy.deepcopy(net), lr=1e-2)
    torch.testing.assert_close(out2, fresh(x2))
    for a, b in zip(bn_affine(tent.model), bn_affine(fresh.model)):
        torch.testing.assert_close(a, b)
    assert tent.optimizer.state_dict()["state"][0]["step"] == 1  # Adam's moments restarted too


def test_batch_statistics_are_used_even_in_eval_mode_and_under_no_grad():
    net = small_net()
    x = batches(1)[0]
    tent = Tent(copy.deepcopy(net), lr=1e-3)
    tent.model.eval()
    with torch.no_grad():
        out = tent(x)
    with torch.no_grad():
        expected = reference_forward(net, [p.clone() for p in bn_affine(net)], x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_network_without_batchnorm_is_rejected():
    with pytest.raises(ShiftbenchError, match="BatchNorm"):
        Tent(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ShiftbenchError, match="steps must be an integer >= 1"):
        Tent(small_net(), steps=0)
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        Tent(small_net())(torch.randn(1, 1, 6, 6))


def test_plugin_prepare_and_process_follow_tent():
    plugin = methods.load("tent", lr=1e-2, steps=1)
    net = small_net()
    plugin.prepare(network_task(net))
    xs = batches(2)
    want, _ = hand_adam(net, xs, lr=1e-2)
    for x, w in zip(xs, want):
        torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=x)), w, rtol=1e-5, atol=1e-5)
    assert set(type(plugin).grid) == {"lr", "steps"}
