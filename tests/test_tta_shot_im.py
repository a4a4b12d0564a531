"""SHOT-IM against its definition (the information-maximisation loss, a hand-written Nesterov SGD step on
the backbone with the head frozen) and against numbers produced by the authors' code."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Task
from shiftbench.methods.shot_im import ShotIM, information_maximisation_loss
from shiftbench.model import SourceModel

# Reference: tim-learn/SHOT at f7d555a, object/: network.feat_bottleneck(6, 4, type="bn") as netB,
# network.feat_classifier(3, 4, type="linear") as netC (frozen, eval), netF = Sequential(Linear(5, 6), ReLU()),
# with the weights WEIGHTS; optimiser and loss as image_target.train_target builds them (op_copy, SGD param
# groups at lr 0.05, lr_scheduler setting momentum 0.9 / Nesterov / weight decay 1e-3, here with max_iter 1e12
# so that its decay is 1), its IM lines (loss.Entropy, ent=gent=True, epsilon 1e-5, cls_par 0, ent_par 1),
# 3 iterations on the batches INPUTS, netF and netB in train mode. LOGITS: outputs_test of each iteration
# (before its step); LOSSES: im_loss; AFTER: netF and netB's state after the 3 steps (8 significant digits).
WEIGHTS = {"F.0.weight": [[-1.5255959, -0.7502318, -0.65398091, -1.6094848, -0.10016718],
                          [-0.60918891, -0.97977227, -1.6090963, -0.71214461, 0.30372199],
                          [-0.77731431, -0.25145525, -0.22227049, 1.6871134, -0.32062083],
                          [-0.29934606, 1.8793458, -0.072131783, 0.1577706, -0.7734549],
                          [0.19905651, 0.045702778, -1.3923858, 2.6890869, -0.11101983],
                          [0.29273525, -0.15784515, -0.02878714, 2.357111, -1.0373387]],
           "F.0.bias": [1.3800106, -1.3505054, 0.34547541, 0.50457799, 1.8213266, -0.18142784],
           "B.bn.weight": [-0.95149636, 0.40573668, -1.5164275, 0.732198],
           "B.bn.bias": [2.2819784, -1.2080135, 1.1120269, 2.2174358],
           "B.bn.running_mean": [-0.983217, 0.23554465, 1.456355, 0.082260147],
           "B.bn.running_var": [1.4901272, 1.735768, 0.86189592, 1.4126112],
           "B.bn.num_batches_tracked": 0,
           "B.bottleneck.weight": [[-1.4503865, -1.1802155, 0.40997243, 0.40845066, 0.2578654, 1.0950214],
                                   [-0.50648659, 0.099775404, 0.81653392, -0.91352361, 1.3851457, -0.81384623],
                                   [-0.92757654, 1.1119633, 0.61554492, 0.19382203, -0.10344208, -0.15121692],
                                   [-2.102083, -0.62002194, -1.478231, -1.1334175, -0.10103477, 0.34335375]],
           "B.bottleneck.bias": [-2.1355281, -0.0015608738, 1.0414605, 0.80914611],
           "C.fc.weight": [[0.52920085, -0.044460628, 0.058140136, 0.85052782],
                           [-1.0904388, -0.10891991, -1.2277273, 0.054862894],
                           [-0.055852637, 0.60216838, -0.70367986, -0.21983035]],
           "C.fc.bias": [-1.0508044, -0.25132099, -0.75881565]}
AFTER = {"F.0.weight": [[-1.5209433, -0.73950636, -0.66279793, -1.602006, -0.10777654],
                        [-0.61546642, -0.97625089, -1.603843, -0.71234459, 0.30185086],
                        [-0.77118093, -0.25015569, -0.22024061, 1.6980456, -0.32327539],
                        [-0.29956988, 1.8857108, -0.075489387, 0.16002569, -0.77649397],
                        [0.19853576, 0.045498811, -1.3920456, 2.6873941, -0.10984804],
                        [0.28987515, -0.15767702, -0.027809795, 2.355227, -1.0357047]],
         "F.0.bias": [1.3751811, -1.3526322, 0.34875333, 0.50387782, 1.8205886, -0.18277849],
         "B.bn.weight": [-0.98658293, 0.40404168, -1.5402715, 0.74738371],
         "B.bn.bias": [2.2571232, -1.205838, 1.0914028, 2.2016964],
         "B.bn.running_mean": [-0.99739426, 0.31095773, 1.2629366, -1.2944543],
         "B.bn.running_var": [7.8504639, 5.3817334, 1.2515244, 6.3950586],
         "B.bn.num_batches_tracked": 3,
         "B.bottleneck.weight": [[-1.4453031, -1.1798686, 0.41231701, 0.41869155, 0.25688431, 1.0958089],
                                 [-0.50645417, 0.099761955, 0.81642646, -0.91220164, 1.3851013, -0.81338471],
                                 [-0.9172129, 1.1085263, 0.63474441, 0.23302746, -0.079978719, -0.12284219],
                                 [-2.0972178, -0.61993307, -1.4797773, -1.1378751, -0.10721418, 0.34023523]],
         "B.bottleneck.bias": [-2.1346686, -0.0015602456, 1.0410414, 0.80882049]}
INPUTS = [[[1.6122642, 1.7809222, 0.67570138, -0.88954884, 1.0846515],
           [2.1354086, -1.1186914, -1.7293706, 0.29218847, 0.18170531],
           [-0.28367919, 0.18059948, 1.4407172, -1.2037761, 1.7192564],
           [0.82680255, 0.054508567, -0.23733383, 0.21083421, -3.4379086],
           [0.66339272, 0.7324633, 0.1357251, 0.7688536, 1.8345144],
           [1.7758768, 1.6582758, 1.8694422, -0.48089546, 2.3321755],
           [0.65278971, 3.171365, -0.3534016, -0.59420818, -1.1535137],
           [2.1774545, 2.1154861, -0.49188089, 0.62784922, -0.56146091]],
          [[-0.27276117, 0.94897956, 2.7748706, -0.34800684, -0.10654035],
           [-1.8587439, 2.1705606, 2.2107768, 0.72421002, 0.84635723],
           [0.18025693, 0.81258649, 1.7232411, -1.7759039, 2.8861294],
           [-3.2471478, 2.9996142, 0.72357845, 0.62269807, 1.7076955],
           [2.4985614, -0.53471154, -0.81726116, -0.003235817, -0.3607257],
           [-2.3012516, -1.2384796, 1.0818887, -0.37959862, 0.11097455],
           [3.8034935, -0.633008, -0.51328534, -3.3888822, -1.1253674],
           [-0.16432497, 2.7949531, 1.0576131, 1.8611121, 0.42096373]],
          [[1.3789372, 1.8966219, -0.95035774, -1.4892848, -3.1597328],
           [1.205485, 0.56911325, 0.51698011, 0.75825852, -0.5683226],
           [1.1465311, -1.0159919, -0.10387886, 2.2679346, -1.0379488],
           [-0.82937473, -1.0127919, -0.40922815, -0.82961076, -0.34785134],
           [1.3039517, 1.2757716, -1.0038412, 1.6302896, 0.809708],
           [-1.4241343, 1.2783289, -1.0089304, 0.35288066, -0.20479542],
           [2.4034979, 1.0261822, 2.8930917, -1.1900654, 1.4615941],
           [1.337991, -1.22772, -0.90505749, -0.76066977, 1.4281774]]]
LOGITS = [[[2.5491812, -3.3145926, -2.6495738], [2.9113111, -3.2227294, -2.1545577],
           [2.8884375, -10.300486, -5.5593805], [1.0709803, -1.9422529, -2.6511259],
           [2.8774428, -4.3652968, -2.8647218], [3.0266979, -3.9568202, -2.9468551], [0.6814909, -1.0483477, -1.541948],
           [1.283849, -2.6631777, -2.7011833]],
          [[2.5996573, -2.6517448, -2.6534801], [1.7248123, -0.84943163, -1.6779237],
           [2.9316909, -5.7028885, -3.759182], [1.1013994, -3.0174117, -2.3437896], [2.7695501, -3.4897509, -2.5808167],
           [2.383554, -9.3747072, -4.9874496], [2.9300194, -5.7546949, -3.7810025],
           [0.80361485, 0.10658759, -1.2515013]],
          [[1.7228754, -2.8192995, -2.5551], [2.4114501, -2.4482474, -2.5617938], [1.4797592, -0.50994134, -1.5537493],
           [2.4967403, -10.291865, -5.6370792], [1.7847743, -1.6385305, -1.8712069], [1.2915905, -4.966712, -3.0468235],
           [3.1467102, -3.2743478, -2.8219557], [2.8154325, -4.6070814, -2.9173493]]]
LOSSES = [-0.045703515, -0.091428816, -0.030005544]


def reference_network() -> nn.Sequential:
    """Sequential(backbone, head) holding the reference weights: netF and netB as the backbone, netC's fc as head."""
    backbone = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.BatchNorm1d(4))
    head = nn.Linear(4, 3)
    net = nn.Sequential(backbone, head)
    net.load_state_dict({name: torch.tensor(WEIGHTS[key]) for name, key in NAMES.items()})
    return net.eval()


