"""NOTE against its definition (instance-aware BatchNorm, prediction-balanced reservoir sampling, the entropy
step on the memory with running statistics by momentum, batch-free predictions cut at the update points)
and against numbers produced by the authors' code."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch
from shiftbench.methods.note import InstanceAwareBatchNorm, Note, PredictionBalancedReservoir, convert_to_iabn
from tasks import network_task

# Reference: TaesikGong/NOTE at a714a2a: utils/iabn.py (convert_iabn with k = 4, skip_thres = 1),
# utils/memory.py (PBRS, capacity 6), utils/loss_functions.py (HLoss), driven by learner/note.py's lines
# (NOTE.__init__ with use_learned_stats: BN running statistics kept, momentum 0.01, BN/IABN affine
# parameters trainable; train_online: each example predicted in eval mode, added to PBRS under its
# prediction, evaluated batch-free; every 4 examples the network in train mode takes one Adam step
# (lr 0.05, weight decay 0, over net.parameters()) on HLoss of the memory contents), with conf.args stubbed
# and utils.memory's `random` replaced by a scripted random.Random(5): choice(seq) -> seq[randrange(len(seq))],
# randrange(0, m) -> randrange(m), uniform(0, 1) -> random(); "iabn": with convert_iabn, "bn": without.
# The network: Sequential(Sequential(Conv2d(1, 2, 3, padding=1), BatchNorm2d(2), ReLU(), Flatten()),
# Linear(32, 3)) with WEIGHTS; the stream: INPUTS in order. "logits": the evaluation of each example;
# "memory": PBRS's contents at the end, as indices into INPUTS, class by class; "bn_after": the BatchNorm
# layer's parameters and running statistics at the end (8 significant digits).
WEIGHTS = {"0.0.weight": [[[[-0.053651005, 0.25191706, -0.3601234], [-1.1561658, 0.73221594, 0.36553088],
                            [-0.11676641, 0.037123378, 0.283225]]],
                          [[[0.42790973, 1.3084821, -0.83666402], [0.69854569, 0.3214263, 1.705478],
                            [-0.10276572, 0.33957979, 0.14366406]]]],
           "0.0.bias": [-1.6708447, -0.35332292],
           "0.1.weight": [0.71610093, 0.73663974],
           "0.1.bias": [-0.21300325, -0.064007021],
           "0.1.running_mean": [-0.30403835, 0.77995765],
           "0.1.running_var": [1.9067937, 0.60785222],
           "0.1.num_batches_tracked": 0,
           "1.weight": [[0.17772096, -0.48465452, -0.31879675, 1.5486928, -0.26389003, -0.10057875, 0.45361447,
                         -1.627925, -0.37029159, -0.48263213, 0.67044628, -0.90230703, -1.1538211, 0.58032542,
                         -0.58609098, -0.37072489, -0.28849652, 0.48116279, -0.052641749, -0.2963095, 0.29518092,
                         -0.18035154, -1.1084459, 0.97720724, -0.2312928, -0.29701111, 0.35872507, -0.013891785,
                         -0.78511661, -0.342347, -0.44353926, -0.55253685],
                        [-0.30450013, 1.2422445, 0.13092998, -0.12692596, -0.063953958, -0.5144459, 1.3901134,
                         0.25373313, -0.91653651, 0.48067245, 0.23027678, 0.23261163, 0.21175484, -0.68683124,
                         0.77269214, -0.008859735, -0.86300486, -0.47641724, -0.34744516, -0.42110354, -0.33426452,
                         -0.20913535, 0.27520859, 0.64281338, -0.29820666, 0.93401635, -0.22971234, 1.1351451,
                         0.60157937, 0.48969191, -0.88671219, 0.89077848],
                        [-1.0070901, 1.1585956, -0.26705852, 0.35366404, 0.40820244, -0.015070419, 1.572408,
                         -0.21497354, 0.47245887, -0.22977319, -0.32963616, 0.021127356, 0.11169938, 0.27988487,
                         0.012428526, 1.6501371, 0.70337081, -0.66253895, -0.088442557, 0.21795195, 1.7266815,
                         -0.75980783, 1.1602808, -0.6833514, 0.70255727, -0.46753824, -0.70970523, -0.83300722,
                         0.32440296, 0.33568221, 0.13357788, -0.026313495]],
           "1.bias": [0.43762049, 0.88083309, 1.8193876]}
# 20 examples of 1 x 4 x 4
INPUTS = [[[2.5247476, 1.7604917, 0.061598808, -0.72071296], [-0.39368707, -0.92324919, -1.6559602, -1.6838166],
           [1.4893858, 0.3592225, -1.6197567, 0.86982512], [0.2275636, 1.3921155, 0.18791468, -0.8754217]],
          [[0.53562003, -1.6152045, 1.7435082, 2.2207885], [-0.6521703, -2.0682793, -1.1629862, 0.62493664],
           [0.061701462, -0.57671624, -0.39515567, -0.39400017], [-0.25750059, -1.0629463, -1.8494489, -0.6870268]],
          [[-0.18133174, -0.93431431, -0.32576406, 0.92297262], [0.63708586, 0.94963843, 0.46365678, 2.2503409],
           [0.1316904, -0.83802313, 3.7458844, 0.079253435], [1.0011028, -1.2677267, -1.7468241, -0.66171288]],
          [[3.3080449, -0.502473, 1.6872327, 0.6955815], [-2.1942534, -0.46175307, -0.32485837, 0.50511491],
           [-0.065012559, -0.73849362, 2.2895458, 0.69497323], [-0.60640746, 0.7325263, -0.36074549, -0.50903308]],
          [[0.67754537, 0.5614112, -1.3740155, 1.9731823], [1.9635605, 1.6741536, -0.23498382, 2.106539],
           [-0.47804481, 0.36813787, 0.68252861, -1.5065744], [-1.3505485, -0.14869501, -0.96379465, 0.12471706]],
          [[0.1091741, 0.95057082, -1.0456768, 1.3119049], [-0.77771556, -2.1208541, 0.65365136, 0.90716469],
           [-0.018992692, -1.377527, -0.94706398, -2.0497687], [1.662042, 0.8434965, 0.11085895, -1.0227252]],
          [[0.75375301, 0.42274374, -0.40163207, 0.60371405], [-2.758086, 2.9731226, -1.5446064, -0.58956999],
           [2.6758702, 0.62838203, -1.1912681, -0.056692705], [1.4850712, 0.70802814, 1.6362325, -0.11537017]],
          [[0.53553915, 2.3588307, -1.5629414, -0.63443762], [0.361103, -1.0624536, -0.79539168, 0.52051252],
           [1.7586014, 0.77627927, -0.45148486, 1.1113029], [0.91305709, -0.62787235, 0.43338299, 0.71250659]],
          [[1.404484, -0.038280308, 1.5049831, -0.46243626], [2.9974501, 2.0746541, -0.17991059, 1.2219539],
           [1.8783774, 0.22363274, -0.39884919, 2.8057311], [0.78073859, -0.98738104, -1.0655402, -1.2696418]],
          [[-0.2478085, 0.7923975, -1.110198, 0.52989465], [0.050483972, -0.87936109, 1.0260018, -0.47961587],
           [1.2918398, 1.1001526, -0.091696128, -0.96109599], [-1.4736655, -0.49765652, 1.1016408, 0.46920556]],
          [[2.2003813, -1.5281247, -3.5277877, -2.0208416], [-6.1154852, 2.6113994, -1.1514001, -1.1327448],
           [-1.8760247, 4.9507651, -0.51645148, -4.3730273], [0.47855568, 0.59058273, 0.44323933, -0.87449467]],
          [[0.95908117, 0.77285981, -3.3746767, 0.21276581], [-2.2210784, -0.25958404, -1.5449278, -4.5555935],
           [1.7114601, 2.9975088, -1.1906071, 3.8984609], [-0.092242628, 6.2106495, 5.7333875, -1.8139566]],
          [[-1.0196546, -3.3723803, 2.3149097, 1.9529264], [1.3768513, -1.4120719, -0.54736269, -1.3824548],
           [0.6438154, 1.522249, 1.5209444, 0.54934561], [1.2036388, 1.0612769, 5.3686557, -2.9664433]],
          [[-3.0534046, -0.99043977, 0.075224459, 2.1065829], [1.3776394, -3.5577168, 1.5562575, -2.8612232],
           [-4.0238361, -1.4376984, 4.7359648, -1.1666268], [1.7032068, 6.4908276, -0.1028555, 2.3058836]],
          [[0.25112188, 0.23597789, 0.098825812, -1.24559], [-2.0512822, -1.3959928, 3.7058544, -2.2532701],
           [2.0534291, 0.63061559, -0.15956286, -0.27378041], [-1.5622706, -1.0087252, -1.5095818, 0.79276323]],
          [[2.1512556, -2.0435786, -0.86297381, 0.51722813], [3.0457535, 1.2729261, -1.0092608, 2.9514534],
           [-1.1434819, -1.3032043, 1.0226923, 2.3156734], [0.82922566, 3.2701392, -3.4166734, -0.3927297]],
          [[-2.3030376, 4.608592, -0.16742915, 2.6041434], [-5.0846987, 0.97824037, -2.8551691, -2.1060066],
           [1.5744078, -2.5723023, 2.2165856, -2.6773899], [-1.0563811, 0.39314318, 0.39196461, 0.83385563]],
          [[0.51447487, -2.0757885, -0.0030365586, 3.877357], [0.8707906, 1.5233448, -3.5350218, -1.765397],
           [1.4766276, 5.1595116, -1.687732, 4.1395669], [1.3544209, -2.259645, -2.7747598, 1.0817449]],
          [[5.418685, -1.9942015, 1.9233737, -0.43352237], [-0.46481416, -1.5887983, 0.64356434, -5.4986429],
           [3.1755626, 0.037097931, -2.8186905, 2.6051121], [-0.081442595, 0.71446729, 5.0002799, -2.3683734]],
          [[-2.540956, -2.8601203, 2.2708349, -0.35218588], [-1.7830753, 1.730001, -3.4288862, 3.829906],
           [-4.3691363, 4.1577649, 0.5401566, -1.2047549], [-1.4724891, 1.675107, -0.98667169, 1.3026308]]]
REFERENCE = {"iabn": {"logits": [[-1.0352789, 0.75466228, 2.6640823], [0.49167567, 0.83045113, 0.40207601],
                                 [-0.28658035, 3.4722283, 1.3482034], [0.5766139, 1.0119066, 1.8589751],
                                 [0.77478659, 1.2802302, 2.1679795], [0.14163008, 1.4829094, 2.2547011],
                                 [-1.0467941, 1.8571532, 4.4165959], [-0.88771272, -0.17444426, 3.1757989],
                                 [-1.6719533, 1.2850145, 5.6389856], [-0.51100779, 0.18017328, 1.8105593],
                                 [-0.60609686, 0.40034261, 4.7014179], [0.0295313, 1.5923617, 2.8114111],
                                 [-1.484537, 2.9840012, 2.0893884], [-1.2189486, 1.5473778, 3.1132627],
                                 [1.2255967, 1.3333734, 1.6253061], [-3.1354542, 3.8820846, 6.1520543],
                                 [-1.6976439, 0.8919242, 3.4555624], [-1.703921, 1.5596557, 5.555408],
                                 [-0.37105891, 0.97715527, 3.2170424], [-5.0116611, 2.3795602, 2.4464068]],
                      "pseudo_labels": [2, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2],
                      "memory": [[], [1, 2, 12], [14, 17, 18]],
                      "bn_after": {"0.1.weight": [0.96489602, 0.95858043],
                                   "0.1.bias": [0.036754802, 0.16317582],
                                   "0.1.running_mean": [-0.37209129, 0.73508203],
                                   "0.1.running_var": [2.0516028, 1.2622732]}},
             "bn": {"logits": [[-2.9566703, 1.1140666, 4.5843449], [1.1687925, 0.75709379, -0.17853534],
                               [-3.5845282, 10.849994, 0.73321509], [0.37745237, 1.4235678, 2.6001127],
                               [0.11312535, 2.103857, 2.2552414], [-0.6534034, 1.7495713, 2.2875268],
                               [-3.9711149, 6.2604294, 11.023401], [-2.3685889, -1.2334089, 4.6655765],
                               [-4.0805311, 1.9835713, 13.213102], [-1.2317351, -0.2543841, 1.7186184],
                               [-2.4174869, -1.2930298, 12.851517], [-10.012267, 14.639728, 5.9584737],
                               [-5.9535885, 9.4667301, 3.9853201], [-9.5021124, -2.3125474, 7.3179302],
                               [1.7964039, 0.87738663, -0.72515571], [-8.6921806, 10.314009, 14.050917],
                               [-7.0995708, 0.20189828, 6.6687841], [-3.8311899, 2.6448908, 13.94746],
                               [-2.2558334, 3.7805586, 7.7427368], [-18.192739, 5.5821486, 4.9199734]],
                    "pseudo_labels": [2, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 2, 0, 2, 2, 2, 2, 1],
                    "memory": [[1, 14], [12, 19], [0, 13]],
                    "bn_after": {"0.1.weight": [0.96185702, 0.94486332],
                                 "0.1.bias": [0.037146945, 0.12411546],
                                 "0.1.running_mean": [-0.37209374, 0.72929031],
                                 "0.1.running_var": [2.0760679, 1.278383]}}}


class ScriptedGenerator:
    """PBRS's two draws from a Python ``random.Random``, as the reference's patched ``random`` made them."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def integers(self, high: int) -> int:
        return self.r.randrange(high)

    def random(self) -> float:
        return self.r.random()


