"""EATA and ETA against a hand-written functional step, invariances, and numbers from the authors' code."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.cache import ArrayCache
from shiftbench.dataset import Split
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Task
from shiftbench.methods.eata import EATA, fisher_diagonal
from shiftbench.model import SourceModel
from tasks import network_task
from test_tta_tent import batches, bn_affine, reference_forward, small_net

E0 = 0.4 * math.log(5)

# Produced by the official code, mr-eggplant/EATA at f739b3668cc7617e9b9f1979c1a358497a3472c3 (eata.py's EATA and
# forward_and_adapt_eata; main.py's Fisher loop, run beside the project with its venv, torch 2.14.1 CPU float32):
# confident_net() configured by eata.configure_model (its BatchNorm1d given the same batch-statistics treatment),
# SGD(BN affine params, lr 0.05, momentum 0.9), e_margin 0.4 ln 5, d_margin 0.8, on batches(4); EATA's Fisher from
# main.py's loop on batches(2, seed=7), alpha 50. Per-batch counts of reliable and kept samples, the final
# probability average and BN affine parameters ([1.weight, 1.bias, 5.weight, 5.bias]), and the Fisher diagonal.
EATA_REFERENCE = {
    "eta": {"n_reliable": [5, 6, 5, 2], "n_kept": [5, 3, 2, 1],
            "average": [0.43756655, 0.0022787324, 0.064289406, 0.31213847, 0.18372676],
            "params": [[0.53038681, 1.2490197, 1.2337707, 1.3476868],
                       [-0.49628907, 0.27788636, 0.41694033, -0.51854885],
                       [1.2579995, 1.3239261, 1.3824366, 0.66233677, 0.98425502, 1.0815405, 1.2315414, 1.3523256],
                       [-0.18223043, -0.15583768, 0.46963397, -0.10480797, -0.31535053, 0.35699254, 0.43612799,
                        -0.10232998]]},
    "eata": {"n_reliable": [5, 6, 5, 2], "n_kept": [5, 3, 2, 1],
             "average": [0.43765804, 0.0022818649, 0.064400643, 0.31188723, 0.18377215],
             "params": [[0.53024101, 1.2488422, 1.2329607, 1.3483801],
                        [-0.49653056, 0.27788278, 0.41830131, -0.51781255],
                        [1.2579799, 1.3237337, 1.380505, 0.65995133, 0.98242474, 1.0814363, 1.2223371, 1.3471807],
                        [-0.18224835, -0.15580347, 0.4430452, -0.10575021, -0.31715709, 0.35677454, 0.41160718,
                         -0.11003327]],
             "fisher": [[0.0015169323, 0.0026959132, 0.014408356, 0.0088748047],
                        [0.0015212558, 0.00019623726, 0.0033751347, 0.0036363867],
                        [0.00021719956, 0.0027448896, 0.003594144, 0.010826556, 0.0097835194, 0.002167504,
                         0.018029889, 0.009634601],
                        [0.00025228111, 0.0010815016, 0.040758472, 0.011232985, 0.0097991191, 0.0013159098,
                         0.046230126, 0.029550364]]},
}


def confident_net() -> nn.Module:
    """``small_net`` with a head 4x larger, so that a third of the samples fall under E0 = 0.4 ln 5."""
    net = small_net()
    with torch.no_grad():
        net[7].weight.mul_(4.0)
    return net


def probs_entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, 1)
    return -(p * torch.log(p)).sum(1)


def hand_eata(net: nn.Module, xs: list[torch.Tensor], lr: float, d_margin: float, fisher=None, alpha: float = 0.0):
    """EATA written out: masks of each batch, the final average and BN parameters after SGD (momentum 0.9)."""
    params = [p.detach().clone() for p in bn_affine(net)]
    anchors = [p.clone() for p in params]
    buf = [None] * len(params)
    average, masks = None, []
    for x in xs:
        leaves = [p.clone().requires_grad_(True) for p in params]
        logits = reference_forward(net, leaves, x)
        ent = probs_entropy(logits)
        probs = torch.softmax(logits, 1).detach()
        reliable = ent < E0
        kept = reliable.clone()
        if average is not None:
            cos = (probs @ average) / (probs.norm(dim=1) * average.norm())
            kept &= cos.abs() < d_margin
        masks.append((reliable, kept))
        if kept.any():
            mean = probs[kept].mean(0)
            average = mean if average is None else 0.9 * average + 0.1 * mean
            loss = (ent[kept] / torch.exp(ent[kept].detach() - E0)).mean()
            if fisher is not None:
                loss = loss + alpha * sum((f * (p - a) ** 2).sum() for f, p, a in zip(fisher, leaves, anchors))
            grads = torch.autograd.grad(loss, leaves)
            for i, g in enumerate(grads):
                buf[i] = g if buf[i] is None else 0.9 * buf[i] + g
                params[i] = params[i] - lr * buf[i]
    return masks, average, params


def test_fisher_diagonal_is_the_mean_squared_gradient_of_the_pseudo_label_loss():
    net = confident_net()
    xs = batches(3, seed=5)
    eata = EATA(copy.deepcopy(net))
    got = fisher_diagonal(eata.model, eata.params, xs)
    want = [torch.zeros_like(p) for p in bn_affine(net)]
    for x in xs:
        leaves = [p.detach().clone().requires_grad_(True) for p in bn_affine(net)]
        logits = reference_forward(net, leaves, x)
        loss = -torch.log_softmax(logits, 1).gather(1, logits.argmax(1, keepdim=True)).mean()
        for w, g in zip(want, torch.autograd.grad(loss, leaves)):
            w += g ** 2 / len(xs)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("with_fisher", [False, True])
def test_steps_equal_the_hand_written_eata(with_fisher):
    net = confident_net()
    xs = batches(4)
    eata = EATA(copy.deepcopy(net), lr=0.05, d_margin=0.8)
    fisher = None
    if with_fisher:
        fisher = fisher_diagonal(eata.model, eata.params, batches(2, seed=7))
        eata.regularise(fisher, 50.0)
    want_masks, want_average, want_params = hand_eata(net, xs, 0.05, 0.8, fisher, 50.0)
    for x, (reliable, kept) in zip(xs, want_masks):
        eata(x)
        assert torch.equal(eata.reliable, reliable) and torch.equal(eata.kept, kept)
    assert [int(k.sum()) for _, k in want_masks] == [5, 3, 2, 1]  # both filters do something here
    torch.testing.assert_close(eata.average, want_average, rtol=1e-5, atol=1e-7)
    for got, want in zip(eata.params, want_params):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["eta", "eata"])
def test_matches_numbers_from_the_authors_code(variant):
    ref = EATA_REFERENCE[variant]
    eata = EATA(confident_net(), lr=0.05, d_margin=0.8)
    if variant == "eata":
        fisher = fisher_diagonal(eata.model, eata.params, batches(2, seed=7))
        for got, want in zip(fisher, ref["fisher"]):
            torch.testing.assert_close(got, torch.tensor(want), rtol=1e-4, atol=1e-9)
        eata.regularise(fisher, 50.0)
    counts = []
    for x in batches(4):
        eata(x)
        counts.append((int(eata.reliable.sum()), int(eata.kept.sum())))
    assert counts == list(zip(ref["n_reliable"], ref["n_kept"]))
    torch.testing.assert_close(eata.average, torch.tensor(ref["average"]), rtol=1e-5, atol=1e-7)
    for got, want in zip(eata.params, ref["params"]):
        torch.testing.assert_close(got.detach(), torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_the_fisher_penalty_pulls_towards_the_source_parameters():
    eta, eata = EATA(confident_net(), lr=0.05, d_margin=0.8), EATA(confident_net(), lr=0.05, d_margin=0.8)
    eata.regularise([torch.full_like(p, 5.0) for p in eata.params], 1.0)
    source = [p.detach().clone() for p in eata.params]
    for x in batches(4):
        eta(x), eata(x)
    drift = [sum(float((p.detach() - s).abs().sum()) for p, s in zip(m.params, source)) for m in (eta, eata)]
    assert drift[1] < 0.7 * drift[0]
    assert float(eata.penalty().detach()) > 0 and float(eta.penalty()) == 0


def test_only_batchnorm_affine_parameters_change_and_logits_precede_the_update():
    net = confident_net()
    x = batches(1)[0]
    with torch.no_grad():
        before_logits = reference_forward(net, [p.clone() for p in bn_affine(net)], x)
    eata = EATA(copy.deepcopy(net), lr=0.05)
    before = copy.deepcopy(eata.model.state_dict())
    torch.testing.assert_close(eata(x), before_logits, rtol=1e-5, atol=1e-5)
    changed = {k for k, v in eata.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"1.weight", "1.bias", "5.weight", "5.bias"}


def test_no_update_when_every_sample_is_unreliable_or_redundant():
    eata = EATA(confident_net(), lr=0.05, e0_ratio=1e-6)
    start = copy.deepcopy(eata.model.state_dict())
    eata(batches(1)[0])
    assert not eata.reliable.any() and eata.average is None
    assert all(torch.equal(v, start[k]) for k, v in eata.model.state_dict().items())
    # reliable but all redundant after a real update: no step at all, not even momentum's
    eata = EATA(confident_net(), lr=0.05, d_margin=0.8)
    x1, x2 = batches(2)
    eata(x1)
    after_first = copy.deepcopy(eata.model.state_dict())
    average = eata.average.clone()
    eata.d_margin = 1e-6
    eata(x2)
    assert eata.reliable.any() and not eata.kept.any()
    assert all(torch.equal(v, after_first[k]) for k, v in eata.model.state_dict().items())
    assert torch.equal(eata.average, average)


def test_episodic_restores_model_optimizer_and_average_before_each_batch():
    x1, x2 = batches(2)
    eata = EATA(confident_net(), lr=0.05, d_margin=0.8, episodic=True)
    eata(x1)
    out = eata(x2)
    fresh = EATA(confident_net(), lr=0.05, d_margin=0.8)
    torch.testing.assert_close(out, fresh(x2))
    for a, b in zip(eata.params, fresh.params):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(eata.average, fresh.average)


def test_bad_settings_and_networks_are_refused():
    with pytest.raises(ShiftbenchError, match="BatchNorm"):
        EATA(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ShiftbenchError, match="d_margin"):
        EATA(small_net(), d_margin=0)
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        EATA(small_net())(torch.randn(1, 1, 6, 6))
    with pytest.raises(ShiftbenchError, match="Fisher diagonal has shapes"):
        EATA(small_net()).regularise([torch.zeros(3)], 1.0)


def source_task(net: nn.Module, cache_dir, id_val_labels_seed: int | None = None, splits=("train", "id_val")) -> Task:
    """A task around ``net`` with labelled source splits of 40 random images and a cache in ``cache_dir``."""
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(40, 1, 6, 6, generator=g) * 2 + 0.5).numpy()
    y = np.arange(40) % 5
    if id_val_labels_seed is not None:
        y = np.random.default_rng(id_val_labels_seed).permutation(y)
    source = {name: Split(name, y, pd.DataFrame(index=range(40)), x=x) for name in splits}
    model = SourceModel("bare_network", net, nn.Identity(), preprocess=torch.as_tensor, fingerprint="confident_net")
    return Task(5, None, [np.arange(16)] * 3, 0, model, ArrayCache(cache_dir), source)


def test_plugin_takes_its_fisher_from_id_val_with_pseudo_labels_and_caches_it(tmp_path):
    net = confident_net()
    task = source_task(copy.deepcopy(net), tmp_path)
    plugin = methods.load("eata", lr=0.05, d_margin=0.8, fisher_alpha=50.0, fisher_size=36)
    plugin.prepare(task)
    order = task.rng("method").permutation(40)[:36]
    x = torch.as_tensor(task.source_splits["id_val"].x)
    wrapper = EATA(copy.deepcopy(net))  # chunks of the stream's batch size 16: 16, 16, 4
    want = fisher_diagonal(wrapper.model, wrapper.params, [x[order[i:i + 16]] for i in (0, 16, 32)])
    for got, w in zip(plugin.eata.fisher, want):
        torch.testing.assert_close(got, w)
    assert plugin.eata.fisher_alpha == 50.0 and task.cache.misses == 1
    relabelled = methods.load("eata", lr=0.05, d_margin=0.8, fisher_alpha=50.0, fisher_size=36)
    relabelled.prepare(source_task(copy.deepcopy(net), tmp_path / "other", id_val_labels_seed=1))
    for a, b in zip(plugin.eata.fisher, relabelled.eata.fisher):
        torch.testing.assert_close(a, b)  # the labels are never read
    again = methods.load("eata", lr=0.05, d_margin=0.8, fisher_alpha=50.0, fisher_size=36)
    again.prepare(task)
    assert task.cache.hits == 1
    xs = batches(2)
    for x in xs:
        batch = Batch.from_arrays(inputs=x)
        torch.testing.assert_close(plugin.process(batch), again.process(batch))


def test_plugins_declare_their_knobs_and_refuse_what_they_cannot_run(tmp_path):
    eta = methods.load("eta", lr=0.05, d_margin=0.8)
    assert "fisher_alpha" not in type(eta).declared() and set(type(eta).grid) == {"lr", "d_margin"}
    net = confident_net()
    eta.prepare(network_task(copy.deepcopy(net)))
    ref = EATA(copy.deepcopy(net), lr=0.05, d_margin=0.8)
    for x in batches(2):
        torch.testing.assert_close(eta.process(Batch.from_arrays(inputs=x)), ref(x))
    eata = methods.load("eata")
    assert set(type(eata).grid) == {"lr", "fisher_alpha"}
    assert (eata.fisher_alpha, eata.fisher_size, eata.e0_ratio, eata.d_margin, eata.lr) == (1.0, 2000, 0.4, 0.4, 0.005)
    with pytest.raises(ShiftbenchError, match="id_val"):
        eata.prepare(source_task(confident_net(), tmp_path, splits=("train",)))
    no_bn = SourceModel("mlp", nn.Linear(3, 4), nn.Linear(4, 2), preprocess=torch.as_tensor, fingerprint="mlp")
    assert "no BatchNorm" in eata.not_applicable(no_bn, None)


def test_eata_with_alpha_zero_is_eta_and_estimates_no_fisher(tmp_path):
    net = confident_net()
    task = source_task(copy.deepcopy(net), tmp_path)
    eata = methods.load("eata", lr=0.05, d_margin=0.8, fisher_alpha=0.0)
    eata.prepare(task)
    eta = methods.load("eta", lr=0.05, d_margin=0.8)
    eta.prepare(network_task(copy.deepcopy(net)))
    assert eata.eata.fisher is None and task.cache.misses == 0
    for x in batches(2):
        batch = Batch.from_arrays(inputs=x)
        torch.testing.assert_close(eata.process(batch), eta.process(batch))
