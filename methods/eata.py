"""EATA and ETA: efficient anti-forgetting test-time adaptation (Niu et al., ICML 2022).

Semantics of the official code (mr-eggplant/EATA, ``eata.py`` and ``main.py``), written here from the
paper's equations:

- the network is configured as for Tent (:func:`~shiftbench.methods.tent.configure_for_tent`): train
  mode, every BatchNorm layer normalises with the current batch's statistics, only the BatchNorm
  affine parameters are trained, by SGD with momentum 0.9 (no weight decay, no Nesterov);
- on each batch, ``steps`` times: forward; per-sample softmax entropy ``E``; the *reliable* samples
  are those with ``E < E0``, ``E0 = e0_ratio * ln K`` (Eq. 3; 0.4 ln K by default); of those, the
  *non-redundant* ones are those whose probability vector ``p`` has ``|cos(m, p)| < d_margin`` with
  ``m`` the moving average of the probabilities of the samples kept so far (Eq. 5; no such filter
  while ``m`` is undefined, i.e. until a sample has been kept); ``m`` then moves to
  ``0.9 m + 0.1 mean(p_kept)`` (or starts at ``mean(p_kept)``), with the probabilities of the
  forward pass before the update; the loss is the mean over the kept samples of
  ``E / exp(E - E0)`` (Eq. 6, the weight detached), plus for EATA the Fisher regulariser
  ``alpha * sum_i F_i (theta_i - theta0_i)^2`` (Eqs. 8-9); one SGD step is taken only if at least
  one sample was kept (no step at all otherwise, not even the regulariser's or momentum's);
  the logits returned are those of the last forward pass, computed before that pass's update;
- the Fisher diagonal ``F`` (EATA) is computed once, before adaptation, with the network already
  configured (batch statistics): ``fisher_size`` examples drawn at random, in batches of the
  stream's batch size, each batch giving the squared gradient of the batch-mean cross-entropy of the
  network's logits against its *own* argmax predictions (the paper's pseudo labels: no label is
  read), averaged over the batches; ``theta0`` are the source values of the parameters.

Defaults are the paper's CIFAR-10-C setting (the benchmark closest to digits): SGD lr 0.005,
momentum 0.9, ``E0 = 0.4 ln K``, ``d_margin = 0.4``, ``alpha = 1``, 2000 Fisher samples (ImageNet:
lr 0.00025 at batch 64, ``d_margin = 0.05``, ``alpha = 2000``; mariodoebler/test-time-adaptation's
CIFAR-10-C config has the same ``d_margin``, ``alpha`` and sample count, with Adam at 1e-3). ETA is
EATA without the regulariser.

Deliberate deviations, each small:

- every BatchNorm layer (1d/2d/3d) adapts, not only ``BatchNorm2d``, as in this project's Tent;
- the Fisher examples come from the labelled source split ``id_val`` (held-out clean source data, the
  counterpart of the ImageNet validation images the official code uses), labels unused; a last
  Fisher batch of one example is left out, since batch statistics need two;
- ``episodic=True`` (not used in the paper) restores the model, the optimizer *and* the moving
  average ``m`` before every batch, so that batches are independent (the official ``reset`` keeps
  ``m``; mariodoebler's clears it, as here).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._batchnorm import require_batch_statistics
from shiftbench.methods._online import OnlineLearner
from shiftbench.methods.tent import configure_for_tent, softmax_entropy

PROBS_MOMENTUM = 0.9  # moving average of the kept samples' probabilities (Eq. 4), fixed in the paper


def entropy_margin(n_classes: int, ratio: float) -> float:
    """The reliability threshold ``E0 = ratio * ln K`` on a sample's prediction entropy."""
    return ratio * math.log(n_classes)


def moving_average(average: torch.Tensor | None, probs: torch.Tensor) -> torch.Tensor | None:
    """``0.9 average + 0.1 mean(probs)`` (the mean alone if there was no average; unchanged if no rows)."""
    if len(probs) == 0:
        return average
    mean = probs.detach().mean(0)
    return mean if average is None else PROBS_MOMENTUM * average + (1 - PROBS_MOMENTUM) * mean