def reference_network() -> nn.Sequential:
    net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten()),
                        nn.Linear(32, 3))
    net.load_state_dict({k: torch.tensor(v) for k, v in WEIGHTS.items()})
    return net.eval()


def inputs() -> torch.Tensor:
    return torch.tensor(INPUTS).unsqueeze(1)


def bn_of(note: Note) -> nn.BatchNorm2d:
    layer = note.network[0][1]
    return layer.bn if isinstance(layer, InstanceAwareBatchNorm) else layer


@pytest.mark.parametrize("variant", ["iabn", "bn"])
def test_stream_matches_the_authors_code(variant):
    want = REFERENCE[variant]
    note = Note(reference_network(), ScriptedGenerator(5), lr=0.05, memory_size=6, update_every=4,
                bn_momentum=0.01, iabn=variant == "iabn", iabn_k=4.0)
    x = inputs()
    logits = torch.cat([note(x[i:i + 5]) for i in range(0, 20, 5)])  # updates fall inside batches
    torch.testing.assert_close(logits, torch.tensor(want["logits"]), rtol=1e-4, atol=1e-5)
    assert logits.argmax(1).tolist() == want["pseudo_labels"]
    stored = [[next(i for i in range(20) if torch.equal(x[i], s)) for s in items] for items in note.memory.stored]
    assert stored == want["memory"]
    bn = bn_of(note)
    for name, value in want["bn_after"].items():
        torch.testing.assert_close(getattr(bn, name.split(".")[-1]).detach(), torch.tensor(value), rtol=1e-4, atol=1e-5)


