"""Pseudo-labelling against a hand-written confident-sample cross-entropy and SGD step on a tiny network."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch
from shiftbench.methods.pseudo_label import PseudoLabel, confident_pseudo_label_loss
from tasks import network_task
from test_tta_tent import batches, bn_affine, reference_forward, small_net


def test_loss_keeps_rows_above_the_threshold_and_averages_their_cross_entropy():
    logits = torch.tensor([[5.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [0.0, 0.0, 2.0]])
    loss, keep = confident_pseudo_label_loss(logits, 0.9)
    # top probabilities: e^5/(e^5+2) = 0.9867, 1/3, e^3/(e^3+2) = 0.9094, e^2/(e^2+2) = 0.7870
    assert keep.tolist() == [True, False, True, False]
    p0, p2 = math.exp(5) / (math.exp(5) + 2), math.exp(3) / (math.exp(3) + 2)
    assert loss.item() == pytest.approx(-(math.log(p0 + 1e-10) + math.log(p2 + 1e-10)) / 2, rel=1e-6)
    none, keep = confident_pseudo_label_loss(logits, 0.99)
    assert none is None and not keep.any()
    assert confident_pseudo_label_loss(logits, 0.78)[1].tolist() == [True, False, True, True]
    assert not confident_pseudo_label_loss(torch.zeros(1, 2), 0.5)[1].any()  # strictly above: p = 0.5 is not kept


def hand_sgd_step(net: nn.Module, x: torch.Tensor, lr: float, threshold: float):
    """Logits, kept mask and BN affine parameters after one plain SGD step on the confident cross-entropy."""
    leaves = [p.detach().clone().requires_grad_(True) for p in bn_affine(net)]
    logits = reference_forward(net, leaves, x)
    probs = torch.softmax(logits, 1)
    keep = probs.detach().max(1).values > threshold
    labels = probs.detach().argmax(1)
    loss = -torch.log(probs[keep, labels[keep]] + 1e-10).sum() / keep.sum()
    grads = torch.autograd.grad(loss, leaves)
    return logits.detach(), keep, [p.detach() - lr * g for p, g in zip(leaves, grads)]


def median_confidence(net: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        top = torch.softmax(reference_forward(net, [p.clone() for p in bn_affine(net)], x), 1).max(1).values
    return float(top.median())


def test_one_step_equals_the_hand_computed_sgd_step_on_the_confident_half():
    net = small_net()
    x = batches(1)[0]
    threshold = median_confidence(net, x)
    want_logits, keep, want_params = hand_sgd_step(net, x, lr=0.5, threshold=threshold)
    assert 0 < keep.sum() < len(x)  # some examples are filtered, some train
    pl = PseudoLabel(copy.deepcopy(net), lr=0.5, threshold=threshold)
    torch.testing.assert_close(pl(x), want_logits, rtol=1e-5, atol=1e-5)
    for got, want in zip(bn_affine(pl.model), want_params):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


def test_only_batchnorm_affine_parameters_change():
    net = small_net()
    before = copy.deepcopy(net.state_dict())
    pl = PseudoLabel(net, lr=0.5, threshold=0.0)
    pl(batches(1)[0])
    changed = {k for k, v in pl.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"1.weight", "1.bias", "5.weight", "5.bias"}


def test_no_update_when_no_example_is_confident():
    net = small_net()
    x1, x2 = batches(2)
    pl = PseudoLabel(copy.deepcopy(net), lr=0.5, threshold=1.0)
    pl(x1)
    for got, want in zip(bn_affine(pl.model), bn_affine(net)):
        assert torch.equal(got, want)
    with torch.no_grad():
        expected = reference_forward(net, [p.clone() for p in bn_affine(net)], x2)
    torch.testing.assert_close(pl(x2), expected, rtol=1e-5, atol=1e-5)


def test_plugin_follows_the_hand_step_batch_after_batch():
    net = small_net()
    xs = batches(2)
    plugin = methods.load("pseudo_label", lr=0.5, threshold=0.5)
    plugin.prepare(network_task(net))
    reference = copy.deepcopy(net)
    for x in xs:
        want_logits, _, want_params = hand_sgd_step(reference, x, lr=0.5, threshold=0.5)
        torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=x)), want_logits, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            for p, w in zip(bn_affine(reference), want_params):
                p.copy_(w)
    for got, want in zip(bn_affine(plugin.pl.model[0]), bn_affine(reference)):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-5, atol=1e-6)


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(ShiftbenchError, match="threshold"):
        PseudoLabel(small_net(), threshold=1.5)
    with pytest.raises(ShiftbenchError, match="BatchNorm"):
        PseudoLabel(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        PseudoLabel(small_net())(torch.randn(1, 1, 6, 6))
