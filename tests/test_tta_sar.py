"""SAR against a hand-written sharpness-aware step, its recovery rule, invariances, and the authors' numbers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch
from shiftbench.methods.sar import SAR, configure_for_sar
from shiftbench.model import SourceModel
from tasks import network_task
from test_tta_tent import batches, bn_affine, reference_forward, small_net

E0 = 0.4 * math.log(5)

# Produced by the official code, mr-eggplant/SAR at 20f6e24b17525f34503510afccedc0629b67b7c4 (sar.py's SAR and
# forward_and_adapt_sar, sam.py's SAM around SGD momentum 0.9), torch 2.14.1 CPU float32: small_net with its head
# scaled by `scale`, configured by sar.configure_model (its BatchNorm1d given the same batch-statistics treatment),
# margin_e0 0.4 ln 5, rho 0.05, its fixed recovery threshold 0.2. "sar": scale 4, lr 0.05, batches(4), the BN affine
# parameters after the last batch; "recovery": scale 10, lr 0.5, batches(6) (the model is reset after batches 2-6),
# the parameters after the first batch. ema: the moving average after each batch.
SAR_REFERENCE = {
    "sar": {"scale": 4.0, "lr": 0.05, "n": 4,
            "ema": [0.38967407, 0.39625767, 0.38773812, 0.36918914],
            "params": [[0.55097556, 1.2900993, 1.1891838, 1.3431422],
                       [-0.49477637, 0.33858165, 0.36737409, -0.51776308],
                       [1.2474364, 1.355708, 1.4340231, 0.61206275, 0.94067991, 1.0692558, 1.1661042, 1.30724],
                       [-0.18317789, -0.12746187, 0.51649153, -0.16410013, -0.36206463, 0.34401903, 0.35014534,
                        -0.11235047]]},
    "recovery": {"scale": 10.0, "lr": 0.5, "n": 6,
                 "ema": [0.20465355, 0.19733733, 0.19418201, 0.19685285, 0.19263555, 0.19657686],
                 "params_after_first": [[0.48171949, 1.226367, 1.273917, 1.3319045],
                                        [-0.52713799, 0.34693635, 0.37748751, -0.54706967],
                                        [1.2839043, 1.4007051, 1.3876548, 0.6585564, 0.97728676, 1.0335214,
                                         1.1147671, 1.2751781],
                                        [-0.13412464, -0.11085567, 0.44022623, -0.12128596, -0.31387052,
                                         0.29103476, 0.23964751, -0.12754729]]},
}


def scaled_net(scale: float = 4.0) -> nn.Module:
    """``small_net`` with its head scaled, so that some samples fall under E0 = 0.4 ln 5."""
    net = small_net()
    with torch.no_grad():
        net[7].weight.mul_(scale)
    return net


def entropies(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, 1)
    return -(p * torch.log(p)).sum(1)


def mean_or_zero_grad(loss_terms: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    if len(loss_terms) == 0:
        return [torch.zeros_like(p) for p in leaves]
    return list(torch.autograd.grad(loss_terms.mean(), leaves))


def hand_sar(net: nn.Module, xs: list[torch.Tensor], lr: float, rho: float = 0.05):
    """SAR without recovery written out: per batch the two masks and the loss, and the final BN parameters."""
    params = [p.detach().clone() for p in bn_affine(net)]
    buf = [None] * len(params)
    record = []
    for x in xs:
        leaves = [p.clone().requires_grad_(True) for p in params]
        ent = entropies(reference_forward(net, leaves, x))
        first = ent < E0
        g = mean_or_zero_grad(ent[first], leaves)
        norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
        perturbed = [(p + rho * gi / (norm + 1e-12)).detach().requires_grad_(True) for p, gi in zip(params, g)]
        ent2 = entropies(reference_forward(net, perturbed, x))[first]
        second = ent2 < E0
        g2 = mean_or_zero_grad(ent2[second], perturbed)
        for i, gi in enumerate(g2):
            buf[i] = gi if buf[i] is None else 0.9 * buf[i] + gi
            params[i] = params[i] - lr * buf[i]
        both = first.clone()
        both[first] = second
        record.append((first, both, float(ent2[second].detach().mean()) if second.any() else None))
    return record, params


def test_steps_equal_the_hand_written_sharpness_aware_update():
    net = scaled_net()
    xs = batches(3)
    record, want = hand_sar(net, xs, lr=0.05)
    sar = SAR(copy.deepcopy(net), lr=0.05, reset_constant=0.0)
    ema = None
    for x, (first, both, loss) in zip(xs, record):
        sar(x)
        assert torch.equal(sar.reliable, first) and torch.equal(sar.reliable_perturbed, both)
        ema = loss if ema is None else 0.9 * ema + 0.1 * loss
        assert sar.ema == pytest.approx(ema, rel=1e-5)
    assert 0 < int(record[0][1].sum()) < int(record[0][0].sum()) < 16  # the second filter drops some samples
    for got, w in zip(sar.params, want):
        torch.testing.assert_close(got.detach(), w, rtol=1e-5, atol=1e-6)


def test_matches_numbers_from_the_authors_code():
    ref = SAR_REFERENCE["sar"]
    sar = SAR(scaled_net(ref["scale"]), lr=ref["lr"])
    emas = []
    for x in batches(ref["n"]):
        sar(x)
        emas.append(sar.ema)
    assert emas == pytest.approx(ref["ema"], rel=1e-6) and sar.recoveries == 0
    for got, want in zip(sar.params, ref["params"]):
        torch.testing.assert_close(got.detach(), torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_recovery_matches_the_authors_code_and_keeps_the_loss_average():
    ref = SAR_REFERENCE["recovery"]
    net = scaled_net(ref["scale"])
    sar = SAR(copy.deepcopy(net), lr=ref["lr"])
    emas, recovered = [], []
    for i, x in enumerate(batches(ref["n"])):
        sar(x)
        emas.append(sar.ema)
        recovered.append(sar.recoveries)
        if i == 0:
            for got, want in zip(sar.params, ref["params_after_first"]):
                torch.testing.assert_close(got.detach(), torch.tensor(want), rtol=1e-5, atol=1e-6)
    assert emas == pytest.approx(ref["ema"], rel=1e-6)
    assert recovered == [0, 1, 2, 3, 4, 5]  # a reset after every batch whose average ends under 0.2
    for got, want in zip(sar.params, bn_affine(net)):  # the last batch ended with a reset: the source model
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=0)
    assert sar.optimizer.state_dict()["state"] == {}


def test_recovery_restores_the_source_and_the_next_average_continues():
    net = scaled_net()
    x1, x2 = batches(2)
    record, _ = hand_sar(net, [x1, x2], lr=0.05)
    sar = SAR(copy.deepcopy(net), lr=0.05, reset_constant=10.0)  # every average is below 10: reset each batch
    sar(x1)
    assert sar.recoveries == 1 and sar.ema == pytest.approx(record[0][2], rel=1e-5)
    for got, want in zip(sar.params, bn_affine(net)):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=0)
    sar(x2)  # from the source model again, so its loss is the hand-written first-step loss on x2
    fresh_record, _ = hand_sar(net, [x2], lr=0.05)
    assert sar.ema == pytest.approx(0.9 * record[0][2] + 0.1 * fresh_record[0][2], rel=1e-5)


def test_no_reliable_sample_means_a_zero_gradient_and_only_momentum_moves():
    sar = SAR(scaled_net(), lr=0.05, e0_ratio=1e-6)
    start = [p.detach().clone() for p in sar.params]
    sar(batches(1)[0])
    assert not sar.reliable.any() and sar.ema is None
    for got, want in zip(sar.params, start):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=0)
    sar = SAR(scaled_net(), lr=0.05)
    x1, x2 = batches(2)
    sar(x1)
    before = [p.detach().clone() for p in sar.params]
    momentum = [sar.optimizer.state[p]["momentum_buffer"].clone() for p in sar.params]
    ema = sar.ema
    sar.e0_ratio = 1e-6
    sar(x2)
    assert sar.ema == ema
    for got, b, m in zip(sar.params, before, momentum):  # as in the authors' code: SGD's step with zero gradient
        torch.testing.assert_close(got.detach(), b - 0.05 * 0.9 * m, rtol=1e-6, atol=1e-7)


def test_episodic_restores_the_source_before_each_batch():
    x1, x2 = batches(2)
    sar = SAR(scaled_net(), lr=0.05, episodic=True)
    sar(x1)
    out = sar(x2)
    fresh = SAR(scaled_net(), lr=0.05)
    torch.testing.assert_close(out, fresh(x2))
    for a, b in zip(sar.params, fresh.params):
        torch.testing.assert_close(a, b)
    assert sar.ema == fresh.ema


def test_logits_precede_the_update_and_only_trained_parameters_change():
    net = scaled_net()
    x = batches(1)[0]
    with torch.no_grad():
        want = reference_forward(net, [p.clone() for p in bn_affine(net)], x)
    sar = SAR(copy.deepcopy(net), lr=0.05)
    before = copy.deepcopy(sar.model.state_dict())
    torch.testing.assert_close(sar(x), want, rtol=1e-5, atol=1e-5)
    changed = {k for k, v in sar.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"1.weight", "1.bias", "5.weight", "5.bias"}


class Named(nn.Module):
    """A network whose module names follow the authors' ResNet and ViT conventions."""

    def __init__(self):
        super().__init__()
        self.layer3 = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        self.layer4 = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
        self.blocks = nn.Sequential(*[nn.LayerNorm(2) for _ in range(12)])
        self.norm = nn.LayerNorm(2)
        self.gn = nn.GroupNorm(1, 2)


