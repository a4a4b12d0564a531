"""NOTE: non-i.i.d. test-time adaptation (Gong et al., NeurIPS 2022).

Two parts, as in the official code (TaesikGong/NOTE, ``learner/note.py``, ``utils/iabn.py``,
``utils/memory.py``; defaults of its ``tta.sh`` for CIFAR):

**Prediction-balanced reservoir sampling (PBRS).** A memory of ``memory_size`` (64) target inputs,
each stored under the class the current model predicts for it (eval mode). A new example of
predicted class ``c`` (the ``n_c``-th of that class so far) goes in directly while the memory has
room; when it is full: if ``c`` is not among the classes holding the most examples, a uniformly
chosen example of one of those (the class itself chosen uniformly among ties) is evicted for it;
otherwise, with probability ``m_c / n_c`` (``m_c`` examples of ``c`` stored), a uniformly chosen
stored example of ``c`` is evicted for it, and else it is discarded.

**Adaptation.** Every ``update_every`` (64) target examples, counted across batches, the network
in train mode takes ``steps`` (1: the official one epoch over a memory that fits one minibatch)
Adam steps (lr 1e-4, no weight decay) on the entropy of its predictions on the memory contents,
the official ``HLoss``: ``mean over examples and classes of -p log(p + 1e-6)``, i.e. the mean
entropy divided by the number of classes (kept: Adam's step barely depends on the loss's scale).
Only the normalisation layers' affine parameters are trained; their running statistics are kept
(``use_learned_stats``) and updated by each train-mode forward with momentum ``bn_momentum``
(0.01). Predictions are batch-free: each target example is classified in eval mode, with the
running statistics, by the model as it stands when the example arrives (before any update it
triggers), so a batch is cut at the update points and each piece predicted by the then current
model. The official evaluation is per example; eval mode makes that one batched forward.

**Instance-aware BatchNorm (IABN)**, ``iabn=True``: each BatchNorm layer normalises an example with
its own per-channel statistics over the ``L`` spatial positions (``mu_i``, unbiased ``s2_i``) where
they deviate much from the layer's statistics (``mu_b``, ``s2_b``: the batch's, unbiased, in train
mode; the running ones in eval mode)::

    mu  = mu_b + softshrink(mu_i - mu_b,  k sqrt((s2_b + eps) / L))
    s2  = relu(s2_b + softshrink(s2_i - s2_b,  k (s2_b + eps) sqrt(2 / (L - 1))))
    out = (x - mu) / sqrt(s2 + eps) * weight + bias

with ``softshrink(d, t) = sign(d) max(|d| - t, 0)`` and ``k = iabn_k`` (4). Layers with ``L <= 1``
(a BatchNorm1d on (N, C) features, the official ``skip_thres = 1``) use ``mu_b``, ``s2_b`` unchanged.

**A source network trained with plain BatchNorm** (every network in this harness): the paper trains
the source model with IABN in place of BatchNorm; swapping IABN into a network trained with
BatchNorm changes its function before any adaptation (the soft-shrinkage thresholds and the
unbiased variances are not what its later layers were trained on), so by default (``iabn=False``)
NOTE keeps the network's BatchNorm layers, as TTAB (LINs-lab/ttab) does (its default ``iabn:
False``; it only loads IABN weights trained as such): PBRS memory, running statistics updated with
``bn_momentum`` from the memory, entropy on the memory, batch-free eval-mode predictions.
``iabn=True`` swaps IABN in at test time anyway, on the network's trained BatchNorm parameters and
statistics (the grid tries both).

Deliberate deviations: the random draws of PBRS come from the cell's generator (numpy) rather than
Python's ``random``; an update due while the memory holds fewer than 2 examples (only possible
with ``update_every = 1`` at the very start of a stream) is skipped, since train-mode batch
statistics need 2 examples (hence also ``memory_size >= 2``); the memory is fed to the network as
one minibatch in its stored order (class by class), where the official code shuffles it into
minibatches of 128 (its CIFAR batch size): for memories of up to 128 examples that is one
minibatch, whose batch statistics and mean loss do not depend on the order.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._batchnorm import batchnorm_layers

ENTROPY_EPS = 1e-6  # inside the log of the official HLoss
SKIP_THRESHOLD = 1  # IABN leaves layers with this many spatial positions or fewer unadjusted


def note_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The official HLoss: the mean over examples *and classes* of ``-p log(p + 1e-6)``."""
    p = logits.softmax(1)
    return -(p * torch.log(p + ENTROPY_EPS)).mean()


