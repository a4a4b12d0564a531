"""Label shift adapter: identity at start, learns the Bayes prior correction, online prior estimate, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from shiftbench import datasets, methods
from shiftbench.cache import ArrayCache
from shiftbench.datasets.digits_lt import long_tailed_subset
from shiftbench.families import Task, Truth
from shiftbench.methods.label_shift_adapter import AdapterNet, PriorConditionedHead, train_adapter
from shiftbench.scenarios import Scenario, long_tail_profile

K, D = 4, 6


def gaussian_source(n: int, prior: np.ndarray, seed: int = 0):
    """Classes N(mu_y, I); the Bayes head for ``prior`` is linear: w_y = mu_y, b_y = log prior_y - |mu_y|^2/2."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(K, D)) * 1.2
    y = rng.choice(K, size=n, p=prior)
    x = mu[y] + rng.normal(size=(n, D))
    head = nn.Linear(D, K)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(mu, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(np.log(prior) - 0.5 * (mu ** 2).sum(1), dtype=torch.float32))
    return x.astype(np.float32), y, head


def test_untrained_adapter_is_the_source_head():
    _, _, head = gaussian_source(10, np.full(K, 0.25))
    model = PriorConditionedHead(head, AdapterNet(K, D), torch.full((K,), 0.25))
    f = torch.randn(7, D)
    torch.testing.assert_close(model.logits(f, torch.tensor([0.7, 0.1, 0.1, 0.1])), head(f))


def test_trained_adapter_recovers_the_bayes_prior_correction():
    """With a Bayes-optimal source head, the target posterior is softmax(head + log pi_t - log pi_s)."""
    source_prior = long_tail_profile(K, "forward", 20)
    x, y, head = gaussian_source(2000, source_prior)
    model = train_adapter(head, x, y, K, seed=0, hidden=32, steps=400, batch_size=128, lr=3e-3)
    f = torch.as_tensor(x[:500])
    for target in (long_tail_profile(K, "backward", 20), np.full(K, 0.25)):
        t = torch.as_tensor(target, dtype=torch.float32)
        with torch.no_grad():
            bayes = torch.softmax(head(f) + torch.log(t) - torch.log(torch.as_tensor(source_prior, dtype=torch.float32)), 1)
            ours = torch.softmax(model.logits(f, t), 1)
            source = torch.softmax(head(f), 1)
        err, err_source = (ours - bayes).abs().mean(), (source - bayes).abs().mean()
        assert err < 0.35 * err_source, (float(err), float(err_source))


def test_prior_estimate_is_an_exponential_moving_average():
    _, _, head = gaussian_source(10, np.full(K, 0.25))
    model = PriorConditionedHead(head, AdapterNet(K, D), torch.tensor([0.4, 0.3, 0.2, 0.1]))
    probs = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    model.update_prior(probs, momentum=0.75)
    torch.testing.assert_close(model.prior, torch.tensor([0.425, 0.35, 0.15, 0.075]))


def test_long_tailed_source_subset():
    y = np.repeat(np.arange(10), 300)
    counts = np.bincount(y[long_tailed_subset(y, 100, seed=0)])
    np.testing.assert_array_equal(counts, np.floor(300 * 100.0 ** -(np.arange(10) / 9)).astype(int))


@pytest.mark.slow
def test_adapter_improves_each_base_on_a_backward_long_tailed_target(cache_dir):
    from shiftbench.models import build_model

    d = datasets.load("digits_lt")
    model = build_model("small_cnn", d, 0, cache_dir)
    cache = ArrayCache(cache_dir)
    s = Scenario(target="id_test", long_tail="backward", batch_size=64)
    split = s.target_split(d, cache, 0)
    task = Task(d.n_classes, split.unlabelled(), s.batches(split.y, 0), 0, model, cache,
                {"train": d.split("train"), "id_val": d.split("id_val")})

    def acc(name, **hp):
        m = methods.load(name, **hp)
        return m.evaluate(m.run(task), Truth(d, split), task)["acc_avg"]

    for base, plain in (("none", "source_only"), ("bn_adapt", "bn_adapt"), ("tent", "tent")):
        assert acc("label_shift_adapter", base=base) > acc(plain) + 0.05