# --- instance-aware BatchNorm against its formulas ----------------------------------------------------------


def iabn_by_hand(x: torch.Tensor, mean_b: torch.Tensor, var_b: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor, k: float, eps: float = 1e-5) -> torch.Tensor:
    """IABN written per example and channel: shrink the instance statistics' deviation by k standard errors."""
    out = torch.empty_like(x)
    n, c = x.shape[:2]
    length = x[0, 0].numel()
    for i in range(n):
        for j in range(c):
            v = x[i, j].flatten()
            mu_i, s2_i = v.mean(), v.var(unbiased=True)
            t_mu = k * torch.sqrt((var_b[j] + eps) / length)
            t_s2 = k * (var_b[j] + eps) * (2 / (length - 1)) ** 0.5
            d_mu, d_s2 = mu_i - mean_b[j], s2_i - var_b[j]
            mu = mean_b[j] + torch.sign(d_mu) * torch.clamp(d_mu.abs() - t_mu, min=0)
            s2 = torch.clamp(var_b[j] + torch.sign(d_s2) * torch.clamp(d_s2.abs() - t_s2, min=0), min=0)
            out[i, j] = (x[i, j] - mu) / torch.sqrt(s2 + eps) * weight[j] + bias[j]
    return out


def trained_bn(c: int = 3, seed: int = 0) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c, momentum=0.01)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return bn


