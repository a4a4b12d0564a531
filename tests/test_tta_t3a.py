"""T3A against its definition (warm-up supports, entropy filtering per class, prototype logits) and against
numbers produced by the authors' code."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Task
from shiftbench.methods.t3a import T3A, TemplateAdjuster
from shiftbench.model import SourceModel

# Reference: matsuolab/T3A at ff8cde5, domainbed/adapt_algorithms.py::T3A (domainbed.algorithms.Algorithm
# stubbed by a torch.nn.Module holding hparams), hparams {"filter_K": k, "cached_loader": False}, on the
# featurizer Sequential(Linear(4, 3), Tanh()) and classifier Linear(3, 3) with the weights below, called
# `t3a.predict(x, adapt=True)` on the three batches of INPUTS in order; LOGITS[k] are its outputs and
# N_SUPPORTS[k] the size of its support set afterwards (printed to 7 significant digits).
WEIGHTS = {"featurizer.0.weight": [[1.540996, -0.2934289, -2.178789, 0.5684313],
                                   [-1.084522, -1.398595, 0.4033468, 0.8380263],
                                   [-0.7192576, -0.4033435, -0.5966353, 0.1820365]],
           "featurizer.0.bias": [-0.8566746, 1.100604, -1.071187],
           "classifier.weight": [[2.122701, -0.5663175, 0.3731146], [-0.8919953, 0.4908923, 0.3703935],
                                 [1.456503, 0.9398099, 2.774849]],
           "classifier.bias": [0.1918694, 1.263795, -1.290435]}
INPUTS = [[[0.2055257, -0.4503298, -0.5730771, -0.5553584], [-1.125602, -0.3169981, -1.092468, -0.0851943],
           [-0.09334823, 0.6870502, -0.8383154, 0.0008918217], [-0.7504268, 0.185408, 0.6211383, 0.6381816],
           [-0.2460009, 2.302516, -1.881689, -0.04972702]],
          [[1.941462, 0.7914981, -0.02025183, -0.4371696], [-0.2188337, -2.435065, -0.07291476, -0.03398641],
           [0.9625183, 0.3491682, -0.921462, -0.05619479], [-0.6226985, -0.4637222, 1.921782, -0.4025455],
           [0.1239025, 1.164783, 0.9233735, 1.387295]],
          [[-0.8833758, -0.4189135, -0.8048265, 0.5656096], [0.2885762, 0.3865978, -0.2010639, -0.117927],
           [-0.8293669, -1.407257, 1.626847, 0.1722732], [-0.704294, 0.314721, 0.1573929, 0.3853627],
           [0.5736546, 0.9979313, 0.5436094, 0.07880439]]]
LOGITS = {1: [[[0.1776239, 0.4102807, -0.1546395], [-0.3279048, 0.5141647, 0.6012208],
               [0.443292, -0.122614, -0.3347368], [-1.315311, 1.564143, -0.7510819],
               [1.077018, -0.9715185, -0.3684924]],
              [[0.9751702, -0.5871709, -0.7094766], [-0.5482607, 0.7241218, 0.2307926],
               [0.9685613, -0.5078562, -0.5035744], [-1.360702, 1.688591, -0.9482846],
               [-1.269856, 1.519787, -1.046241]],
              [[-0.2200023, 0.4272301, 0.5358763], [-0.3086979, 0.6094896, -0.7874646],
               [-1.32199, 1.559862, -0.7424154], [-1.271172, 1.472358, -0.6819079],
               [-0.8655881, 0.7329652, -1.382704]]],
          2: [[[0.1707381, 0.04999935, -0.1546395], [-0.6807455, 0.6875887, 0.6012208],
               [0.6082216, -0.4647245, -0.3347368], [-1.252933, 1.423758, -0.7510819],
               [1.402624, -1.335058, -0.3684924]],
              [[1.495967, -0.6817998, -0.7094766], [-0.7753524, 0.758981, 0.2307926],
               [1.372596, -0.5912617, -0.5035744], [-1.097023, 1.685477, -0.9482846],
               [-0.9332498, 1.508303, -1.046241]],
              [[-0.5588624, 0.469321, 0.5358763], [0.04547802, 0.5666164, -0.7874646], [-1.15719, 1.569753, -0.7424154],
               [-1.128206, 1.484499, -0.6819079], [-0.2558314, 0.6855827, -1.382704]]],
          100: [[[0.3969361, 0.4859031, -0.1546395], [-0.6885963, 0.9062903, 0.6012208],
                 [0.7494584, -0.2410964, -0.3347368], [-0.9578567, 1.370386, -0.7510819],
                 [1.430611, -1.227229, -0.3684924]],
                [[1.623625, -1.032434, -0.7094766], [-0.7491576, 0.9690589, 0.2307926],
                 [1.474088, -0.8401343, -0.5035744], [-0.7630969, 1.552025, -0.9482846],
                 [-0.6005965, 1.304972, -1.046241]],
                [[-0.609063, 0.6166798, 0.5358763], [0.267345, 0.4862263, -0.7874646], [-0.880101, 1.5574, -0.7424154],
                 [-0.8724338, 1.474386, -0.6819079], [0.04638985, 0.465059, -1.382704]]]}
N_SUPPORTS = {1: 3, 2: 5, 100: 18}


def reference_model() -> tuple[nn.Module, nn.Linear]:
    """The featurizer and classifier the reference numbers were produced with."""
    featurizer, head = nn.Sequential(nn.Linear(4, 3), nn.Tanh()), nn.Linear(3, 3)
    with torch.no_grad():
        featurizer[0].weight.copy_(torch.tensor(WEIGHTS["featurizer.0.weight"]))
        featurizer[0].bias.copy_(torch.tensor(WEIGHTS["featurizer.0.bias"]))
        head.weight.copy_(torch.tensor(WEIGHTS["classifier.weight"]))
        head.bias.copy_(torch.tensor(WEIGHTS["classifier.bias"]))
    return featurizer, head


def task_of(backbone: nn.Module, head: nn.Module) -> Task:
    """A task around a source model made of ``backbone`` and ``head`` (no data: prepare/process only)."""
    model = SourceModel("tiny", backbone, head, preprocess=lambda x: x, fingerprint="tiny")
    return Task(n_classes=head.out_features, target=None, batches=[], seed=0, model=model, cache=None)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, 1)
    return -(p * torch.log(p)).sum(1)


def hand_t3a(head: nn.Linear, batches: list[torch.Tensor], m: int) -> tuple[list[torch.Tensor], int]:
    """T3A written out with Python lists: warm-up from the weight rows, keep the m lowest-entropy supports
    of each class, logits z . (normalised sum of normalised supports)."""
    k_classes = head.out_features
    with torch.no_grad():
        supports = [(w, int(head(w).argmax()), float(entropy(head(w)[None])[0])) for w in head.weight]
        outputs = []
        for z in batches:
            supports += [(zi, int(head(zi).argmax()), float(entropy(head(zi)[None])[0])) for zi in z]
            kept = []
            for k in range(k_classes):
                members = [s for s in supports if s[1] == k]
                members.sort(key=lambda s: s[2])  # stable: arrival order among equal entropies
                kept += members if m == -1 else members[:m]
            supports = kept
            columns = []
            for k in range(k_classes):
                total = torch.zeros(z.shape[1])
                for s, label, _ in supports:
                    if label == k:
                        total = total + s / s.norm()
                columns.append(total / total.norm() if total.norm() > 0 else total)
            outputs.append(z @ torch.stack(columns, 1))
    return outputs, len(supports)


def random_head(seed: int = 0, d: int = 6, k: int = 4) -> tuple[nn.Linear, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(d, k)
    with torch.no_grad():
        head.weight.copy_(torch.randn(k, d, generator=g))
        head.bias.copy_(torch.randn(k, generator=g))
    return head, [torch.randn(7, d, generator=g) for _ in range(4)]


@pytest.mark.parametrize("m", [1, 2, 100])
def test_logits_and_support_set_match_the_authors_code(m):
    featurizer, head = reference_model()
    plugin = methods.load("t3a", filter_k=m)
    plugin.prepare(task_of(featurizer, head))
    for x, want in zip(INPUTS, LOGITS[m]):
        got = plugin.process(Batch.from_arrays(inputs=torch.tensor(x)))
        torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=2e-6)
    assert len(plugin.adjuster.supports) == N_SUPPORTS[m]


def test_keeping_every_support_matches_the_authors_code_where_no_class_has_more_than_m():
    featurizer, head = reference_model()  # 18 supports in all: m = 100 filters nothing there
    adjuster = TemplateAdjuster(copy.deepcopy(head), filter_k=-1)
    for x, want in zip(INPUTS, LOGITS[100]):
        torch.testing.assert_close(adjuster(featurizer(torch.tensor(x))), torch.tensor(want), rtol=1e-5, atol=2e-6)
    assert len(adjuster.supports) == 3 + 15


@pytest.mark.parametrize("m", [1, 3, -1])
def test_matches_a_hand_written_t3a(m):
    head, zs = random_head()
    want, n_supports = hand_t3a(head, zs, m)
    adjuster = TemplateAdjuster(head, filter_k=m)
    for z, w in zip(zs, want):
        torch.testing.assert_close(adjuster(z), w, rtol=1e-5, atol=1e-6)
    assert len(adjuster.supports) == n_supports
    if m == -1:
        assert n_supports == 4 + 4 * 7


def test_warm_up_supports_are_the_weight_rows_labelled_by_the_head():
    head = nn.Linear(2, 2)
    with torch.no_grad():  # row 0 is predicted as class 1 by the head (its bias), row 1 as class 1 too
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.bias.copy_(torch.tensor([0.0, 3.0]))
    adjuster = TemplateAdjuster(head, filter_k=5)
    torch.testing.assert_close(adjuster.supports, head.weight.detach())
    assert adjuster.labels.tolist() == [1, 1]
    p0 = torch.softmax(torch.tensor([1.0, 3.0]), 0)
    assert adjuster.entropies[0].item() == pytest.approx(float(-(p0 * p0.log()).sum()), rel=1e-6)
    # no class-0 support: class 0's prototype is zero, so its logit is 0 for every example
    z = torch.tensor([[0.5, 0.5], [-1.0, 0.0]])  # both predicted as class 1
    logits = adjuster(z)
    assert logits[:, 0].tolist() == [0.0, 0.0]


def test_filtering_keeps_the_m_lowest_entropy_supports_of_each_class_for_good():
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2) * 0.1)  # warm-up supports: low confidence, high entropy
        head.bias.zero_()
    adjuster = TemplateAdjuster(head, filter_k=1)
    confident0, doubtful0, confident1 = [5.0, 0.0], [0.3, 0.0], [0.0, 4.0]
    adjuster(torch.tensor([doubtful0, confident0, confident1]))
    torch.testing.assert_close(adjuster.supports, torch.tensor([confident0, confident1]))
    assert adjuster.labels.tolist() == [0, 1]
    # a later, even more confident class-0 example replaces the kept one; the dropped ones never come back
    adjuster(torch.tensor([[9.0, 0.0]]))
    torch.testing.assert_close(adjuster.supports, torch.tensor([[9.0, 0.0], confident1]))


def test_logits_are_features_times_normalised_prototypes():
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    adjuster = TemplateAdjuster(head, filter_k=-1)
    z = torch.tensor([[3.0, 4.0], [0.0, -2.0]])  # predicted 1, 0 (ties of a 2-class argmax: first max)
    logits = adjuster(z)
    s = 1 / math.sqrt(2)
    # class 0: e0 + (0, -1); class 1: e1 + (0.6, 0.8); each normalised
    c0 = torch.tensor([1.0, -1.0]) * s
    c1 = torch.tensor([0.6, 1.8]) / math.sqrt(0.36 + 3.24)
    torch.testing.assert_close(logits, z @ torch.stack([c0, c1], 1))


def test_the_network_is_untouched_and_a_new_cell_starts_from_the_warm_up_set():
    featurizer, head = reference_model()
    task = task_of(featurizer, head)
    before = copy.deepcopy(task.model.network.state_dict())
    plugin = methods.load("t3a", filter_k=2)
    plugin.prepare(task)
    first = plugin.process(Batch.from_arrays(inputs=torch.tensor(INPUTS[0])))
    plugin.process(Batch.from_arrays(inputs=torch.tensor(INPUTS[1])))
    for key, value in task.model.network.state_dict().items():
        assert torch.equal(value, before[key])
    assert not any(p.grad is not None for p in plugin.backbone.parameters())
    plugin.prepare(task)
    assert len(plugin.adjuster.supports) == 3
    torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=torch.tensor(INPUTS[0]))), first)


def test_bad_settings_and_heads_are_refused():
    with pytest.raises(ShiftbenchError, match="filter_k must be >= 1"):
        methods.load("t3a", filter_k=0)
    with pytest.raises(ShiftbenchError, match="filter_k must be an integer >= -1"):
        methods.load("t3a", filter_k=-2)
    with pytest.raises(ShiftbenchError, match="linear classifier head"):
        TemplateAdjuster(nn.Sequential(nn.Linear(3, 2)))
    model = SourceModel("mlp_head", nn.Identity(), nn.Sequential(nn.Linear(3, 2)), lambda x: x, "f")
    assert "linear classifier" in T3A().not_applicable(model, None)
    assert set(T3A.grid["filter_k"]) == {1, 5, 20, 50, 100, -1}
