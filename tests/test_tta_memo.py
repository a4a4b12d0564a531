"""MEMO against hand-written marginal entropy, BatchNorm prior statistics and SGD step, and numbers from the
authors' code (AugMix views and adapted logits)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from shiftbench import methods
from shiftbench.dataset import DataFacts, UnlabelledSplit
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Task
from shiftbench.methods._memo_augmix import PixelRange, augmix
from shiftbench.methods.memo import MEMO, marginal_entropy, pixel_range, use_prior_statistics
from shiftbench.model import SourceModel, image_preprocess

UNIT = PixelRange(-torch.ones(3), torch.ones(3))  # ToTensor + Normalize(0.5, 0.5), the authors' CIFAR inputs


def rgb_image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (32, 32, 3)).astype(np.uint8), "RGB")


def as_input(image: Image.Image) -> torch.Tensor:
    """ToTensor + Normalize(0.5, 0.5)."""
    return torch.as_tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1) / 255.0 * 2 - 1


def tiny_net() -> nn.Module:
    """Conv-BN2d-ReLU-AvgPool and a linear head, 5 classes; weights 0.5 * N(0, 1), non-trivial source statistics."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(4),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        net[1].running_mean.copy_(torch.randn(4, generator=g) * 0.2)
        net[1].running_var.copy_(torch.rand(4, generator=g) + 0.5)
    return net


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def prior_forward(net: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor,
                  prior: float | None) -> torch.Tensor:
    """``tiny_net``'s function with parameters given, its BatchNorm2d on ``prior`` x source + (1 - prior) x the
    batch's (detached) mean and unbiased variance (``None``: source statistics)."""
    h = nn.functional.conv2d(x, params["0.weight"], params["0.bias"], padding=1)
    mean, var = net[1].running_mean, net[1].running_var
    if prior is not None:
        flat = h.detach().transpose(0, 1).reshape(4, -1)
        mean, var = prior * mean + (1 - prior) * flat.mean(1), prior * var + (1 - prior) * flat.var(1, unbiased=True)
    h = (h - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    h = torch.relu(h * params["1.weight"].view(1, -1, 1, 1) + params["1.bias"].view(1, -1, 1, 1))
    h = nn.functional.avg_pool2d(h, 4).flatten(1)
    return nn.functional.linear(h, params["5.weight"], params["5.bias"])


def test_marginal_entropy_is_the_entropy_of_the_mean_softmax():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-3.0, 0.5, 4.0], [1.0, 1.0, 1.0]])
    p_bar = torch.softmax(logits, 1).mean(0)
    loss, log_mean = marginal_entropy(logits)
    assert loss.item() == pytest.approx(float(-(p_bar * p_bar.log()).sum()), rel=1e-6)
    torch.testing.assert_close(log_mean, p_bar.log())
    one = logits[:1]
    p = torch.softmax(one, 1)[0]
    assert marginal_entropy(one)[0].item() == pytest.approx(float(-(p * p.log()).sum()), rel=1e-6)
    assert marginal_entropy(one.repeat(5, 1))[0].item() == pytest.approx(marginal_entropy(one)[0].item(), rel=1e-6)
    assert marginal_entropy(torch.tensor([[0.0, 0.0], [0.0, 0.0]]))[0].item() == pytest.approx(math.log(2))
    assert torch.isfinite(marginal_entropy(torch.tensor([[0.0, -1e5], [0.0, -1e5]]))[0])  # log p_bar clamped