def odd_batch(seed: int = 1) -> torch.Tensor:
    """Examples whose statistics deviate from each other's by various amounts (some beyond the threshold)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 3, 3, 3, generator=g)
    scale, shift = torch.tensor([0.3, 1.0, 3.0, 1.0]), torch.tensor([0.0, 2.0, -1.0, 0.1])
    return x * scale.view(4, 1, 1, 1) + shift.view(4, 1, 1, 1)


@pytest.mark.parametrize("k", [0.5, 1.0, 4.0])
def test_iabn_eval_mode_uses_running_statistics_adjusted_per_instance(k):
    bn = trained_bn()
    layer = InstanceAwareBatchNorm(copy.deepcopy(bn), k).eval()
    x = odd_batch()
    want = iabn_by_hand(x, bn.running_mean, bn.running_var, bn.weight.detach(), bn.bias.detach(), k)
    torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bn.running_mean, bn.running_mean)  # eval mode: statistics unchanged


def test_iabn_train_mode_uses_unbiased_batch_statistics_and_moves_the_running_ones():
    bn = trained_bn()
    layer = InstanceAwareBatchNorm(copy.deepcopy(bn), 1.0).train()
    x = odd_batch()
    mean_b, var_b = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)
    want = iabn_by_hand(x, mean_b, var_b, bn.weight.detach(), bn.bias.detach(), 1.0)
    torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bn.running_mean, 0.99 * bn.running_mean + 0.01 * mean_b)
    torch.testing.assert_close(layer.bn.running_var, 0.99 * bn.running_var + 0.01 * var_b)


def test_iabn_limits_a_huge_threshold_is_batchnorm_and_zero_is_instance_norm():
    bn = trained_bn()
    x = odd_batch()
    huge = InstanceAwareBatchNorm(copy.deepcopy(bn), 1e6).eval()
    torch.testing.assert_close(huge(x), copy.deepcopy(bn).eval()(x), rtol=1e-5, atol=1e-5)
    zero = InstanceAwareBatchNorm(copy.deepcopy(bn), 0.0).eval()
    mu, s2 = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=True, keepdim=True)
    want = (x - mu) / torch.sqrt(s2 + 1e-5) * bn.weight.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(zero(x), want.detach(), rtol=1e-5, atol=1e-5)


def test_iabn_leaves_layers_without_spatial_positions_unadjusted():
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    x = torch.randn(5, 3) * 3
    layer = InstanceAwareBatchNorm(copy.deepcopy(bn), 0.0)
    torch.testing.assert_close(layer.eval()(x), copy.deepcopy(bn).eval()(x))
    want = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + 1e-5)  # train mode: unbiased batch variance
    torch.testing.assert_close(layer.train()(x), want.detach() * bn.weight + bn.bias, rtol=1e-5, atol=1e-5)


def test_conversion_wraps_every_batchnorm_and_keeps_its_parameters():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sequential(nn.Flatten(), nn.BatchNorm1d(2)))
    bns = [net[1], net[2][1]]
    convert_to_iabn(net, 3.0)
    assert [type(m) for m in (net[1], net[2][1])] == [InstanceAwareBatchNorm] * 2
    assert [net[1].bn, net[2][1].bn] == bns and net[1].k == 3.0


# --- prediction-balanced reservoir sampling -------------------------------------------------------------------


class Draws:
    """A generator returning the given draws in order (and recording what was asked)."""

    def __init__(self, *draws: float):
        self.draws, self.asked = list(draws), []

    def integers(self, high: int) -> int:
        self.asked.append(("integers", high))
        return self.draws.pop(0)

    def random(self) -> float:
        self.asked.append(("random",))
        return self.draws.pop(0)


def ids(memory: PredictionBalancedReservoir) -> list[list[int]]:
    return [[int(x) for x in items] for items in memory.stored]


def test_pbrs_fills_up_then_evicts_from_a_largest_class_for_a_minority_one():
    rng = Draws(1, 0)  # of the largest classes (0 and 2, two each) take the second (2), evict its first stored
    memory = PredictionBalancedReservoir(5, 3, rng)
    for i, label in enumerate([0, 2, 0, 2, 1]):
        memory.add(torch.tensor(i), label)
    assert ids(memory) == [[0, 2], [4], [1, 3]] and rng.asked == []
    memory.add(torch.tensor(5), 1)
    assert ids(memory) == [[0, 2], [4, 5], [3]]
    assert rng.asked == [("integers", 2), ("integers", 2)]


def test_pbrs_replaces_within_a_largest_class_with_probability_stored_over_seen():
    memory = PredictionBalancedReservoir(4, 2, Draws())
    for i, label in enumerate([0, 0, 0, 1]):
        memory.add(torch.tensor(i), label)
    # the 4th class-0 example: m_0 / n_0 = 3 / 4; a draw of 0.75 keeps it (evicting stored index 1) ...
    memory.rng = Draws(0.75, 1)
    memory.add(torch.tensor(4), 0)
    assert ids(memory) == [[0, 2, 4], [3]]
    # ... the 5th: 3 / 5 = 0.6; a draw of 0.61 discards it, nothing else drawn, but it counts as seen
    memory.rng = Draws(0.61)
    memory.add(torch.tensor(5), 0)
    assert ids(memory) == [[0, 2, 4], [3]] and memory.seen == [5, 1] and memory.rng.asked == [("random",)]
    torch.testing.assert_close(memory.contents(), torch.tensor([0, 2, 4, 3]))


def test_pbrs_balances_a_skewed_stream_and_never_exceeds_its_capacity():
    memory = PredictionBalancedReservoir(12, 3, np.random.default_rng(0))
    labels = [0] * 200 + [1] * 30 + [2] * 6
    for i, label in enumerate(labels):
        memory.add(torch.tensor(i), label)
        assert len(memory) <= 12
    # the minority classes take slots from the largest until all hold capacity / K; then each is a reservoir
    assert [len(items) for items in memory.stored] == [4, 4, 4]
    assert all(int(x) >= 230 for x in memory.stored[2]) and all(200 <= int(x) < 230 for x in memory.stored[1])


# --- the adaptation -----------------------------------------------------------------------------------------


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                                      nn.Linear(3 * 16, 6), nn.BatchNorm1d(6), nn.ReLU()), nn.Linear(6, 4))
    with torch.no_grad():
        for bn in (net[0][1], net[0][5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return net.eval()


def stream(n: int = 12, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 4, 4, generator=g) * 1.5 + 0.3


def bn_reference(net: nn.Sequential, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``small_net`` in train mode (batch statistics, biased variance) with its BN affine parameters given."""
    def norm(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        dims = [0] + list(range(2, h.ndim))
        shape = [1, -1] + [1] * (h.ndim - 2)
        mean, var = h.mean(dims, keepdim=True), h.var(dims, unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + 1e-5) * w.view(shape) + b.view(shape)
    h = torch.relu(norm(nn.functional.conv2d(x, net[0][0].weight, net[0][0].bias, padding=1), *params[:2]))
    h = torch.relu(norm(nn.functional.linear(h.flatten(1), net[0][4].weight, net[0][4].bias), *params[2:]))
    return nn.functional.linear(h, net[1].weight, net[1].bias)


def test_one_update_is_an_adam_step_on_the_class_averaged_entropy_of_the_memory():
    net, x = small_net(), stream(6)
    lr = 0.01
    with torch.no_grad():
        source_logits = net(x)
    layers = [net[0][1], net[0][5]]
    params = [p.detach().clone().requires_grad_(True) for bn in layers for p in (bn.weight, bn.bias)]
    p = torch.softmax(bn_reference(net, params, x), 1)
    loss = -(p * torch.log(p + 1e-6)).sum(1).mean() / 4  # mean entropy / K
    grads = torch.autograd.grad(loss, params)
    # first Adam step: m_hat = g, v_hat = g^2, so p <- p - lr g / (|g| + 1e-8)
    want = [q - lr * g / (g.abs() + 1e-8) for q, g in zip(params, grads)]
    h1 = nn.functional.conv2d(x, net[0][0].weight, net[0][0].bias, padding=1)
    want_mean = 0.99 * net[0][1].running_mean + 0.01 * h1.mean((0, 2, 3))
    want_var = 0.99 * net[0][1].running_var + 0.01 * h1.var((0, 2, 3), unbiased=True)
    before = copy.deepcopy(net.state_dict())
    note = Note(net, Draws(), lr=lr, memory_size=6, update_every=6)
    torch.testing.assert_close(note(x), source_logits)  # predicted before the update they trigger
    got = [p.detach() for bn in layers for p in (bn.weight, bn.bias)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[0][1].running_mean, want_mean.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[0][1].running_var, want_var.detach(), rtol=1e-5, atol=1e-6)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {f"0.{i}.{n}" for i in (1, 5) for n in ("weight", "bias", "running_mean", "running_var",
                                                                "num_batches_tracked")}
    assert not note.network.training


def test_predictions_are_batch_free_and_cut_at_the_update_points():
    x = stream(12)
    whole = Note(small_net(), ScriptedGenerator(0), lr=0.05, memory_size=5, update_every=4)
    pieces = Note(small_net(), ScriptedGenerator(0), lr=0.05, memory_size=5, update_every=4)
    out = whole(x[:10])
    torch.testing.assert_close(out, torch.cat([pieces(x[:3]), pieces(x[3:7]), pieces(x[7:10])]))
    with torch.no_grad():  # the first 4 come from the source model (eval mode), each on its own
        source = small_net()
        torch.testing.assert_close(out[:4], torch.cat([source(x[i:i + 1]) for i in range(4)]), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(out[4:8], source(x[4:8]), atol=1e-4)  # after the first update
    assert whole.pending == 2


def test_no_update_while_the_memory_holds_fewer_than_two_examples():
    net = small_net()
    before = copy.deepcopy(net.state_dict())
    note = Note(net, ScriptedGenerator(0), lr=0.05, update_every=1)
    note(stream(1))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    note(stream(1, seed=3))
    assert not torch.equal(net[0][1].weight, before["0.1.weight"])


def test_plugin_uses_the_cells_generator_and_refuses_networks_without_batchnorm():
    x = stream(12)
    runs = []
    for _ in range(2):
        plugin = methods.load("note", lr=1e-3, memory_size=4, update_every=3)
        plugin.prepare(network_task(small_net()))
        runs.append(torch.cat([plugin.process(Batch.from_arrays(inputs=x[i:i + 4])) for i in (0, 4, 8)]))
    torch.testing.assert_close(runs[0], runs[1])
    assert isinstance(plugin.note.network[0][0][1], nn.BatchNorm2d)  # iabn=False by default
    plugin = methods.load("note", iabn=True)
    plugin.prepare(network_task(small_net()))
    assert isinstance(plugin.note.network[0][0][1], InstanceAwareBatchNorm)
    with pytest.raises(ShiftbenchError, match="BatchNorm"):
        Note(nn.Sequential(nn.Linear(3, 2)), Draws())
    with pytest.raises(ShiftbenchError, match="memory_size must be an integer >= 2"):  # it could never adapt
        methods.load("note", memory_size=1)
    assert set(type(plugin).grid) == {"lr", "iabn"}
