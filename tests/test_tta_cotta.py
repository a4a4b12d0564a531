"""CoTTA against its definition: a hand-written functional step (student, augmentation-averaged teacher, soft
cross-entropy, Adam, EMA teacher, stochastic restore), invariances, the shared augmentation chain, and numbers
produced by the authors' code on a tiny network."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.dataset import DataFacts, Split, UnlabelledSplit
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Task
from shiftbench.methods import _cotta_augment
from shiftbench.methods._cotta_augment import CoTTAAugmentation, PixelMap, pixel_map
from shiftbench.methods._cotta_teacher import soft_cross_entropy
from shiftbench.methods.cotta import CoTTA, source_confidence_threshold
from shiftbench.model import SourceModel, image_preprocess

EPS_BN = 1e-5


# --- the authors' code on a tiny network ----------------------------------------------------------------------

def tiny_net() -> nn.Module:
    """Conv-BN-ReLU-Linear-BN-ReLU-Linear with weights from a fixed formula (no RNG), 6x6 one-channel inputs."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(2 * 4 * 4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        for k, (name, t) in enumerate(net.state_dict().items()):
            if not t.is_floating_point():
                continue
            wave = torch.sin(torch.arange(t.numel(), dtype=torch.float32) * (0.7 + 0.45 * k) + k).view_as(t)
            t.copy_(1.0 + 0.5 * wave if name.endswith("running_var") else (1.5 if name.endswith("weight") else 0.5) * wave)
    return net.eval()


def tiny_batches(n: int = 3, size: int = 6, shift: float = 0.0) -> list[torch.Tensor]:
    return [2 * torch.cos(torch.arange(size * 36, dtype=torch.float32) * 0.37 * (b + 1) + b + shift).view(size, 1, 6, 6)
            for b in range(n)]


def checksum(t: torch.Tensor) -> list[float]:
    """Sum and index-weighted sum of a tensor's elements (catches a wrong element, not only a wrong total)."""
    f = t.detach().flatten().double()
    return [float(f.sum()), float((f * torch.arange(1, f.numel() + 1, dtype=torch.float64)).sum())]