def fisher_diagonal(model: nn.Module, params: list[nn.Parameter], batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """Mean over ``batches`` of the squared gradient, w.r.t. ``params``, of the batch-mean cross-entropy of
    ``model``'s logits against its own argmax predictions (EATA's Fisher from pseudo labels)."""
    if not batches:
        raise ShiftbenchError("EATA's Fisher regulariser needs at least one batch of 2 or more source examples")
    total = [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        for x in batches:
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, logits.argmax(1))
            for acc, g in zip(total, torch.autograd.grad(loss, params)):
                acc += g.detach() ** 2
    return [acc / len(batches) for acc in total]


class EATA(OnlineLearner):
    """A model wrapped for EATA (ETA without ``fisher``): ``eata(x)`` returns logits of batch ``x`` and adapts on it."""

    def __init__(self, model: nn.Module, lr: float = 0.005, steps: int = 1, episodic: bool = False,
                 e0_ratio: float = 0.4, d_margin: float = 0.4):
        ETAAdapter.check_setting({"lr": lr, "steps": steps, "episodic": episodic, "e0_ratio": e0_ratio,
                                  "d_margin": d_margin})
        self.e0_ratio, self.d_margin = e0_ratio, d_margin
        self.params = configure_for_tent(model)
        super().__init__(model, torch.optim.SGD(self.params, lr=lr, momentum=0.9), steps, episodic)
        self.average: torch.Tensor | None = None  # m, the moving average of kept probabilities
        self.fisher: list[torch.Tensor] | None = None
        self.anchors: list[torch.Tensor] = []
        self.fisher_alpha = 0.0
        #: per-sample masks of the last step: reliable (entropy below E0) and kept (reliable and non-redundant)
        self.reliable = self.kept = torch.zeros(0, dtype=torch.bool)

    def regularise(self, fisher: list[torch.Tensor], alpha: float) -> None:
        """Add the Fisher penalty ``alpha * sum F (theta - theta0)^2``, ``theta0`` the parameters' current values."""
        if len(fisher) != len(self.params) or any(f.shape != p.shape for f, p in zip(fisher, self.params)):
            raise ShiftbenchError(f"EATA: the Fisher diagonal has shapes {[tuple(f.shape) for f in fisher]}; the "
                                  f"adapted parameters have {[tuple(p.shape) for p in self.params]}")
        self.fisher = [f.to(p) for f, p in zip(fisher, self.params)]
        self.anchors = [p.detach().clone() for p in self.params]
        self.fisher_alpha = alpha

    def reset(self) -> None:
        """Restore the model, the optimizer and the probability average to their state at construction."""
        super().reset()
        self.average = None

    def check(self, x: torch.Tensor) -> None:
        require_batch_statistics(x, "EATA")

    def penalty(self) -> torch.Tensor:
        """The Fisher regulariser at the current parameters (0 without a Fisher diagonal)."""
        if self.fisher is None:
            return torch.zeros(())
        terms = zip(self.fisher, self.params, self.anchors)
        return self.fisher_alpha * sum((f * (p - a) ** 2).sum() for f, p, a in terms)

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """Confidence-weighted entropy of the reliable, non-redundant samples plus the Fisher penalty (``None``
        when no sample is kept); updates the masks and the probability average."""
        entropy = softmax_entropy(logits)
        e0 = entropy_margin(logits.shape[1], self.e0_ratio)
        probs = logits.softmax(1).detach()
        self.reliable = (entropy < e0).detach()
        self.kept = self.reliable.clone()
        if self.average is not None:
            cosine = nn.functional.cosine_similarity(self.average[None], probs, dim=1)
            self.kept &= cosine.abs() < self.d_margin
        self.average = moving_average(self.average, probs[self.kept])
        if not self.kept.any():
            return None
        kept = entropy[self.kept]
        return (kept * torch.exp(e0 - kept.detach())).mean() + self.penalty()


class ETAAdapter(ModelAdapter):
    """ETA (Niu et al. 2022): entropy minimisation on reliable, non-redundant samples, re-weighted by confidence."""

    name = "eta"
    hyperparameters = {
        "lr": Float(0.005, above=0, doc="SGD learning rate (momentum 0.9)"),
        "steps": Int(1, doc="adaptation steps per batch"),
        "episodic": Bool(False, doc="restore the source model (and the probability average) before every batch"),
        "e0_ratio": Float(0.4, above=0, doc="E0 as a fraction of ln K: reliable samples have entropy < E0"),
        "d_margin": Float(0.4, above=0, doc="a sample is kept if |cos(average probs, its probs)| < d_margin"),
    }
    grid = {"lr": [1e-3, 5e-3, 2.5e-2], "d_margin": [0.05, 0.4]}

    def not_applicable(self, model, data) -> str | None:
        return None if model.has_batchnorm() else f"model {model.name!r} has no BatchNorm layers"

    def prepare(self, task: Task) -> None:
        self.eata = EATA(task.network(), self.lr, self.steps, self.episodic, self.e0_ratio, self.d_margin)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.eata(batch.inputs)


class EATAAdapter(ETAAdapter):
    """EATA (Niu et al. 2022): ETA plus a Fisher regulariser, estimated on source data, against forgetting."""

    name = "eata"
    hyperparameters = {
        "fisher_alpha": Float(1.0, at_least=0, doc="weight beta of the Fisher regulariser (0: ETA)"),
        "fisher_size": Int(2000, doc="source examples (split id_val) the Fisher diagonal is estimated on"),
    }
    #: the regulariser's weight is what EATA adds to ETA (the paper's CIFAR-10 and ImageNet values); d_margin stays 0.4
    grid = {"lr": [1e-3, 5e-3, 2.5e-2], "fisher_alpha": [1.0, 2000.0]}

    def prepare(self, task: Task) -> None:
        super().prepare(task)
        if self.fisher_alpha > 0:  # alpha 0 is ETA: no Fisher to estimate
            self.eata.regularise(self._fisher(task), self.fisher_alpha)

    def _fisher(self, task: Task) -> list[torch.Tensor]:
        """The Fisher diagonal of the configured source network, from the cache when already computed."""
        if "id_val" not in task.source_splits:
            raise ShiftbenchError(f"EATA estimates its Fisher regulariser on the source split 'id_val'; this dataset "
                                  f"has only {', '.join(task.source_splits) or 'no labelled source split'}")
        source = task.source_splits["id_val"]
        batch_size = max(len(b) for b in task.batches)
        settings = {"fisher_size": self.fisher_size, "batch_size": batch_size, "seed": task.seed,
                    "split": source.fingerprint}

        def compute() -> dict[str, np.ndarray]:
            order = task.rng("method").permutation(len(source))[:self.fisher_size]
            chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
            batches = [task.model.preprocess(source.inputs(c)).to(task.model.device) for c in chunks if len(c) >= 2]
            fisher = fisher_diagonal(self.eata.model, self.eata.params, batches)
            return {str(i): f.cpu().numpy() for i, f in enumerate(fisher)}

        arrays = self.cached(task, settings, compute)
        return [torch.as_tensor(arrays[str(i)]) for i in range(len(self.eata.params))]