def test_the_authors_top_layers_stay_frozen():
    net = nn.Sequential(Named(), nn.Identity())
    params = configure_for_sar(net, prefix="0.")
    names = {n for n, p in net.named_parameters() if any(p is q for q in params)}
    assert names == {"0.layer3.1.weight", "0.layer3.1.bias", "0.gn.weight", "0.gn.bias",
                     *(f"0.blocks.{i}.{w}" for i in range(9) for w in ("weight", "bias"))}
    assert {n for n, p in net.named_parameters() if p.requires_grad} == names
    assert net[0].layer4[1].running_mean is None  # frozen affine parameters, yet batch statistics


def test_networks_without_batchnorm_adapt_on_single_examples():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 5))
    with torch.no_grad():
        net[7].weight.mul_(20.0)
    sar = SAR(net, lr=0.05, e0_ratio=0.9)
    before = [p.detach().clone() for p in sar.params]
    x = batches(1)[0][:1]
    out = sar(x)
    assert out.shape == (1, 5) and sar.reliable.all()
    assert any(not torch.equal(a.detach(), b) for a, b in zip(sar.params, before))
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        SAR(small_net())(x)


def test_plugin_follows_the_wrapper_and_refuses_what_it_cannot_run():
    plugin = methods.load("sar", lr=0.05)
    net = scaled_net()
    plugin.prepare(network_task(copy.deepcopy(net)))
    ref = SAR(copy.deepcopy(net), lr=0.05)
    for x in batches(2):
        torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=x)), ref(x))
    assert set(type(plugin).grid) == {"lr"}
    defaults = methods.load("sar")
    assert (defaults.lr, defaults.rho, defaults.e0_ratio, defaults.reset_constant) == (0.00025, 0.05, 0.4, 0.2)
    mlp = SourceModel("mlp", nn.Linear(3, 4), nn.Linear(4, 2), preprocess=torch.as_tensor, fingerprint="mlp")
    assert "no normalisation layers" in defaults.not_applicable(mlp, None)
    with pytest.raises(ShiftbenchError, match="affine normalisation"):
        SAR(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ShiftbenchError, match="rho"):
        SAR(small_net(), rho=0)
