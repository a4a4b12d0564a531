"""RoTTA: robust test-time adaptation in dynamic scenarios (Yuan, Xie and Li, CVPR 2023).

Semantics of the official code (BIT-DA/RoTTA: ``core/adapter/rotta.py``, ``core/utils/bn_layers.py``,
``core/utils/memory.py``; defaults from ``configs/adapter/rotta.yaml``, CIFAR-10/100-C):

- **RBN** (robust batch normalisation) replaces every BatchNorm layer. It keeps *global* statistics
  ``(mu, sigma^2)``, starting at the source running statistics. In train mode it takes the batch's mean and
  biased variance ``(mu_b, sigma_b^2)`` over all axes but the channel, sets ``mu <- (1 - alpha) mu + alpha mu_b``
  and ``sigma^2 <- (1 - alpha) sigma^2 + alpha sigma_b^2`` (alpha 0.05) and normalises with the updated
  statistics (the gradient flows through the batch's part); in eval mode it normalises with the global
  statistics as they are. Its affine weight and bias (copied from the BatchNorm layer) are the only
  parameters trained, by Adam (lr 1e-3, betas (0.9, 0.999), no weight decay).
- **Teacher**: a frozen copy of the RBN network (with its own RBN statistics); after every update
  ``teacher <- (1 - nu) teacher + nu student`` over the parameters (nu 0.001).
- **Each batch**: teacher and student in eval mode; the teacher's logits on the batch are the output. Each
  example, in batch order, goes to the memory bank with its pseudo-label ``argmax`` and uncertainty
  ``-sum_k p_k log(p_k + 1e-6)`` (teacher probabilities); every ``update_frequency`` (64) examples of the stream,
  counted across batches, the model is updated, so an update may fall inside a batch.
- **CSTU memory bank** (category-balanced sampling with timeliness and uncertainty), capacity ``memory_size``
  (64), ``K`` classes, a class's quota ``memory_size / K``. An item's score is
  ``lambda_t / (1 + exp(-age / memory_size)) + lambda_u * uncertainty / log K``; a new item scores with age 0.
  A new item of class ``c``: if ``c`` holds fewer than its quota and the bank is not full, it is added; if
  ``c`` is under quota but the bank is full, the highest-scoring item among the classes holding the most
  items is evicted if its score exceeds the new one's (else the new item is dropped); if ``c`` is at its quota,
  the same among ``c``'s own items. (Ties go to the later item; an empty candidate set admits the new item.)
  After every arrival, admitted or not, every item's age grows by one.
- **Update**: student and teacher in train mode (both RBNs update their global statistics). The bank's items
  ``x_j`` (class by class, in arrival order) with ages ``a_j`` (divided by ``memory_size``): the teacher's
  logits on ``x_j``, the student's on a strong augmentation of the bank (:mod:`methods._cotta_augment`, the
  chain of ``core/utils/custom_transforms.py``, one draw for the whole bank); loss
  ``mean_j w_j * CE(softmax(teacher_j), student_j)`` with the time-aware weight ``w_j = exp(-a_j) / (1 + exp(-a_j))``;
  one Adam step; then the teacher's EMA step (taken even when the bank is empty).

Deliberate deviations: RBN accepts BatchNorm1d/2d/3d inputs of any rank (the official layers take (N, C) and
(N, C, H, W)); a BatchNorm layer without affine parameters stays without them (the official code needs them);
the augmentation runs on pixels in [0, 1] recovered from the model's preprocessing and flips only three-channel
images (see :mod:`methods._cotta_augment`), with a ``torch.Generator`` seeded by the cell's method seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Float, Int
from shiftbench.methods._cotta_augment import CoTTAAugmentation, image_inputs_reason, pixel_map
from shiftbench.methods._cotta_teacher import ema_update, frozen_copy, require_finite, soft_cross_entropy

ENTROPY_EPS = 1e-6  # inside the log of the uncertainty, as in the official code


class RobustBatchNorm(nn.Module):
    """RBN: normalises with global statistics that, in train mode, move by ``alpha`` towards each batch's."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, alpha: float):
        super().__init__()
        if bn.running_mean is None or bn.running_var is None:
            raise ShiftbenchError("rotta: RBN starts from the source BatchNorm running statistics; this network has "
                                  "a BatchNorm layer without them (track_running_stats=False)")
        self.alpha, self.eps = alpha, bn.eps
        self.weight = None if bn.weight is None else nn.Parameter(bn.weight.detach().clone())
        self.bias = None if bn.bias is None else nn.Parameter(bn.bias.detach().clone())
        self.register_buffer("global_mean", bn.running_mean.detach().clone())
        self.register_buffer("global_var", bn.running_var.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [0, *range(2, x.ndim)]
        shape = [1, -1] + [1] * (x.ndim - 2)
        if self.training:
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            mean = (1 - self.alpha) * self.global_mean + self.alpha * mean
            var = (1 - self.alpha) * self.global_var + self.alpha * var
            self.global_mean, self.global_var = mean.detach().clone(), var.detach().clone()
        else:
            mean, var = self.global_mean, self.global_var
        out = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out


def configure_for_rotta(model: nn.Module, alpha: float) -> list[nn.Parameter]:
    """Replace every BatchNorm layer of ``model`` by an RBN (in place); return the RBN affine parameters, the
    only ones left trainable."""
    model.requires_grad_(False)
    names = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, RobustBatchNorm(getattr(parent, child), alpha))
    params = [p for m in model.modules() if isinstance(m, RobustBatchNorm) for p in m.parameters()]
    if not params:
        raise ShiftbenchError("rotta needs a network with affine BatchNorm layers (RBN trains their weight and "
                              "bias); this one has none")
    return params


