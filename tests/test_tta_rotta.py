"""RoTTA against its definition: robust BatchNorm, the CSTU memory bank worked by hand, the time-weighted
EMA-teacher update as a hand-written functional step, invariances, and numbers produced by the authors' code on
a tiny network."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.dataset import DataFacts
from shiftbench.errors import ShiftbenchError
from shiftbench.methods.rotta import CategoryBalancedMemory, RobustBatchNorm, RoTTA, timeliness_weights
from test_tta_cotta import checksum, fixed_transform, image_task, tiny_batches, tiny_net

EPS_BN = 1e-5

# Produced by BIT-DA/RoTTA at commit 67e34c900cdd355fc07e55edd4c577ea7b8ebcc9 (core/adapter/rotta.py with
# core/utils/memory.py and bn_layers.py, run on CPU with the project's torch 2.14; Tensor.cuda patched to the
# identity, the core/adapter and core/utils __init__ files emptied to skip their yacs/logging imports,
# rotta.get_tta_transforms patched to return fixed_transform): RoTTA(cfg, tiny_net(), Adam(lr=1e-2,
# betas=(0.9, 0.999))) with MEMORY_SIZE 8, UPDATE_FREQUENCY 4, NU 0.2, ALPHA 0.1, LAMBDA_T = LAMBDA_U = 1,
# NUM_CLASS 3, called on tiny_batches(4) + tiny_batches(2, shift=0.5). outputs: the returned logits per batch;
# then the bank's occupancy per class, its items' ages / capacity and checksum()s (get_memory order), the
# checksum() of every parameter of student and teacher and of their RBN global statistics (source_mean/var there).
OFFICIAL = {'memory_ages': [3.875, 0.375, 0.125, 4.5, 1.625, 4.125, 4.0, 1.75],
 'memory_checksums': [[-2.734155, -175.6288], [3.756396, 77.74916], [-3.784571, -69.68586], [3.927362, 105.3109],
                      [2.95991, 54.74144], [-3.088374, 51.75017], [-3.992343, -84.93979], [-2.939674, -54.59029]],
 'memory_per_class': [3, 2, 3],
 'outputs': [[[-39.07336, 15.17749, 9.253015], [-5.503657, 0.9293702, 3.113962], [15.21187, -18.97304, 20.71477],
              [46.84829, -57.35718, 62.97596], [19.52036, -23.04573, 24.24709], [23.77137, -23.44538, 20.76549]],
             [[-1.830206, 0.6209612, 0.03426337], [4.319221, -4.664232, 4.059953], [-1.026012, 0.1096254, 0.2144998],
              [7.039993, -6.955592, 5.750534], [-2.213027, 0.7705873, 0.1290226], [5.015512, -5.011117, 4.031489]],
             [[0.9346246, -1.223893, 0.8211683], [1.418439, -1.587685, 1.03773], [1.167103, -1.221924, 0.5848993],
              [0.2728589, -0.5629383, 0.2104561], [1.771676, -1.980085, 1.439946], [1.723772, -1.682532, 0.9149994]],
             [[5.38805, -6.395509, 6.324197], [-0.01418078, -0.9733348, 1.287596], [7.065773, -8.470158, 8.640614],
              [-1.320774, -0.07799199, 0.870465], [8.186642, -9.854392, 10.18469], [-3.00498, 1.080123, 0.3250538]],
             [[-0.2150839, -0.1371191, -0.1213931], [0.7346549, -1.001125, 0.5922629], [3.09632, -3.591227, 3.217092],
              [2.43997, -2.88357, 2.511053], [2.168491, -2.235983, 1.53579], [1.5373, -1.571489, 0.8876883]],
             [[1.019382, -1.210366, 0.7103677], [0.1594162, -0.4567845, 0.1195305], [0.9568375, -1.031721, 0.4289833],
              [1.154859, -1.299867, 0.7471989], [0.2606292, -0.6301872, 0.352154], [1.238711, -1.45696, 0.9657848]]],
 'student': {'0.bias': [0.8391849, 1.257634],
             '0.weight': [-0.02405557, -37.33324],
             '1.bias': [-0.416151, -0.8488555],
             '1.weight': [0.5698914, -0.1449523],
             '4.bias': [0.4174656, 0.8382327],
             '4.weight': [0.2297236, -7.074395],
             '5.bias': [0.5134553, 2.070835],
             '5.weight': [0.08067039, -3.757641],
             '7.bias': [-0.3955632, -1.615518],
             '7.weight': [3.087158, 23.1659]},
 'student_stats': {'1.source_mean': [0.196503, 0.3859151],
                   '1.source_var': [37.6787, 56.68983],
                   '5.source_mean': [0.2729152, 0.9015254],
                   '5.source_var': [17.3119, 44.15204]},
 'teacher': {'0.bias': [0.8391849, 1.257634],
             '0.weight': [-0.02405539, -37.33324],
             '1.bias': [-0.40934, -0.8540883],
             '1.weight': [0.6170444, -0.0796876],
             '4.bias': [0.4174656, 0.8382328],
             '4.weight': [0.2297236, -7.074409],
             '5.bias': [0.5702687, 2.246414],
             '5.weight': [0.07208893, -3.793325],
             '7.bias': [-0.3955633, -1.615518],
             '7.weight': [3.087158, 23.1659]},
 'teacher_stats': {'1.source_mean': [0.241902, 0.4526397],
                   '1.source_var': [74.19547, 111.4408],
                   '5.source_mean': [0.4958415, 1.474631],
                   '5.source_var': [26.64443, 84.27819]}}


def test_matches_the_authors_code():
    rotta = RoTTA(tiny_net(), 3, fixed_transform, lr=1e-2, alpha=0.1, nu=0.2, memory_size=8, update_frequency=4)
    for x, logits in zip(tiny_batches(4) + tiny_batches(2, shift=0.5), OFFICIAL["outputs"]):
        torch.testing.assert_close(rotta(x), torch.tensor(logits), rtol=1e-5, atol=1e-5)
    held, ages = rotta.memory.contents()
    assert [len(items) for items in rotta.memory.items] == OFFICIAL["memory_per_class"]
    assert ages == OFFICIAL["memory_ages"]
    np.testing.assert_allclose([checksum(x) for x in held], OFFICIAL["memory_checksums"], rtol=1e-6, atol=1e-5)
    for network, params, stats in ((rotta.model, "student", "student_stats"), (rotta.teacher, "teacher", "teacher_stats")):
        for name, p in network.named_parameters():
            np.testing.assert_allclose(checksum(p), OFFICIAL[params][name], rtol=1e-5, atol=1e-5, err_msg=name)
        for name, b in network.named_buffers():
            official = name.replace("global_", "source_")
            np.testing.assert_allclose(checksum(b), OFFICIAL[stats][official], rtol=1e-5, atol=1e-5, err_msg=name)


# --- robust batch normalisation -------------------------------------------------------------------------------

def source_bn(channels: int = 3, dims: int = 2) -> nn.modules.batchnorm._BatchNorm:
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([1.5, 0.5, 4.0]))
        bn.weight.copy_(torch.tensor([1.2, 0.8, -0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return bn


def test_rbn_moves_its_global_statistics_towards_each_training_batch():
    x = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 + 1
    rbn = RobustBatchNorm(source_bn(), alpha=0.1).train()
    mean = 0.9 * torch.tensor([0.5, -1.0, 2.0]) + 0.1 * x.mean((0, 2, 3))
    var = 0.9 * torch.tensor([1.5, 0.5, 4.0]) + 0.1 * x.var((0, 2, 3), unbiased=False)
    want = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + EPS_BN) * rbn.weight.view(1, -1, 1, 1) \
        + rbn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(rbn(x), want)
    torch.testing.assert_close(rbn.global_mean, mean)
    torch.testing.assert_close(rbn.global_var, var)
    rbn.eval()  # eval: normalise with the global statistics, leave them as they are
    want = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + EPS_BN) * rbn.weight.view(1, -1, 1, 1) \
        + rbn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(rbn(x), want)
    torch.testing.assert_close(rbn.global_mean, mean)


def test_rbn_gradient_flows_through_the_batch_part_of_the_statistics():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    rbn = RobustBatchNorm(source_bn(dims=1), alpha=0.3).train()
    rbn(x).pow(2).sum().backward()
    leaf = x.detach().clone().requires_grad_(True)
    mean = 0.7 * torch.tensor([0.5, -1.0, 2.0]) + 0.3 * leaf.mean(0)
    var = 0.7 * torch.tensor([1.5, 0.5, 4.0]) + 0.3 * leaf.var(0, unbiased=False)
    ((leaf - mean) / torch.sqrt(var + EPS_BN) * rbn.weight.detach() + rbn.bias.detach()).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, leaf.grad)


def test_rbn_takes_any_batchnorm_rank_and_refuses_layers_without_running_statistics():
    rbn = RobustBatchNorm(source_bn(dims=3), alpha=0.05).train()
    assert rbn(torch.randn(2, 3, 2, 2, 2)).shape == (2, 3, 2, 2, 2)
    with pytest.raises(ShiftbenchError, match="running statistics"):
        RobustBatchNorm(nn.BatchNorm2d(3, track_running_stats=False), alpha=0.05)
    with pytest.raises(ShiftbenchError, match="affine BatchNorm"):
        RoTTA(nn.Sequential(nn.Flatten(), nn.Linear(36, 3)), 3, fixed_transform)


# --- the CSTU memory bank, worked by hand ---------------------------------------------------------------------

def score(age: int, uncertainty: float, capacity: int, n_classes: int = 2) -> float:
    return 1 / (1 + math.exp(-age / capacity)) + uncertainty / math.log(n_classes)


def state(bank: CategoryBalancedMemory) -> list[list[tuple[float, int]]]:
    return [[(item.uncertainty, item.age) for item in items] for items in bank.items]


def test_a_class_at_its_quota_evicts_its_own_highest_scoring_item_only_for_a_better_newcomer():
    bank = CategoryBalancedMemory(capacity=4, n_classes=2)  # quota 2 per class
    bank.add(torch.zeros(1), 0, 0.1)
    bank.add(torch.zeros(1), 0, 0.1)
    assert state(bank) == [[(0.1, 2), (0.1, 1)], []]
    # class 0 is at its quota: its best candidate (age 2) scores 0.767 < the newcomer's 0.5 + 0.5 / log 2 = 1.221
    assert score(2, 0.1, 4) < score(0, 0.5, 4)
    bank.add(torch.zeros(1), 0, 0.5)
    assert state(bank) == [[(0.1, 3), (0.1, 2)], []]  # dropped, yet everyone aged
    assert score(3, 0.1, 4) > score(0, 0.0, 4)  # 0.824 > 0.5: the oldest goes
    bank.add(torch.ones(1), 0, 0.0)
    assert state(bank) == [[(0.1, 3), (0.0, 1)], []]
    held, ages = bank.contents()
    assert ages == [0.75, 0.25] and torch.equal(held[1], torch.ones(1))


def test_a_full_bank_makes_room_for_an_under_quota_class_from_the_majority_classes():
    bank = CategoryBalancedMemory(capacity=5, n_classes=2)  # quota 2.5: a class may hold 3
    for label in (0, 0, 0, 1, 1):
        bank.add(torch.zeros(1), label, 0.2)
    assert state(bank) == [[(0.2, 5), (0.2, 4), (0.2, 3)], [(0.2, 2), (0.2, 1)]]
    assert score(5, 0.2, 5) < score(0, 0.9, 5)  # class 0's oldest (1.020) does not beat 1.298: dropped
    bank.add(torch.zeros(1), 1, 0.9)
    assert state(bank) == [[(0.2, 6), (0.2, 5), (0.2, 4)], [(0.2, 3), (0.2, 2)]]
    bank.add(torch.zeros(1), 1, 0.0)  # 1.057 > 0.5: class 0's oldest makes room for class 1
    assert state(bank) == [[(0.2, 6), (0.2, 5)], [(0.2, 4), (0.2, 3), (0.0, 1)]]


def test_ties_evict_the_later_item_and_the_scores_weights_apply():
    bank = CategoryBalancedMemory(capacity=4, n_classes=2, lambda_t=0.0, lambda_u=1.0)
    bank.add(torch.zeros(1), 0, 0.3)
    bank.add(torch.ones(1), 0, 0.3)
    bank.add(torch.full((1,), 2.0), 0, 0.1)  # both hold 0.3 / log 2 > 0.1 / log 2: the later one goes
    assert state(bank) == [[(0.3, 3), (0.1, 1)], []]
    assert bank.score(7, 0.4) == pytest.approx(0.4 / math.log(2))
    assert CategoryBalancedMemory(8, 3, lambda_t=2.0, lambda_u=0.0).score(8, 0.9) == pytest.approx(2 / (1 + math.exp(-1)))


def test_timeliness_weights():
    torch.testing.assert_close(timeliness_weights([0.0, 1.0, 2.5]),
                               torch.tensor([0.5, 1 / (1 + math.e), math.exp(-2.5) / (1 + math.exp(-2.5))]))


# --- a hand-written functional update -------------------------------------------------------------------------

def rbn(h: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor], w: torch.Tensor, b: torch.Tensor, alpha: float,
        train: bool):
    """RBN written out: normalised output and the (possibly updated) global statistics."""
    dims, shape = [0] + list(range(2, h.ndim)), [1, -1] + [1] * (h.ndim - 2)
    mean, var = stats
    if train:
        mean = (1 - alpha) * mean + alpha * h.mean(dims)
        var = (1 - alpha) * var + alpha * h.var(dims, unbiased=False)
    out = (h - mean.view(shape)) / torch.sqrt(var.view(shape) + EPS_BN) * w.view(shape) + b.view(shape)
    return out, (mean.detach(), var.detach())


def forward(net: nn.Module, p: dict, stats: dict, x: torch.Tensor, alpha: float, train: bool):
    """tiny_net's function with RBN layers: the fixed conv/linear weights of ``net``, RBN parameters ``p``."""
    h = nn.functional.conv2d(x, net[0].weight, net[0].bias)
    h, s1 = rbn(h, stats[1], p["1.weight"], p["1.bias"], alpha, train)
    h = nn.functional.linear(torch.relu(h).flatten(1), net[4].weight, net[4].bias)
    h, s5 = rbn(h, stats[5], p["5.weight"], p["5.bias"], alpha, train)
    return nn.functional.linear(torch.relu(h), net[7].weight, net[7].bias), {1: s1, 5: s5}


