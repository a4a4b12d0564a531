"""CoTTA: continual test-time adaptation (Wang, Fink, Van Gool and Dai, CVPR 2022).

Semantics of the official code (qinenergy/cotta, ``cifar/cotta.py``; CIFAR-10-C config ``cfgs/cifar10/cotta.yaml``):

- set-up: the network in train mode; every BatchNorm layer normalises with the current batch's statistics
  (running statistics dropped); *every* ``weight`` and ``bias`` parameter of every module is trained (not only
  BatchNorm's), by Adam (lr 1e-3, betas (0.9, 0.999), no weight decay). Two frozen copies of the set-up
  network are kept: the *anchor* (the source weights, never updated) and the *teacher* (starts at the source
  weights);
- each call on a batch ``x``, ``steps`` times:

  1. student logits ``s = f_student(x)``;
  2. the anchor's confidence ``c = mean_i max_k softmax(f_anchor(x_i))_k`` (a batch mean);
  3. teacher logits ``t``: if ``c < ap``, the mean over ``n_augmentations`` (32) random augmentations of the
     batch of the teacher's logits (:mod:`methods._cotta_augment`), else the teacher's logits on ``x``;
  4. loss ``mean_i -sum_k softmax(t_i)_k log softmax(s_i)_k`` (cross-entropy to the teacher's soft
     pseudo-labels), backward, one Adam step;
  5. teacher ``<- alpha * teacher + (1 - alpha) * student`` (alpha 0.999);
  6. stochastic restore: each element of each trained parameter is reset to its source value with
     probability ``rst`` (0.01), independently;

  the logits returned are the teacher's ``t`` of the last step (computed before that step's updates);
- ``episodic=True`` restores the student, the optimizer and the teacher before every batch.

``ap``: the paper sets it to the 5% quantile of the source model's confidence on source images minus 0.05
(supplementary; the authors' answer in qinenergy/cotta issue 16), which gave 0.92 for their CIFAR-10 network
(0.72 for CIFAR-100, 0.1 for ImageNet). ``ap=None`` (the default) applies that recipe to this task's source
model: the 5% quantile of its maximum softmax probability on the labelled source split ``id_val`` (``train``
where there is no ``id_val``), minus 0.05; a number fixes it.

Deliberate deviations: all BatchNorm layers (1d/2d/3d) use batch statistics (the official code switches only
``BatchNorm2d``; a ``BatchNorm1d`` in train mode normalises with batch statistics there too, so outputs are
the same); the 32 augmented teacher passes run only when they are used (the official code runs them always
and discards them when ``c >= ap``: same outputs; on the digits benchmark's small_cnn a batch of 64 costs about 8
forward passes without them, about 126 with them); the augmentation chain
runs on pixels in [0, 1] recovered from the model's preprocessing and flips only three-channel images (see
:mod:`methods._cotta_augment`). Randomness (augmentations, restore masks) comes from a ``torch.Generator``
seeded with the cell's method seed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._batchnorm import batchnorm_layers, require_batch_statistics
from shiftbench.methods._cotta_augment import CoTTAAugmentation, image_inputs_reason, pixel_map
from shiftbench.methods._cotta_teacher import ema_update, frozen_copy, require_finite, soft_cross_entropy
from shiftbench.methods._online import OnlineLoop

QUANTILE = 0.05  # the paper's ap: this quantile of the source confidences ...
MARGIN = 0.05  # ... minus this margin


def configure_for_cotta(model: nn.Module) -> dict[str, nn.Parameter]:
    """Put ``model`` in CoTTA's mode (in place): train mode, BatchNorm on batch statistics, every module's own
    ``weight`` and ``bias`` trainable (nothing else); returns those parameters by name, in module order."""
    model.train()
    model.requires_grad_(False)
    for bn in batchnorm_layers(model):
        bn.track_running_stats = False
        bn.running_mean, bn.running_var = None, None
    params = {}
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if name in ("weight", "bias"):
                p.requires_grad_(True)
                params[f"{module_name}.{name}" if module_name else name] = p
    return params


def source_confidence_threshold(probs: np.ndarray) -> float:
    """The paper's ``ap``: the 5% quantile of the maximum softmax probabilities ``probs.max(1)``, minus 0.05."""
    return float(np.quantile(np.asarray(probs).max(1), QUANTILE) - MARGIN)