@dataclass
class MemoryItem:
    """One example held by the bank: its input, the teacher's uncertainty on it and its age (arrivals since)."""

    x: torch.Tensor
    uncertainty: float
    age: int = 0


class CategoryBalancedMemory:
    """CSTU: a memory bank of ``capacity`` examples balanced over pseudo-labels, evicting old, uncertain ones."""

    def __init__(self, capacity: int, n_classes: int, lambda_t: float = 1.0, lambda_u: float = 1.0):
        if n_classes < 2:
            raise ShiftbenchError(f"rotta's memory bank scores uncertainty by log(n_classes); needs at least 2 "
                                  f"classes, got {n_classes}")
        self.capacity, self.n_classes = capacity, n_classes
        self.quota = capacity / n_classes
        self.lambda_t, self.lambda_u = lambda_t, lambda_u
        self.items: list[list[MemoryItem]] = [[] for _ in range(n_classes)]

    def score(self, age: int, uncertainty: float) -> float:
        """Eviction score: higher for older and more uncertain items."""
        return (self.lambda_t / (1 + math.exp(-age / self.capacity))
                + self.lambda_u * uncertainty / math.log(self.n_classes))

    def occupancy(self) -> int:
        return sum(len(items) for items in self.items)

    def add(self, x: torch.Tensor, label: int, uncertainty: float) -> None:
        """Offer one example with its pseudo-label; then every held item ages by one."""
        if self._make_room(label, self.score(0, uncertainty)):
            self.items[label].append(MemoryItem(x, uncertainty))
        for items in self.items:
            for item in items:
                item.age += 1

    def _make_room(self, label: int, new_score: float) -> bool:
        if len(self.items[label]) < self.quota:
            if self.occupancy() < self.capacity:
                return True
            largest = max(len(items) for items in self.items)
            return self._evict([c for c in range(self.n_classes) if len(self.items[c]) == largest], new_score)
        return self._evict([label], new_score)

    def _evict(self, classes: list[int], new_score: float) -> bool:
        """Drop the highest-scoring item of ``classes`` if it outscores the newcomer; whether the newcomer enters."""
        best = None  # (score, class, index); the later item wins a tie
        for c in classes:
            for i, item in enumerate(self.items[c]):
                s = self.score(item.age, item.uncertainty)
                if best is None or s >= best[0]:
                    best = (s, c, i)
        if best is None:
            return True
        if best[0] > new_score:
            del self.items[best[1]][best[2]]
            return True
        return False

    def contents(self) -> tuple[list[torch.Tensor], list[float]]:
        """The held inputs, class by class in arrival order, and their ages divided by the capacity."""
        held = [item for items in self.items for item in items]
        return [item.x for item in held], [item.age / self.capacity for item in held]


def timeliness_weights(ages: list[float]) -> torch.Tensor:
    """The time-aware weight ``exp(-a) / (1 + exp(-a))`` of each (normalised) age."""
    a = torch.tensor(ages, dtype=torch.float32)
    return torch.exp(-a) / (1 + torch.exp(-a))