def test_one_update_equals_the_hand_written_time_weighted_step():
    net, (x1, x2) = tiny_net(), tiny_batches(2)
    lr, alpha, nu = 1e-2, 0.1, 0.3
    rotta = RoTTA(copy.deepcopy(net), 3, fixed_transform, lr=lr, alpha=alpha, nu=nu, memory_size=64,
                  update_frequency=6)
    source = {k: getattr(net[int(k[0])], k[2:]).detach().clone() for k in ("1.weight", "1.bias", "5.weight", "5.bias")}
    stats = {i: (net[i].running_mean.clone(), net[i].running_var.clone()) for i in (1, 5)}
    with torch.no_grad():
        first, _ = forward(net, source, stats, x1, alpha, train=False)
    torch.testing.assert_close(rotta(x1), first)  # the teacher's output, before the update
    torch.testing.assert_close(first, net.eval()(x1))  # = the source network in eval mode
    # all six enter the bank (quota 64 / 3); ages 6..1 by arrival; the bank lists them class by class
    labels = first.argmax(1).tolist()
    order = sorted(range(6), key=lambda i: (labels[i], i))
    memory = x1[order]
    weights = torch.exp(-torch.tensor([(6 - i) / 64 for i in order])) / (1 + torch.exp(-torch.tensor([(6 - i) / 64 for i in order])))
    with torch.no_grad():
        target, teacher_stats = forward(net, source, stats, memory, alpha, train=True)
    leaves = {k: v.clone().requires_grad_(True) for k, v in source.items()}
    student_out, student_stats = forward(net, leaves, stats, fixed_transform(memory), alpha, train=True)
    loss = (-(torch.softmax(target, 1) * torch.log_softmax(student_out, 1)).sum(1) * weights).mean()
    grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
    student = {k: source[k] - lr * grads[k] / (grads[k].abs() + 1e-8) for k in source}  # Adam's first step
    teacher = {k: (1 - nu) * source[k] + nu * student[k] for k in source}
    for k in source:
        module = int(k[0])
        torch.testing.assert_close(getattr(rotta.model[module], k[2:]).detach(), student[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(getattr(rotta.teacher[module], k[2:]), teacher[k], rtol=1e-5, atol=1e-6)
    for i in (1, 5):
        torch.testing.assert_close(rotta.model[i].global_mean, student_stats[i][0])
        torch.testing.assert_close(rotta.teacher[i].global_var, teacher_stats[i][1])
    with torch.no_grad():  # the next batch: the teacher's new parameters and statistics, in eval mode
        second, _ = forward(net, teacher, teacher_stats, x2, alpha, train=False)
    torch.testing.assert_close(rotta(x2), second, rtol=1e-5, atol=1e-5)


# --- invariances ----------------------------------------------------------------------------------------------

def test_updates_fall_every_update_frequency_examples_of_the_stream_even_inside_a_batch(monkeypatch):
    rotta = RoTTA(tiny_net(), 3, fixed_transform, memory_size=8, update_frequency=4)
    seen_at_update = []
    update = rotta.update
    monkeypatch.setattr(rotta, "update", lambda: seen_at_update.append(rotta.seen) or update())
    for x in tiny_batches(2):
        rotta(x)
    assert seen_at_update == [4, 8, 12]


def test_no_update_before_update_frequency_examples_leaves_the_teacher_at_the_source():
    net = tiny_net()
    rotta = RoTTA(copy.deepcopy(net), 3, fixed_transform, update_frequency=100)
    for x in tiny_batches(3):
        torch.testing.assert_close(rotta(x), net.eval()(x))
    assert rotta.memory.occupancy() == 18


def test_only_rbn_affine_parameters_train_and_nu_zero_freezes_the_teacher_parameters():
    net = tiny_net()
    rotta = RoTTA(copy.deepcopy(net), 3, fixed_transform, lr=1e-2, nu=0.0, memory_size=8, update_frequency=4)
    for x in tiny_batches(3):
        rotta(x)
    student = dict(rotta.model.named_parameters())
    changed = {k for k, p in net.named_parameters() if not torch.equal(student[k], p)}
    assert changed == {"1.weight", "1.bias", "5.weight", "5.bias"}
    for k, p in rotta.teacher.named_parameters():
        assert torch.equal(p, dict(net.named_parameters())[k])
    assert not torch.equal(rotta.teacher[1].global_mean, net[1].running_mean)  # its statistics still move


# --- the plugin -----------------------------------------------------------------------------------------------

def test_plugin_runs_batches_of_one_deterministically_under_the_cell_seed():
    def run(seed: int, batch_size: int = 6) -> np.ndarray:
        plugin = methods.load("rotta", memory_size=8, update_frequency=4, nu=0.1)
        return plugin.run(image_task(tiny_net(), seed=seed, batch_size=batch_size))

    first, again, other = run(0), run(0), run(1)
    assert first.shape == (24, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)  # the strong augmentation draws differ
    single = run(0, batch_size=1)
    assert single.shape == (24, 3) and np.isfinite(single).all()


def test_plugin_refuses_nan_and_says_when_not_applicable():
    plugin = methods.load("rotta")
    plugin.prepare(image_task(tiny_net()))
    x = tiny_batches(1)[0]
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ShiftbenchError, match="NaN"):
        plugin.rotta(x)
    assert plugin.rotta.memory.occupancy() == 0

    class NoBatchNorm:
        name = "mlp"

        def has_batchnorm(self) -> bool:
            return False

    class WithBatchNorm(NoBatchNorm):
        def has_batchnorm(self) -> bool:
            return True

    assert "no BatchNorm" in plugin.not_applicable(NoBatchNorm(), DataFacts("digits", "image", 10))
    assert "not images" in plugin.not_applicable(WithBatchNorm(), DataFacts("blobs", "tabular", 3))
    assert plugin.not_applicable(WithBatchNorm(), DataFacts("digits", "image", 10)) is None
    assert set(type(plugin).grid) == {"alpha", "nu"}