@pytest.mark.parametrize("strength", [16.0, 0.0])
def test_batchnorm2d_mixes_source_and_unbiased_batch_statistics_without_gradient(strength):
    net = tiny_net()
    use_prior_statistics(net, strength)
    net.eval()
    x = noise(6, 3, 32, 32) * 1.5 + 0.3
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    want = prior_forward(net, params, x, strength / (strength + 1))
    got = net(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(want.square().sum(), list(params.values()))
    got.square().sum().backward()
    for (name, p), g in zip(net.named_parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5 * float(g.abs().max()), msg=name)
    torch.testing.assert_close(net(x[:1]), prior_forward(net, params, x[:1], strength / (strength + 1)).detach(),
                               rtol=1e-5, atol=1e-5)  # one image: statistics over its positions


def test_other_batchnorm_layers_keep_their_source_statistics():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        net[2].running_mean.fill_(0.5)
    reference = copy.deepcopy(net).eval()
    assert use_prior_statistics(net, 16.0) == 0
    x = noise(1, 3, 2, 2)
    torch.testing.assert_close(net.eval()(x), reference(x))


def fixed_views(views: torch.Tensor):
    return lambda x: views


def test_one_test_point_takes_one_sgd_step_on_all_parameters_then_predicts_the_clean_input():
    net = tiny_net()
    views = noise(8, 3, 32, 32, seed=1)
    x = noise(3, 32, 32, seed=2)
    prior = 16 / 17
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    p_bar = torch.softmax(prior_forward(net, params, views, prior), 1).mean(0)
    loss = -(p_bar * p_bar.log()).sum()
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    stepped = {k: v.detach() - 0.05 * grads[k] for k, v in params.items()}
    want = prior_forward(net, stepped, x.unsqueeze(0), prior)[0]
    memo = MEMO(copy.deepcopy(net), UNIT, np.random.RandomState(0), lr=0.05, n_augmentations=8)
    memo.views = fixed_views(views)
    torch.testing.assert_close(memo(x.unsqueeze(0))[0], want, rtol=1e-5, atol=1e-5)
    for name, p in memo.model.named_parameters():  # every parameter moved, by the hand-computed step
        assert not torch.equal(p, dict(net.named_parameters())[name]), name
        torch.testing.assert_close(p.detach(), stepped[name], rtol=1e-5, atol=1e-6, msg=name)
    assert torch.equal(memo.model[1].running_mean, net[1].running_mean)  # source statistics untouched


def test_each_test_point_starts_from_the_source_model():
    net = tiny_net()
    views = noise(8, 3, 32, 32, seed=1)
    batch = noise(3, 3, 32, 32, seed=2)
    memo = MEMO(copy.deepcopy(net), UNIT, np.random.RandomState(0), lr=0.5, n_augmentations=8)
    memo.views = lambda x: views + x  # depends on the point only
    together = memo(batch)
    for i in range(3):
        alone = MEMO(copy.deepcopy(net), UNIT, np.random.RandomState(0), lr=0.5, n_augmentations=8)
        alone.views = memo.views
        torch.testing.assert_close(together[i], alone(batch[i:i + 1])[0])
    memo.reset()
    for a, b in zip(memo.model.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)


def test_pixel_range_round_trips_8_bit_images_and_reads_the_preprocessing():
    for image in (rgb_image(3), rgb_image(4).convert("L")):
        channels = len(image.getbands())
        pixels = PixelRange(torch.linspace(-2, -1, channels), torch.linspace(1, 3, channels))
        pixel_values = np.asarray(image, dtype=np.float32)[None] / 255
        assert np.array_equal(np.array(pixels.to_image(pixels.to_input(pixel_values)[0])), np.array(image))
    raw = np.random.RandomState(0).randint(0, 256, (5, 32, 32)).astype(np.uint8)
    task = digits_like_task(raw, image_preprocess(28, 1, (0.2,), (0.3,)))
    found = pixel_range(task)
    torch.testing.assert_close(found.black, torch.tensor([-0.2 / 0.3]))
    torch.testing.assert_close(found.white, torch.tensor([0.8 / 0.3]))
    with pytest.raises(ShiftbenchError, match="affine"):
        pixel_range(digits_like_task(raw, lambda a: image_preprocess(32, 1, (0.2,), (0.3,))(a) ** 2))
    with pytest.raises(ShiftbenchError, match="8-bit"):
        pixel_range(digits_like_task(raw.astype(np.float32), image_preprocess(32, 1, (0.2,), (0.3,))))


# zhangmarvin/memo at commit 228b290, run on CPU (torch 2.14.1, torchvision 0.29.1, Pillow from the project venv):
# AUGMIX: cifar-10-exps/utils/third_party.py `aug` on rgb_image(10 + s) after np.random.seed(s), torch.manual_seed(s);
# sum and absolute sum of the view and its first 4 values of row 0 per channel.
# ADAPTED: imagenet-exps/utils/adapt_helpers.py `adapt_single` (niter 1, batch_size 8 views, SGD lr 0.05 on all
# parameters) with train_helpers' BatchNorm2d prior forward, the CIFAR transforms swapped in (their `aug`;
# ToTensor + Normalize(0.5, 0.5)) and test_adapt.py's marginal_entropy, then the model on the clean image with the
# same prior, on tiny_net() reloaded before each of rgb_image(20), rgb_image(21), after np.random.seed(5),
# torch.manual_seed(5); prior strength 16 and -1 (source statistics).
AUGMIX = {
    0: (-606.2261470807716, 1852.1279896022752, [-0.691281, 0.440483, 0.328773, -0.019775, -0.499751, 0.642828,
                                                  -0.093706, -0.552562, -0.254561, -0.832435, -0.429969, 0.81624]),
    1: (-51.3709986936301, 1577.773044067435, [-0.999978, -0.131929, -0.615147, -0.655112, -1.0, 0.257191, 0.082336,
                                               -0.852713, -1.0, 0.397804, -0.61381, 0.985818]),
    2: (-464.44202573318034, 1685.4159027580172, [-1.0] * 12),
}
ADAPTED = {
    16.0: [[-0.182942, 7.603605, 0.337967, 1.857044, 2.378497], [1.31767, 8.596706, -2.914961, 1.72383, 2.520919]],
    None: [[-0.045259, 7.951186, 1.016768, 1.813627, 2.852643], [1.647033, 9.06729, -2.362213, 1.747085, 2.853425]],
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augmix_views_match_the_authors_code(seed):
    torch.manual_seed(seed)
    view = UNIT.to_input(augmix(rgb_image(10 + seed), np.random.RandomState(seed))[None])[0]
    total, absolute, first = AUGMIX[seed]
    assert float(view.double().sum()) == pytest.approx(total, abs=1e-3)
    assert float(view.double().abs().sum()) == pytest.approx(absolute, abs=1e-3)
    np.testing.assert_allclose(view[:, 0, :4].flatten().numpy(), first, atol=2e-6)


@pytest.mark.parametrize("strength", [16.0, None])
def test_adapted_predictions_match_the_authors_code(strength):
    memo = MEMO(tiny_net(), UNIT, np.random.RandomState(5), lr=0.05, n_augmentations=8, prior_strength=strength)
    torch.manual_seed(5)
    got = memo(torch.stack([as_input(rgb_image(20)), as_input(rgb_image(21))]))
    torch.testing.assert_close(got, torch.tensor(ADAPTED[strength]), rtol=0, atol=1e-5)


def digits_like_task(raw: np.ndarray, preprocess, network: nn.Module | None = None, seed: int = 0) -> Task:
    """A task whose target split is the raw images ``raw`` (n, h, w), streamed in batches of 2."""
    n = len(raw)
    target = UnlabelledSplit("target", n, lambda index: raw[index], pd.DataFrame(index=range(n)))
    net = network if network is not None else nn.Identity()
    model = SourceModel("tiny", net, nn.Identity(), preprocess=preprocess, fingerprint="tiny")
    return Task(3, target, [np.arange(i, min(i + 2, n)) for i in range(0, n, 2)], seed, model, None)


def small_gray_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_plugin_lifecycle_is_deterministic_under_the_cell_seed_on_8_bit_digits():
    raw = np.random.RandomState(1).randint(0, 256, (5, 28, 28)).astype(np.uint8)
    preprocess = image_preprocess(28, 1, (0.13,), (0.31,))
    run = lambda seed: methods.load("memo", n_augmentations=4).run(  # noqa: E731
        digits_like_task(raw, preprocess, small_gray_net(), seed))
    first, again, other = run(0), run(0), run(1)
    assert first.shape == (5, 3) and np.array_equal(first, again) and not np.array_equal(first, other)
    plugin = methods.load("memo")
    model = SourceModel("tiny", small_gray_net(), nn.Identity(), preprocess=preprocess, fingerprint="tiny")
    assert "augments images" in plugin.not_applicable(model, DataFacts("blobs", "tabular", 3))
    assert plugin.not_applicable(model, DataFacts("digits", "image", 10)) is None


def test_bad_inputs_and_settings_are_refused():
    memo = MEMO(tiny_net(), UNIT, np.random.RandomState(0), n_augmentations=2)
    bad = torch.zeros(2, 3, 32, 32)
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ShiftbenchError, match="NaN"):
        memo(bad)
    with pytest.raises(ShiftbenchError, match="image batches"):
        memo(torch.zeros(2, 12))
    with pytest.raises(ShiftbenchError, match="n_augmentations"):
        MEMO(tiny_net(), UNIT, np.random.RandomState(0), n_augmentations=1)
    with pytest.raises(ShiftbenchError, match="1- or 3-channel"):
        PixelRange(torch.zeros(2), torch.ones(2)).to_image(torch.zeros(2, 4, 4))