class RoTTA:
    """A network wrapped for RoTTA: ``rotta(x)`` returns the teacher's logits of batch ``x``, banks its examples
    and updates every ``update_frequency`` examples. ``augment(x)`` returns a strong augmentation of a batch."""

    def __init__(self, model: nn.Module, n_classes: int, augment: Callable[[torch.Tensor], torch.Tensor],
                 lr: float = 1e-3, alpha: float = 0.05, nu: float = 0.001, memory_size: int = 64,
                 update_frequency: int = 64, lambda_t: float = 1.0, lambda_u: float = 1.0):
        RoTTAAdapter.check_setting({"lr": lr, "alpha": alpha, "nu": nu, "memory_size": memory_size,
                                    "update_frequency": update_frequency, "lambda_t": lambda_t, "lambda_u": lambda_u})
        self.model, self.augment, self.nu, self.update_frequency = model, augment, nu, update_frequency
        self.params = configure_for_rotta(model, alpha)
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
        self.teacher = frozen_copy(model)
        self.memory = CategoryBalancedMemory(memory_size, n_classes, lambda_t, lambda_u)
        self.seen = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        require_finite(x, "rotta")
        with torch.no_grad():
            self.model.eval()
            self.teacher.eval()
            logits = self.teacher(x)
            probs = logits.softmax(1)
            labels = probs.argmax(1).tolist()
            uncertainty = (-(probs * torch.log(probs + ENTROPY_EPS)).sum(1)).tolist()
        for i in range(x.shape[0]):
            self.memory.add(x[i].clone(), labels[i], uncertainty[i])
            self.seen += 1
            if self.seen % self.update_frequency == 0:
                self.update()
        return logits

    @torch.enable_grad()
    def update(self) -> None:
        """One Adam step on the time-weighted cross-entropy over the bank, then the teacher's EMA step."""
        self.model.train()
        self.teacher.train()
        held, ages = self.memory.contents()
        if held:
            x = torch.stack(held)
            strong = self.augment(x)
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            student_logits = self.model(strong)
            weights = timeliness_weights(ages).to(student_logits.device)
            loss = (soft_cross_entropy(student_logits, teacher_logits) * weights).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        ema_update(self.teacher, self.model, 1.0 - self.nu)


class RoTTAAdapter(ModelAdapter):
    """RoTTA (Yuan et al. 2023): robust BN, category-balanced memory bank, time-weighted EMA-teacher training."""

    name = "rotta"
    hyperparameters = {
        "lr": Float(1e-3, above=0, doc="Adam learning rate of the RBN affine parameters"),
        "alpha": Float(0.05, at_least=0, at_most=1, doc="RBN: weight of each batch's statistics in the global ones"),
        "nu": Float(0.001, at_least=0, at_most=1, doc="teacher EMA: teacher <- (1-nu) teacher + nu student"),
        "memory_size": Int(64, doc="memory bank capacity (examples)"),
        "update_frequency": Int(64, doc="update the model every this many stream examples"),
        "lambda_t": Float(1.0, at_least=0, doc="weight of age in the eviction score"),
        "lambda_u": Float(1.0, at_least=0, doc="weight of uncertainty in the eviction score"),
    }
    #: RBN's alpha and the teacher's EMA rate nu, at the paper's values (tuned on CIFAR-C's 10,000-image domains:
    #: 156 updates per domain) and faster ones: a 1,000-example digits domain gets 16 updates, after which alpha
    #: 0.05 has moved the statistics 56% of the way and nu 0.001 the teacher 1.6%
    grid = {"alpha": [0.05, 0.2], "nu": [0.001, 0.01, 0.1]}

    def not_applicable(self, model, data) -> str | None:
        if not model.has_batchnorm():
            return f"model {model.name!r} has no BatchNorm layers (RBN replaces them)"
        return image_inputs_reason(data.input_kind, "rotta")

    def prepare(self, task: Task) -> None:
        augment = CoTTAAugmentation(pixel_map(task, "rotta"), torch.Generator().manual_seed(self.random_state))
        self.rotta = RoTTA(task.network(), task.n_classes, augment, self.lr, self.alpha, self.nu, self.memory_size,
                           self.update_frequency, self.lambda_t, self.lambda_u)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.rotta(batch.inputs)