#: this network's state names -> the reference's
NAMES = {"0.0.weight": "F.0.weight", "0.0.bias": "F.0.bias", "0.2.weight": "B.bottleneck.weight",
         "0.2.bias": "B.bottleneck.bias", "0.3.weight": "B.bn.weight", "0.3.bias": "B.bn.bias",
         "0.3.running_mean": "B.bn.running_mean", "0.3.running_var": "B.bn.running_var",
         "0.3.num_batches_tracked": "B.bn.num_batches_tracked", "1.weight": "C.fc.weight", "1.bias": "C.fc.bias"}


def task_of(network: nn.Sequential) -> Task:
    """A task around a source model made of ``network``'s backbone and head (prepare/process only)."""
    model = SourceModel("tiny", network[0], network[1], preprocess=lambda x: x, fingerprint="tiny")
    return Task(n_classes=3, target=None, batches=[], seed=0, model=model, cache=None)


def im_loss_by_hand(p: torch.Tensor, eps: float = 1e-5) -> float:
    """Mean entropy minus the entropy of the mean, written out over examples and classes."""
    n, k = p.shape
    mean_entropy = sum(-float(p[i, c]) * math.log(float(p[i, c]) + eps) for i in range(n) for c in range(k)) / n
    p_mean = [sum(float(p[i, c]) for i in range(n)) / n for c in range(k)]
    return mean_entropy + sum(q * math.log(q + eps) for q in p_mean)