def soft_shrink(d: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``sign(d) max(|d| - threshold, 0)``, elementwise, with a tensor of thresholds."""
    return torch.relu(d - threshold) - torch.relu(-d - threshold)


class InstanceAwareBatchNorm(nn.Module):
    """IABN around a trained BatchNorm layer ``bn``, whose affine parameters and running statistics it uses."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, k: float):
        super().__init__()
        self.bn, self.k = bn, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = list(range(2, x.ndim))
        positions = math.prod(x.shape[2:])
        shape = (1, x.shape[1]) + (1,) * len(spatial)
        if self.training:
            self.bn(x)  # updates the running statistics with momentum; its output is not used
            var_b, mean_b = torch.var_mean(x, dim=[0, *spatial], keepdim=True, correction=1)
        else:
            mean_b, var_b = self.bn.running_mean.view(shape), self.bn.running_var.view(shape)
        eps = self.bn.eps
        if positions <= SKIP_THRESHOLD:
            mean, var = mean_b, var_b
        else:
            var_i, mean_i = torch.var_mean(x, dim=spatial, keepdim=True, correction=1)
            mean = mean_b + soft_shrink(mean_i - mean_b, self.k * torch.sqrt((var_b + eps) / positions))
            var_threshold = self.k * (var_b + eps) * math.sqrt(2 / (positions - 1))
            var = torch.relu(var_b + soft_shrink(var_i - var_b, var_threshold))
        out = (x - mean) * torch.rsqrt(var + eps)
        if self.bn.affine:
            out = out * self.bn.weight.view(shape) + self.bn.bias.view(shape)
        return out


def convert_to_iabn(network: nn.Module, k: float) -> nn.Module:
    """Replace every BatchNorm layer of ``network`` by IABN around it (in place); returns ``network``."""
    for parent in list(network.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, InstanceAwareBatchNorm(child, k))
    return network


class RandomDraws(Protocol):
    """The two draws PBRS makes (a numpy ``Generator`` has them)."""

    def integers(self, high: int) -> int: ...

    def random(self) -> float: ...


class PredictionBalancedReservoir:
    """PBRS: a memory of at most ``capacity`` examples, balanced over predicted classes, reservoir within each."""

    def __init__(self, capacity: int, n_classes: int, rng: RandomDraws):
        self.capacity, self.rng = capacity, rng
        self.stored: list[list[torch.Tensor]] = [[] for _ in range(n_classes)]
        self.seen = [0] * n_classes

    def __len__(self) -> int:
        return sum(len(items) for items in self.stored)

    def add(self, x: torch.Tensor, label: int) -> None:
        """Offer example ``x``, predicted as class ``label``, to the memory."""
        self.seen[label] += 1
        if len(self) >= self.capacity and not self._make_room(label):
            return
        self.stored[label].append(x)

    def _make_room(self, label: int) -> bool:
        """Evict one example for a new one of class ``label``; False if the new one is to be discarded instead."""
        sizes = [len(items) for items in self.stored]
        largest = [c for c, size in enumerate(sizes) if size == max(sizes)]
        if label not in largest:
            victim = largest[int(self.rng.integers(len(largest)))]
        elif self.rng.random() <= sizes[label] / self.seen[label]:
            victim = label
        else:
            return False
        self.stored[victim].pop(int(self.rng.integers(sizes[victim])))
        return True

    def contents(self) -> torch.Tensor:
        """The stored examples, class by class, each class in its stored order."""
        return torch.stack([x for items in self.stored for x in items])


class Note:
    """A network adapted by NOTE: ``note(x)`` returns the (batch-free) logits of ``x`` and adapts as examples arrive."""

    def __init__(self, network: nn.Module, rng: RandomDraws, lr: float = 1e-4, memory_size: int = 64,
                 update_every: int = 64, bn_momentum: float = 0.01, iabn: bool = False, iabn_k: float = 4.0,
                 steps: int = 1):
        NOTE.check_setting({"lr": lr, "memory_size": memory_size, "update_every": update_every,
                            "bn_momentum": bn_momentum, "iabn": iabn, "iabn_k": iabn_k, "steps": steps})
        norms = [bn for bn in batchnorm_layers(network) if bn.affine]
        if not norms:
            raise ShiftbenchError("note adapts the affine parameters of BatchNorm layers; this network has none "
                                  "(use an output adapter such as 'lame' for networks without BatchNorm)")
        network.requires_grad_(False)
        for bn in norms:
            bn.track_running_stats = True
            bn.momentum = bn_momentum
            bn.requires_grad_(True)
        self.network = convert_to_iabn(network, iabn_k) if iabn else network
        self.network.eval()
        self.rng, self.memory_size, self.update_every, self.steps = rng, memory_size, update_every, steps
        self.optimizer = torch.optim.Adam([p for bn in norms for p in (bn.weight, bn.bias)], lr=lr,
                                          betas=(0.9, 0.999), weight_decay=0.0)
        self.memory: PredictionBalancedReservoir | None = None
        self.pending = 0  # examples since the last update

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pieces, start = [], 0
        while start < len(x):
            stop = min(len(x), start + self.update_every - self.pending)
            pieces.append(self._predict_and_store(x[start:stop]))
            self.pending += stop - start
            if self.pending == self.update_every:
                self.adapt()
                self.pending = 0
            start = stop
        return torch.cat(pieces)

    @torch.no_grad()
    def _predict_and_store(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits of ``x``; each example then joins PBRS under its predicted class, in order."""
        self.network.eval()
        logits = self.network(x)
        if self.memory is None:
            self.memory = PredictionBalancedReservoir(self.memory_size, logits.shape[1], self.rng)
        for example, label in zip(x, logits.argmax(1).tolist()):
            self.memory.add(example.detach().clone(), label)
        return logits

    @torch.enable_grad()
    def adapt(self) -> None:
        """``steps`` Adam steps on the entropy of the memory's predictions, the network in train mode."""
        if len(self.memory) < 2:
            return
        memory = self.memory.contents()
        self.network.train()
        for _ in range(self.steps):
            note_entropy(self.network(memory)).backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
        self.network.eval()


class NOTE(ModelAdapter):
    """NOTE (Gong et al. 2022): PBRS memory, entropy on it every 64 examples, BN running stats by EMA, optional IABN."""

    name = "note"
    hyperparameters = {
        "lr": Float(1e-4, above=0, doc="Adam learning rate of the BatchNorm affine parameters"),
        "memory_size": Int(64, at_least=2, doc="examples the prediction-balanced reservoir holds (official: 64, its batch size)"),
        "update_every": Int(64, doc="target examples between two adaptations"),
        "bn_momentum": Float(0.01, above=0, at_most=1, doc="momentum of the BatchNorm running statistics"),
        "iabn": Bool(False, doc="swap instance-aware BatchNorm into the (BatchNorm-trained) source network"),
        "iabn_k": Float(4.0, above=0, doc="IABN's threshold, in standard errors of the layer's statistics"),
        "steps": Int(1, doc="Adam steps on the memory per adaptation"),
    }
    grid = {"lr": [1e-4, 1e-3], "iabn": [False, True]}

    def not_applicable(self, model, data) -> str | None:
        return None if model.has_batchnorm() else f"model {model.name!r} has no BatchNorm layers"

    def prepare(self, task: Task) -> None:
        self.note = Note(task.network(), task.rng("method"), self.lr, self.memory_size, self.update_every,
                         self.bn_momentum, self.iabn, self.iabn_k, self.steps)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.note(batch.inputs)
