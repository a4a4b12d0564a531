"""DeYO against a hand-written functional step (filters, PLPD, weights, SGD) and numbers from the authors' code."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.dataset import DataFacts, UnlabelledSplit
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Task
from shiftbench.methods.deyo import DeYO, patch_shuffle
from shiftbench.model import SourceModel
from test_tta_tent import batch_norm, small_net


def tiny_net(side: int) -> nn.Module:
    """Conv-BN2d-ReLU twice and a linear head on the flattened map (position-sensitive, so shuffling matters);
    weights 0.5 * N(0, 1) from a seeded generator, head x4 for confident predictions."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(2 * side * side, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        net[7].weight.mul_(4.0)
    return net


def tiny_inputs(side: int, n: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 1, side, side, generator=g) for _ in range(2)]


def affine(net: nn.Module) -> list[torch.Tensor]:
    return [net[1].weight, net[1].bias, net[4].weight, net[4].bias]


def tiny_forward(net: nn.Module, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``tiny_net``'s function with batch statistics, its BN affine parameters given explicitly."""
    h = torch.relu(batch_norm(nn.functional.conv2d(x, net[0].weight, net[0].bias, padding=1), params[0], params[1]))
    h = torch.relu(batch_norm(nn.functional.conv2d(h, net[3].weight, net[3].bias, padding=1), params[2], params[3]))
    return nn.functional.linear(h.flatten(1), net[7].weight, net[7].bias)


def hand_shuffle(x: torch.Tensor, grid: int, order: torch.Tensor) -> torch.Tensor:
    """Patch ``order[i, k]`` of image ``i`` (row-major patch index) moved to position ``k``; sides divisible by grid."""
    out = torch.empty_like(x)
    ph, pw = x.shape[2] // grid, x.shape[3] // grid
    for i in range(len(x)):
        for dst in range(grid * grid):
            (r, c), (sr, sc) = divmod(dst, grid), divmod(int(order[i, dst]), grid)
            out[i, :, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = x[i, :, sr * ph:(sr + 1) * ph, sc * pw:(sc + 1) * pw]
    return out


def hand_deyo_step(net: nn.Module, x: torch.Tensor, seed: int, lr: float, tau_ent: float = 0.5, ent_0: float = 0.4,
                   tau_plpd: float = 0.2, reweight: tuple[bool, bool] = (True, True)):
    """Logits, loss, kept indices (entropy filter, both filters) and parameters after DeYO's first SGD step
    (momentum's first step is a plain gradient step), from the paper's equations."""
    leaves = [p.detach().clone().requires_grad_(True) for p in affine(net)]
    logits = tiny_forward(net, leaves, x)
    k = logits.shape[1]
    p = torch.softmax(logits, 1)
    ent = -(p * torch.log(p)).sum(1)
    kept1 = [i for i in range(len(x)) if ent[i] < tau_ent * math.log(k)]
    torch.manual_seed(seed)
    order = torch.argsort(torch.rand(len(kept1), 16), dim=-1)
    with torch.no_grad():
        p_shuffled = torch.softmax(tiny_forward(net, leaves, hand_shuffle(x[kept1], 4, order)), 1)
    terms, kept2 = [], []
    for j, i in enumerate(kept1):
        c = int(p[i].argmax())
        plpd = float(p[i, c].detach() - p_shuffled[j, c])
        if plpd > tau_plpd:
            kept2.append(i)
            entropy_i = float(ent[i].detach())
            weight = reweight[0] * math.exp(-(entropy_i - ent_0 * math.log(k))) + reweight[1] * math.exp(plpd)
            terms.append(weight * ent[i] if any(reweight) else ent[i])
    loss = torch.stack(terms).mean()
    grads = torch.autograd.grad(loss, leaves)
    return logits.detach(), loss.detach(), kept1, kept2, [q.detach() - lr * g for q, g in zip(leaves, grads)]


def test_patch_shuffle_moves_whole_patches_in_the_order_drawn_from_torch():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    torch.manual_seed(5)
    got = patch_shuffle(x, 4)
    torch.manual_seed(5)
    order = torch.argsort(torch.rand(2, 16), dim=-1)
    torch.testing.assert_close(got, hand_shuffle(x, 4, order), rtol=0, atol=0)
    assert not torch.equal(got, x)
    assert torch.equal(patch_shuffle(x, 1), x)  # one patch: nothing moves


def test_patch_shuffle_of_a_28x28_digit_needs_no_resizing_and_keeps_its_pixels():
    x = torch.rand(3, 1, 28, 28)  # 4 x 4 patches of 7 x 7
    got = patch_shuffle(x, 4)
    assert torch.equal(got.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_patch_shuffle_resizes_sides_the_grid_does_not_divide_and_back():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 10, 10)
    torch.manual_seed(1)
    got = patch_shuffle(x, 4)
    down = nn.functional.interpolate(x, size=(8, 8), mode="bilinear", antialias=True, align_corners=False)
    torch.manual_seed(1)
    order = torch.argsort(torch.rand(2, 16), dim=-1)
    want = nn.functional.interpolate(hand_shuffle(down, 4, order), size=(10, 10), mode="bilinear", antialias=True,
                                     align_corners=False)
    torch.testing.assert_close(got, want)
    with pytest.raises(ShiftbenchError, match="cannot be cut into 4x4 patches"):
        patch_shuffle(torch.rand(1, 1, 3, 3), 4)


@pytest.mark.parametrize("reweight", [(True, True), (True, False), (False, True), (False, False)])
def test_one_step_equals_the_hand_computed_filters_weights_and_sgd_step(reweight):
    net = tiny_net(8)
    x = tiny_inputs(8)[0]
    want_logits, want_loss, kept1, kept2, want_params = hand_deyo_step(net, x, seed=7, lr=0.05, reweight=reweight)
    assert 0 < len(kept2) < len(kept1) < len(x)  # both filters drop some examples and keep some
    deyo = DeYO(copy.deepcopy(net), lr=0.05, reweight_ent=reweight[0], reweight_plpd=reweight[1])
    logits = deyo.model(x)
    torch.manual_seed(7)
    torch.testing.assert_close(deyo.loss(x, logits).detach(), want_loss, rtol=1e-5, atol=1e-6)
    assert deyo.kept_entropy.tolist() == kept1 and deyo.kept_both.tolist() == kept2
    fresh = DeYO(copy.deepcopy(net), lr=0.05, reweight_ent=reweight[0], reweight_plpd=reweight[1])
    torch.manual_seed(7)
    torch.testing.assert_close(fresh(x), want_logits, rtol=1e-5, atol=1e-5)
    for got, want in zip(affine(fresh.model), want_params):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


# Jhyun17/DeYO at commit 3d7d289, methods/deyo.py: configure_model, collect_params and forward_and_adapt_deyo
# (args: patch aug, patch_len 4, both filters and both weights on, tau_Ent 0.5 ln 4, Ent_0 0.4 ln 4,
# tau_PLPD 0.2), SGD(lr 0.05, momentum 0.9), on tiny_net(side) and the two tiny_inputs(side) batches,
# torch.manual_seed(100 + t) before batch t; run on CPU, torch 2.14.1, torchvision 0.29.1 (einops 0.8.2).
# Examples kept by the entropy filter and by both filters per batch, and the BN affine parameters after both.
OFFICIAL = {
    8: {"kept_entropy": [12, 15], "kept_both": [6, 2],
        "params": [[0.5585708, 0.6530488, -0.1488956], [-0.723981, -0.7893928, 0.9517446],
                   [-1.2000835, 0.0304356], [-0.2392489, -0.8936673]]},
    10: {"kept_entropy": [11, 15], "kept_both": [7, 10],  # 10x10: resized to 8x8 for the shuffle, and back
         "params": [[1.0472078, 0.1703371, 0.4647844], [-0.4562173, -1.0323681, 0.7854347],
                    [-1.3434309, -0.1049004], [0.0326653, -0.8432318]]},
}


@pytest.mark.parametrize("side", [8, 10])
def test_two_batches_match_the_authors_code(side):
    deyo = DeYO(tiny_net(side), lr=0.05)
    kept_entropy, kept_both = [], []
    for t, x in enumerate(tiny_inputs(side)):
        torch.manual_seed(100 + t)
        deyo(x)
        kept_entropy.append(len(deyo.kept_entropy))
        kept_both.append(len(deyo.kept_both))
    assert kept_entropy == OFFICIAL[side]["kept_entropy"] and kept_both == OFFICIAL[side]["kept_both"]
    for got, want in zip(affine(deyo.model), OFFICIAL[side]["params"]):
        torch.testing.assert_close(got.detach(), torch.tensor(want), rtol=0, atol=2e-6)


def test_only_norm_affine_parameters_change():
    net = tiny_net(8)
    before = copy.deepcopy(net.state_dict())
    deyo = DeYO(net, lr=0.05)
    deyo(tiny_inputs(8)[0])
    changed = {k for k, v in deyo.model.state_dict().items() if k in before and not torch.equal(v, before[k])}
    assert changed == {"1.weight", "1.bias", "4.weight", "4.bias"}
    assert {n for n, p in deyo.model.named_parameters() if p.requires_grad} == changed
    assert all(bn.running_mean is None for bn in (deyo.model[1], deyo.model[4]))  # batch statistics only


@pytest.mark.parametrize("setting", [{"entropy_margin": 1e-6}, {"plpd_threshold": 1.0}])
def test_no_update_when_a_filter_keeps_nothing(setting):
    net = tiny_net(8)
    x = tiny_inputs(8)[0]
    deyo = DeYO(copy.deepcopy(net), lr=0.05, **setting)
    with torch.no_grad():
        want = tiny_forward(net, [p.clone() for p in affine(net)], x)
    torch.testing.assert_close(deyo(x), want, rtol=1e-5, atol=1e-5)
    assert len(deyo.kept_both) == 0
    for got, before in zip(affine(deyo.model), affine(net)):
        assert torch.equal(got, before)
    assert deyo.optimizer.state_dict()["state"] == {}


def test_episodic_resets_model_and_optimizer_before_each_batch():
    net = tiny_net(8)
    x1, x2 = tiny_inputs(8)
    deyo = DeYO(copy.deepcopy(net), lr=0.05, episodic=True)
    torch.manual_seed(0)
    deyo(x1)
    torch.manual_seed(1)
    out = deyo(x2)
    fresh = DeYO(copy.deepcopy(net), lr=0.05)
    torch.manual_seed(1)
    torch.testing.assert_close(out, fresh(x2))
    for a, b in zip(affine(deyo.model), affine(fresh.model)):
        torch.testing.assert_close(a, b)


def test_a_lone_confident_example_makes_no_update_through_batchnorm1d():
    net = small_net()  # BatchNorm2d and BatchNorm1d
    x = torch.randn(4, 1, 6, 6)
    probe = DeYO(copy.deepcopy(net), lr=0.05)
    with torch.no_grad():
        entropy = (lambda p: -(p * p.log()).sum(1))(torch.softmax(probe.model(x), 1)) / math.log(5)
    margin = float(entropy.sort().values[:2].mean())  # exactly one example passes the entropy filter
    deyo = DeYO(copy.deepcopy(net), lr=0.05, entropy_margin=margin)
    deyo(x)
    assert len(deyo.kept_entropy) == 1 and len(deyo.kept_both) == 0
    assert all(torch.equal(a, b) for a, b in zip(deyo.model.parameters(), net.parameters()))


def image_task(network: nn.Module, n_classes: int, images: torch.Tensor | None = None, batch_size: int = 8,
               seed: int = 0) -> Task:
    """A task around ``network`` whose target stream is ``images`` (as given: preprocessing is the identity) in
    consecutive batches; without images only ``prepare`` may be called."""
    model = SourceModel("tiny", network, nn.Identity(), preprocess=lambda x: x, fingerprint="tiny")
    if images is None:
        return Task(n_classes=n_classes, target=None, batches=[], seed=seed, model=model, cache=None)
    n = len(images)
    target = UnlabelledSplit("target", n, lambda index: images[index], pd.DataFrame(index=range(n)))
    batches = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    return Task(n_classes=n_classes, target=target, batches=batches, seed=seed, model=model, cache=None)


def test_lifecycle_is_deterministic_under_the_cell_seed_and_refuses_nan_images():
    images = torch.cat(tiny_inputs(8))
    runs = [methods.load("deyo", lr=0.05).run(image_task(tiny_net(8), 4, images, seed=3)) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1]) and runs[0].shape == (32, 4)
    assert not np.array_equal(runs[0], methods.load("deyo", lr=0.05).run(image_task(tiny_net(8), 4, images, seed=4)))
    bad = images.clone()
    bad[3, 0, 2, 2] = float("nan")
    with pytest.raises(ShiftbenchError, match="NaN|finite"):
        methods.load("deyo").run(image_task(tiny_net(8), 4, bad))


def test_plugin_follows_deyo_and_refuses_what_it_cannot_run():
    net = tiny_net(8)
    plugin = methods.load("deyo", lr=0.05)
    plugin.prepare(image_task(copy.deepcopy(net), 4))
    reference = DeYO(copy.deepcopy(net), lr=0.05)
    for t, x in enumerate(tiny_inputs(8)):
        torch.manual_seed(t)
        got = plugin.process(Batch.from_arrays(inputs=x))
        torch.manual_seed(t)
        torch.testing.assert_close(got, reference(x))
    model = SourceModel("tiny", tiny_net(8), nn.Identity(), preprocess=lambda x: x, fingerprint="tiny")
    assert "image patches" in plugin.not_applicable(model, DataFacts("blobs", "tabular", 3))
    assert plugin.not_applicable(model, DataFacts("digits", "image", 10)) is None
    bare = SourceModel("mlp", nn.Sequential(nn.Linear(3, 2)), nn.Identity(), preprocess=lambda x: x, fingerprint="m")
    assert "normalisation" in plugin.not_applicable(bare, DataFacts("digits", "image", 10))
    with pytest.raises(ShiftbenchError, match="image batches"):
        DeYO(tiny_net(8))(torch.randn(4, 64))
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        DeYO(tiny_net(8))(torch.randn(1, 1, 8, 8))
    with pytest.raises(ShiftbenchError, match="optimizer"):
        DeYO(tiny_net(8), optimizer="rmsprop")