def test_steps_match_the_authors_code():
    net = reference_network()
    shot = ShotIM(net, lr=0.05, momentum=0.9, weight_decay=1e-3)
    for x, want, want_loss in zip(INPUTS, LOGITS, LOSSES):
        logits = shot(torch.tensor(x))
        torch.testing.assert_close(logits, torch.tensor(want), rtol=1e-5, atol=1e-5)
        assert information_maximisation_loss(logits).item() == pytest.approx(want_loss, rel=1e-4, abs=1e-6)
    state = net.state_dict()
    for name, key in NAMES.items():
        if key in AFTER:
            torch.testing.assert_close(state[name].double(), torch.tensor(AFTER[key]).double(), rtol=1e-5, atol=1e-5)
        else:  # the head: frozen
            assert torch.equal(state[name], torch.tensor(WEIGHTS[key]))


def test_loss_is_mean_entropy_minus_entropy_of_the_mean():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=g) * 2
    assert information_maximisation_loss(logits).item() == pytest.approx(im_loss_by_hand(logits.softmax(1)), rel=1e-5)
    # fixed points: confident and diverse -> -log K (its minimum); confident and all alike -> 0; uniform -> 0
    confident_diverse = torch.eye(4) * 40
    assert information_maximisation_loss(confident_diverse).item() == pytest.approx(-math.log(4), abs=1e-4)
    confident_alike = torch.zeros(4, 4)
    confident_alike[:, 2] = 40
    assert information_maximisation_loss(confident_alike).item() == pytest.approx(0.0, abs=1e-4)
    assert information_maximisation_loss(torch.zeros(5, 4)).item() == pytest.approx(0.0, abs=1e-4)


def test_one_step_is_nesterov_sgd_on_the_backbone_only():
    net = reference_network()
    x = torch.tensor(INPUTS[0])
    lr, mu, wd = 0.1, 0.9, 1e-3
    backbone_names = [n for n, _ in net[0].named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in net[0].parameters()]

    def forward(ps: list[torch.Tensor]) -> torch.Tensor:  # train mode: the batch's own (biased) statistics
        h = torch.relu(nn.functional.linear(x, ps[0], ps[1]))
        h = nn.functional.linear(h, ps[2], ps[3])
        h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5) * ps[4] + ps[5]
        return nn.functional.linear(h, net[1].weight, net[1].bias)

    loss = information_maximisation_loss(forward(params))
    grads = torch.autograd.grad(loss, params)
    # first step of PyTorch's Nesterov SGD: d = g + wd p; buffer = d; p <- p - lr (d + mu buffer)
    want = {n: p - lr * (1 + mu) * (g + wd * p) for n, p, g in zip(backbone_names, params, grads)}
    head_before = copy.deepcopy(net[1].state_dict())
    running_before = net[0][3].running_mean.clone()
    shot = ShotIM(net, lr=lr, momentum=mu, weight_decay=wd)
    shot(x)
    for n, p in net[0].named_parameters():
        torch.testing.assert_close(p.detach(), want[n].detach(), rtol=1e-5, atol=1e-6)
        assert not torch.equal(p.detach(), dict(zip(backbone_names, params))[n].detach())  # every one moved
    for k, v in net[1].state_dict().items():
        assert torch.equal(v, head_before[k])
    assert not any(p.requires_grad for p in net[1].parameters())
    assert not torch.equal(net[0][3].running_mean, running_before)  # train mode: running statistics move too


def test_episodic_restores_the_source_model_and_the_momentum_before_each_batch():
    x1, x2 = (torch.tensor(x) for x in INPUTS[:2])
    shot = ShotIM(reference_network(), lr=0.05, episodic=True)
    shot(x1)
    out2 = shot(x2)
    fresh = ShotIM(reference_network(), lr=0.05)
    torch.testing.assert_close(out2, fresh(x2))
    for a, b in zip(shot.model.state_dict().values(), fresh.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_plugin_follows_the_wrapped_steps_and_refuses_single_examples():
    plugin = methods.load("shot_im", lr=0.05)
    plugin.prepare(task_of(reference_network()))
    shot = ShotIM(reference_network(), lr=0.05)
    for x in INPUTS:
        x = torch.tensor(x)
        torch.testing.assert_close(plugin.process(Batch.from_arrays(inputs=x)), shot(x))
    with pytest.raises(ShiftbenchError, match="at least 2 examples"):
        plugin.process(Batch.from_arrays(inputs=torch.randn(1, 5)))
    with pytest.raises(ShiftbenchError, match="momentum must be a finite number > 0"):
        methods.load("shot_im", momentum=0.0)
    assert set(type(plugin).grid) == {"lr"}