class CoTTA(OnlineLoop):
    """A network wrapped for CoTTA: ``cotta(x)`` returns the teacher's logits of batch ``x`` and adapts on it.

    ``augment(x)`` returns one random augmentation of the batch; ``generator`` draws the restore masks."""

    def __init__(self, model: nn.Module, augment: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator,
                 lr: float = 1e-3, alpha: float = 0.999, rst: float = 0.01, ap: float = 0.92,
                 n_augmentations: int = 32, steps: int = 1, episodic: bool = False):
        CoTTAAdapter.check_setting({"lr": lr, "alpha": alpha, "rst": rst, "ap": ap, "n_augmentations": n_augmentations,
                                    "steps": steps, "episodic": episodic})
        self.augment, self.generator = augment, generator
        self.lr, self.alpha, self.rst, self.ap = lr, alpha, rst, ap
        self.n_augmentations = n_augmentations
        self.params = configure_for_cotta(model)
        super().__init__(model, torch.optim.Adam(list(self.params.values()), lr=lr, betas=(0.9, 0.999),
                                                 weight_decay=0.0), steps, episodic)
        #: the source values of the trained parameters, which the stochastic restore copies back
        self.source = {k: v.detach().clone() for k, v in self.params.items()}
        #: frozen copies of the set-up network: the anchor stays at the source, the teacher follows the student
        self.anchor = frozen_copy(model)
        self.teacher = frozen_copy(model)

    def reset(self) -> None:
        """Restore the student, its optimizer and the teacher to the source state."""
        super().reset()
        self.teacher = frozen_copy(self.model)

    def check(self, x: torch.Tensor) -> None:
        """Finite batches only, of at least 2 examples when the network has BatchNorm layers."""
        require_finite(x, "cotta")
        if batchnorm_layers(self.model):
            require_batch_statistics(x, "CoTTA")

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The pseudo-label logits: augmentation-averaged when the anchor's mean confidence is below ``ap``."""
        confidence = self.anchor(x).softmax(1).max(1).values.mean()
        if confidence < self.ap:
            return torch.stack([self.teacher(self.augment(x)) for _ in range(self.n_augmentations)]).mean(0)
        return self.teacher(x)

    @torch.enable_grad()
    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Student step on the teacher's soft pseudo-labels, EMA teacher update, stochastic restore; returns the
        teacher's logits (computed before the updates)."""
        student = self.model(x)
        teacher = self.teacher_logits(x)
        soft_cross_entropy(student, teacher).mean().backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        ema_update(self.teacher, self.model, self.alpha)
        self._stochastic_restore()
        return teacher

    @torch.no_grad()
    def _stochastic_restore(self) -> None:
        """Reset each element of each trained parameter to its source value with probability ``rst``."""
        if self.rst == 0:
            return
        for name, p in self.params.items():
            mask = torch.rand(p.shape, generator=self.generator) < self.rst
            p.copy_(torch.where(mask.to(p.device), self.source[name], p))


class CoTTAAdapter(ModelAdapter):
    """CoTTA (Wang et al. 2022): EMA teacher, augmentation-averaged soft pseudo-labels, stochastic restore."""

    name = "cotta"
    hyperparameters = {
        "lr": Float(1e-3, above=0, doc="Adam learning rate of the student (all weights and biases)"),
        "alpha": Float(0.999, at_least=0, at_most=1, doc="teacher EMA: teacher <- alpha teacher + (1-alpha) student"),
        "rst": Float(0.01, at_least=0, at_most=1, doc="probability of restoring each weight element to its source value"),
        "ap": Float(None, allow_none=True, doc="augment when the anchor's mean confidence is below this (None: the "
                                               "5% quantile of source confidences on id_val minus 0.05)"),
        "n_augmentations": Int(32, doc="augmented teacher passes averaged"),
        "steps": Int(1, doc="adaptation steps per batch"),
        "episodic": Bool(False, doc="restore the source model and teacher before every batch"),
    }
    #: the paper's knobs: the teacher's EMA rate (1,000 target examples are only 16 EMA steps) and the restore
    #: probability; lr stays at the authors' 1e-3
    grid = {"alpha": [0.99, 0.999], "rst": [0.001, 0.01, 0.1]}

    def not_applicable(self, model, data) -> str | None:
        return image_inputs_reason(data.input_kind, "cotta")

    def prepare(self, task: Task) -> None:
        ap = self.ap
        if ap is None:
            split = "id_val" if "id_val" in task.source_splits else "train"
            ap = source_confidence_threshold(task.source_outputs(split).probs)
        generator = torch.Generator().manual_seed(self.random_state)
        augment = CoTTAAugmentation(pixel_map(task, "cotta"), generator)
        self.cotta = CoTTA(task.network(), augment, generator, self.lr, self.alpha, self.rst, ap,
                           self.n_augmentations, self.steps, self.episodic)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.cotta(batch.inputs)