def fixed_transform(x: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for the random augmentation (so the authors' code and ours see the same inputs)."""
    return torch.roll(x, 1, 3) * 0.8 + 0.1


# Produced by qinenergy/cotta at commit c212a204b32be4005092e4323105a24a29ad2952 (cifar/cotta.py, run on CPU
# with the project's torch 2.14: Tensor.cuda patched to the identity, cotta.get_tta_transforms patched to return
# fixed_transform, torch.rand patched to draw from torch.Generator().manual_seed(0)): tiny_net() set up by
# cotta.configure_model / collect_params, Adam(lr=1e-2, betas=(0.9, 0.999)), CoTTA(steps=1, mt_alpha=0.9,
# rst_m=0.3, ap=0.0 for "no_augmentation", ap=1.0 for "augmentation"), called on tiny_batches(); outputs are the
# returned logits per batch, student/teacher the checksum() of each trained parameter after the three batches.
# The biases of the conv and linear layers that feed a BatchNorm ("0.bias", "4.bias") are left out: their
# gradient is zero up to rounding, which Adam's normalisation turns into rounding-dependent steps (the outputs do
# not depend on them: BatchNorm removes them); the checksums' absolute tolerance of 1e-4 is below one Adam step
# (1e-2). Without augmentation only the first batch's logits are kept: after it the trajectory is rounding-driven
# (see the test).
OFFICIAL = {'augmentation': {'outputs': [[[-1.159649, 0.005800158, 0.5480219], [1.455285, -2.035933, 1.863857],
                               [3.430417, -4.144195, 3.947575], [1.785505, -2.211178, 1.87102],
                               [0.9504691, -1.000876, 0.3759679], [1.09838, -1.029373, 0.2829212]],
                              [[3.192639, -3.834932, 3.5958], [-0.03144413, -0.4160982, 0.2330576],
                               [1.361384, -1.659857, 1.236453], [0.8672456, -0.8896189, 0.2463516],
                               [3.272861, -3.922443, 3.684219], [-1.27026, 0.3584411, -0.01990476]],
                              [[1.523263, -1.326923, 0.434386], [-1.4239, 0.3023013, 0.2504656],
                               [3.884839, -4.693398, 4.566454], [1.008525, -1.194117, 0.6955707],
                               [0.309154, -0.4842387, 0.02695778], [1.668274, -2.13548, 1.851697]]],
                  'student': {'0.weight': [-0.03516099, -37.3594],
                              '1.bias': [-0.4268869, -0.8951247],
                              '1.weight': [0.7074131, 0.04665458],
                              '4.weight': [0.4680966, 16.50704],
                              '5.bias': [0.6386538, 2.483684],
                              '5.weight': [0.0405826, -3.842841],
                              '7.bias': [-0.3906528, -1.584205],
                              '7.weight': [3.082403, 23.00092]},
                  'teacher': {'0.weight': [-0.01657946, -37.24541],
                              '1.bias': [-0.4079772, -0.8809847],
                              '1.weight': [0.7039763, 0.04200006],
                              '4.weight': [0.2749119, -1.928665],
                              '5.bias': [0.6881827, 2.596983],
                              '5.weight': [0.06614047, -3.837555],
                              '7.bias': [-0.3887013, -1.602531],
                              '7.weight': [3.093655, 23.16067]}},
 'no_augmentation': {'outputs': [[
                                  [-1.485834, 0.486363, -0.0509786],
                                  [-0.2779051, -0.1959404, 0.05467132],
                                  [1.526078, -1.836598, 1.409302],
                                  [3.864598, -4.641793, 4.471375],
                                  [1.874362, -2.176608, 1.715608],
                                  [1.784748, -1.815019, 1.109088]]]}}


@pytest.fixture
def one_thread():
    """The authors' numbers were computed on one torch thread (as the runner computes every cell)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_matches_the_authors_code_with_augmentation(one_thread):
    want = OFFICIAL["augmentation"]
    cotta = CoTTA(tiny_net(), fixed_transform, torch.Generator().manual_seed(0), lr=1e-2, alpha=0.9, rst=0.3, ap=1.0)
    for x, logits in zip(tiny_batches(), want["outputs"]):
        torch.testing.assert_close(cotta(x), torch.tensor(logits), rtol=1e-5, atol=2e-6)
    teacher = dict(cotta.teacher.named_parameters())
    for name, value in want["student"].items():
        np.testing.assert_allclose(checksum(cotta.params[name]), value, rtol=1e-5, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(checksum(teacher[name]), want["teacher"][name], rtol=1e-5, atol=1e-4, err_msg=name)


def test_matches_the_authors_code_without_augmentation_where_the_update_is_not_rounding(one_thread):
    """Without augmentation the student is the teacher on the first batch, so the consistency loss's gradient
    (softmax(student) - softmax(teacher)) is zero up to rounding, and Adam's normalisation turns that rounding
    into steps of up to lr: after the first update the trajectory follows the machine's rounding (ours was 7e-3
    from the authors' recorded logits on the second batch on an AMD EPYC, and matched them on the machine that
    produced the numbers). What does not depend on it: the first batch's logits (batch statistics, before any update), and
    no parameter moving by more than one Adam step per batch from the source network."""
    want = OFFICIAL["no_augmentation"]
    source = dict(tiny_net().named_parameters())
    cotta = CoTTA(tiny_net(), fixed_transform, torch.Generator().manual_seed(0), lr=1e-2, alpha=0.9, rst=0.3, ap=0.0)
    batches = tiny_batches()
    torch.testing.assert_close(cotta(batches[0]), torch.tensor(want["outputs"][0]), rtol=1e-5, atol=2e-6)
    for x in batches[1:]:
        cotta(x)
    for name, param in cotta.params.items():
        assert (param.detach() - source[name].detach()).abs().max() <= len(batches) * 1e-2 * (1 + 1e-4), name


# --- a hand-written functional CoTTA step ---------------------------------------------------------------------

def small_net(seed: int = 0) -> nn.Module:
    """Conv-BN-ReLU-Linear-BN-ReLU-Linear; the layers feeding a BatchNorm have no bias (its gradient would be 0)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 6 * 6, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4))
    with torch.no_grad():
        for bn in (net[1], net[5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return net.eval()


TRAINED = ["0.weight", "1.weight", "1.bias", "4.weight", "5.weight", "5.bias", "7.weight", "7.bias"]


def batch_norm(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    dims = [0] + list(range(2, h.ndim))
    shape = [1, -1] + [1] * (h.ndim - 2)
    mean, var = h.mean(dims, keepdim=True), h.var(dims, unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + EPS_BN) * weight.view(shape) + bias.view(shape)


def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """small_net's function with batch statistics and the parameters ``p``."""
    h = torch.relu(batch_norm(nn.functional.conv2d(x, p["0.weight"], padding=1), p["1.weight"], p["1.bias"]))
    h = torch.relu(batch_norm(h.flatten(1) @ p["4.weight"].T, p["5.weight"], p["5.bias"]))
    return h @ p["7.weight"].T + p["7.bias"]


class Alternating:
    """Deterministic 'augmentations': the i-th call rolls the image by i pixels and scales it by 1 - 0.1 i."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.roll(x, self.calls, 3) * (1 - 0.1 * self.calls)


def hand_cotta(net: nn.Module, xs: list[torch.Tensor], lr: float, alpha: float, n_aug: int, ap: float):
    """Returned logits, student and teacher after CoTTA (no restore) on ``xs``, written out step by step."""
    source = {k: v.detach().clone() for k, v in net.named_parameters()}
    student, teacher = dict(source), dict(source)
    m = {k: torch.zeros_like(v) for k, v in source.items()}
    v = {k: torch.zeros_like(v) for k, v in source.items()}
    augment, outputs = Alternating(), []
    for t, x in enumerate(xs, start=1):
        with torch.no_grad():
            confidence = torch.softmax(forward(source, x), 1).max(1).values.mean()
            if confidence < ap:
                target = torch.stack([forward(teacher, augment(x)) for _ in range(n_aug)]).mean(0)
            else:
                target = forward(teacher, x)
        leaves = {k: p.clone().requires_grad_(True) for k, p in student.items()}
        s = forward(leaves, x)
        loss = -(torch.softmax(target, 1) * torch.log_softmax(s, 1)).sum(1).mean()
        grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            student[k] = student[k] - lr * (m[k] / (1 - 0.9 ** t)) / (torch.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
        teacher = {k: alpha * teacher[k] + (1 - alpha) * student[k] for k in teacher}
        outputs.append(target)
    return outputs, student, teacher


def small_batches(n: int = 3, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 1, 6, 6, generator=g) * 2 + 0.5 for _ in range(n)]


def test_steps_equal_the_hand_written_student_teacher_update():
    # ap 0.37 augments the first two batches only (the anchor's mean confidences are 0.363, 0.346, 0.379); not
    # augmenting the first batch would make its gradient zero up to rounding (the student is the teacher), which
    # Adam's first step turns into rounding-dependent +-lr steps. In float64, so that the two orders of the same
    # operations agree far below what a wrong step would change (in float32 they were 1.7e-6 apart on one CPU)
    net, xs = small_net().double(), [x.double() for x in small_batches(3, seed=3)]
    for ap, calls in ((1.0, 9), (0.37, 6)):
        want_out, want_student, want_teacher = hand_cotta(net, xs, lr=1e-2, alpha=0.8, n_aug=3, ap=ap)
        augment = Alternating()
        cotta = CoTTA(copy.deepcopy(net), augment, torch.Generator(), lr=1e-2, alpha=0.8, rst=0.0, ap=ap,
                      n_augmentations=3)
        for x, want in zip(xs, want_out):
            torch.testing.assert_close(cotta(x), want, rtol=1e-10, atol=1e-10)
        assert augment.calls == calls
        teacher = dict(cotta.teacher.named_parameters())
        for k in TRAINED:
            torch.testing.assert_close(cotta.params[k].detach(), want_student[k], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(teacher[k], want_teacher[k], rtol=1e-10, atol=1e-12)


def test_the_loss_is_the_cross_entropy_to_the_teachers_softmax_and_leaves_the_teacher_alone():
    student = torch.tensor([[1.0, 0.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 2.0, 0.0]], requires_grad=True)
    soft_cross_entropy(student, teacher).sum().backward()
    z = math.e + 1 + 1 / math.e  # softmax(student) = exp(s) / z; softmax(teacher) = (1, e^2, 1) / (2 + e^2)
    p = [1 / (2 + math.e ** 2), math.e ** 2 / (2 + math.e ** 2), 1 / (2 + math.e ** 2)]
    want = -sum(pk * (sk - math.log(z)) for pk, sk in zip(p, (1.0, 0.0, -1.0)))
    assert float(soft_cross_entropy(student, teacher).detach()) == pytest.approx(want, rel=1e-6)
    torch.testing.assert_close(student.grad, torch.softmax(student.detach(), 1) - torch.tensor([p]))
    assert teacher.grad is None


def test_the_anchor_confidence_decides_whether_to_augment():
    net, x = small_net(), small_batches(1)[0]
    with torch.no_grad():
        confidence = float(torch.softmax(forward(dict(net.named_parameters()), x), 1).max(1).values.mean())
    for ap, calls in ((confidence + 1e-4, 5), (confidence - 1e-4, 0)):
        augment = Alternating()
        CoTTA(copy.deepcopy(net), augment, torch.Generator(), ap=ap, n_augmentations=5)(x)
        assert augment.calls == calls


def test_without_augmentation_the_first_output_is_the_source_network_on_batch_statistics():
    net, x = small_net(), small_batches(1)[0]
    out = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), ap=0.0)(x)
    with torch.no_grad():
        torch.testing.assert_close(out, forward(dict(net.named_parameters()), x), rtol=1e-5, atol=1e-5)


def test_every_weight_and_bias_is_trained_and_batchnorm_keeps_no_running_statistics():
    net = small_net()
    cotta = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, rst=0.0, ap=1.0, n_augmentations=2)
    assert list(cotta.params) == TRAINED
    cotta(small_batches(1)[0])
    assert all(not torch.equal(cotta.params[k], p) for k, p in net.named_parameters())
    assert all(bn.running_mean is None and not bn.track_running_stats for bn in (cotta.model[1], cotta.model[5]))


def test_stochastic_restore_resets_the_masked_elements_after_the_teacher_update():
    net, x = small_net(), small_batches(1)[0]
    kept = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, alpha=0.8, rst=0.0, ap=1.0,
                 n_augmentations=2)
    restored = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator().manual_seed(5), lr=1e-2, alpha=0.8, rst=0.4,
                     ap=1.0, n_augmentations=2)
    torch.testing.assert_close(restored(x), kept(x))
    masks = torch.Generator().manual_seed(5)
    source = dict(net.named_parameters())
    restored_elements = 0
    for k in TRAINED:  # masks drawn in module order, one uniform per element
        mask = torch.rand(source[k].shape, generator=masks) < 0.4
        torch.testing.assert_close(restored.params[k], torch.where(mask, source[k], kept.params[k]))
        restored_elements += int(mask.sum())
    for a, b in zip(restored.teacher.parameters(), kept.teacher.parameters()):
        torch.testing.assert_close(a, b)  # the teacher averages the student before the restore
    assert 0.3 < restored_elements / sum(source[k].numel() for k in TRAINED) < 0.5


def test_restore_probability_one_keeps_the_student_at_the_source():
    net = small_net()
    cotta = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, alpha=0.5, rst=1.0, ap=1.0,
                  n_augmentations=2)
    for x in small_batches(2):
        cotta(x)
    for k, p in net.named_parameters():
        assert torch.equal(cotta.params[k], p)
    assert not torch.equal(cotta.teacher[7].weight, net[7].weight)


def test_episodic_restores_student_optimizer_and_teacher_before_each_batch():
    net, (x1, x2) = small_net(), small_batches(2)
    episodic = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, rst=0.0, ap=0.0, episodic=True)
    episodic(x1)
    fresh = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, rst=0.0, ap=0.0)
    torch.testing.assert_close(episodic(x2), fresh(x2))
    for a, b in zip([*episodic.model.parameters(), *episodic.teacher.parameters()],
                    [*fresh.model.parameters(), *fresh.teacher.parameters()]):
        torch.testing.assert_close(a, b)
    assert episodic.optimizer.state_dict()["state"][0]["step"] == 1


def test_several_steps_are_repeated_single_steps_on_the_batch():
    net, x = small_net(), small_batches(1)[0]
    twice = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, rst=0.0, ap=1.0, n_augmentations=2,
                  steps=2)
    once = CoTTA(copy.deepcopy(net), Alternating(), torch.Generator(), lr=1e-2, rst=0.0, ap=1.0, n_augmentations=2)
    once(x)
    torch.testing.assert_close(twice(x), once(x))


def test_the_threshold_recipe_is_the_5_percent_quantile_of_source_confidence_minus_0_05():
    confidence = np.linspace(0.5, 1.0, 21)  # numpy's linear quantile at 5%: 0.5 + 0.05 * 0.5
    probs = np.stack([confidence, 1 - confidence], 1)
    assert source_confidence_threshold(probs) == pytest.approx(0.525 - 0.05)


def test_bad_batches_are_refused_before_any_update():
    cotta = CoTTA(small_net(), Alternating(), torch.Generator())
    x = small_batches(1)[0]
    x[2, 0, 1, 1] = float("nan")
    with pytest.raises(ShiftbenchError, match="NaN"):
        cotta(x)
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        cotta(x[:1])
    with pytest.raises(ShiftbenchError, match="rst"):
        CoTTA(small_net(), Alternating(), torch.Generator(), rst=1.5)


# --- the shared augmentation chain ----------------------------------------------------------------------------

def test_pixel_map_inverts_the_model_preprocessing():
    task = image_task(tiny_net(), mean=0.3, std=0.2)
    pixels = pixel_map(task, "cotta")
    torch.testing.assert_close(pixels.offset.flatten(), torch.tensor([-1.5]))
    torch.testing.assert_close(pixels.scale.flatten(), torch.tensor([5.0]))
    raw = task.target.inputs(np.arange(4))
    torch.testing.assert_close(pixels.to_pixels(task.model.preprocess(raw)),
                               torch.as_tensor(raw, dtype=torch.float32).unsqueeze(1) / 255)


def test_pixel_map_refuses_a_preprocess_that_is_not_affine_per_channel():
    task = image_task(tiny_net())
    task.model.preprocess = lambda images: torch.as_tensor(np.asarray(images), dtype=torch.float32).unsqueeze(1) ** 2
    with pytest.raises(ShiftbenchError, match="not a per-channel increasing affine map"):
        pixel_map(task, "cotta")


def test_augmentation_is_one_draw_per_call_for_the_whole_batch_and_stays_in_pixel_range():
    img = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = img.expand(3, -1, -1, -1).clone()
    out = CoTTAAugmentation(PixelMap.identity(1), torch.Generator().manual_seed(1))(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert float((out[0] - out[1]).abs().max()) < 0.05  # same geometry and colour, only the per-pixel noise differs
    assert float((out[0] - img[0]).abs().mean()) > 0.01  # but it did augment


def test_the_padding_keeps_the_affine_fill_out_of_the_image():
    constant = torch.full((2, 1, 8, 8), 0.5)
    aug = CoTTAAugmentation(PixelMap.identity(1), torch.Generator().manual_seed(2))
    for _ in range(10):
        out = aug(constant)
        assert float(out.amax((1, 2, 3)).sub(out.amin((1, 2, 3))).max()) < 0.06  # constant up to the noise


def test_augmentation_draws_from_its_generator_only():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    pixels = PixelMap.identity(3)
    a = CoTTAAugmentation(pixels, torch.Generator().manual_seed(4))(x)
    torch.manual_seed(123)
    b = CoTTAAugmentation(pixels, torch.Generator().manual_seed(4))(x)
    c = CoTTAAugmentation(pixels, torch.Generator().manual_seed(5))(x)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_horizontal_flip_only_on_three_channel_images(monkeypatch):
    flips = []
    flip = _cotta_augment.TF.horizontal_flip
    monkeypatch.setattr(_cotta_augment.TF, "horizontal_flip", lambda img: flips.append(img.shape[1]) or flip(img))
    for channels in (1, 3):
        aug = CoTTAAugmentation(PixelMap.identity(channels), torch.Generator().manual_seed(0))
        for _ in range(20):
            aug(torch.rand(2, channels, 8, 8))
    assert 1 not in flips and 3 < flips.count(3) < 17


# --- the plugin -----------------------------------------------------------------------------------------------

class UncachedModel(SourceModel):
    """A source model whose outputs are computed on every call (no cache needed)."""

    def outputs(self, split, cache, batch_size: int = 512) -> dict[str, np.ndarray]:
        return self.forward_arrays(np.asarray(split.inputs()), batch_size)


def image_task(net: nn.Module, mean: float = 0.4, std: float = 0.3, n: int = 24, batch_size: int = 6,
               seed: int = 0) -> Task:
    """A task around ``net`` (last module the head) on random 6x6 uint8 images: a labelled ``id_val`` split and
    a target split streamed in batches of ``batch_size``; inputs normalised by ``mean``/``std``."""
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8) for name in ("id_val", "target")}
    preprocess = image_preprocess(6, 1, (mean,), (std,))
    model = UncachedModel("tiny", net[:-1], net[-1], preprocess, "tiny")
    id_val = Split("id_val", rng.integers(0, 3, n), pd.DataFrame(index=range(n)), x=images["id_val"])
    target = UnlabelledSplit("target", n, lambda index: images["target"][index], pd.DataFrame(index=range(n)))
    batches = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    return Task(3, target, batches, seed, model, None, {"id_val": id_val})


def test_plugin_threshold_defaults_to_the_recipe_on_id_val():
    task = image_task(tiny_net())
    plugin = methods.load("cotta")
    plugin.prepare(task)
    net = tiny_net()
    with torch.no_grad():
        probs = torch.softmax(net(task.model.preprocess(task.source_splits["id_val"].x)), 1).numpy()
    assert plugin.cotta.ap == pytest.approx(float(np.quantile(probs.max(1), 0.05)) - 0.05, abs=1e-6)
    fixed = methods.load("cotta", ap=0.5)
    fixed.prepare(task)
    assert fixed.cotta.ap == 0.5


def test_plugin_runs_the_lifecycle_deterministically_under_the_cell_seed():
    def run(seed: int) -> np.ndarray:
        return methods.load("cotta", ap=1.0, n_augmentations=4, rst=0.1).run(image_task(tiny_net(), seed=seed))

    first, again, other = run(0), run(0), run(1)
    assert first.shape == (24, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_plugin_is_not_applicable_to_tabular_inputs():
    plugin = methods.load("cotta")
    assert "not images" in plugin.not_applicable(None, DataFacts("blobs", "tabular", 3))
    assert plugin.not_applicable(None, DataFacts("digits", "image", 10)) is None
    assert set(type(plugin).grid) == {"alpha", "rst"}
    plugin.prepare(image_task(tiny_net()))
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        plugin.process(Batch.from_arrays(inputs=torch.zeros(1, 1, 6, 6)))
