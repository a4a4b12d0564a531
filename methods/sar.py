"""SAR: sharpness-aware and reliable entropy minimisation (Niu et al., ICLR 2023).

Semantics of the official code (mr-eggplant/SAR, ``sar.py``, ``sam.py``, ``main.py``), written here
from the paper's equations:

- configuration: train mode; every BatchNorm layer normalises with the current batch's statistics
  (running statistics dropped); LayerNorm and GroupNorm layers keep their own per-sample
  normalisation. The trained parameters are the affine scale and shift of the norm layers (BatchNorm,
  LayerNorm, GroupNorm) except, by the authors' rule on module names, those of a ResNet's last stage
  (``layer4``), of a ViT-Base's last three blocks (``blocks.9``-``blocks.11``) and of a ViT's final
  ``norm``; networks without such names (small_cnn, WRN-28-10) adapt every norm layer;
- on each batch, ``steps`` times: forward; per-sample softmax entropy ``E``; the reliable samples have
  ``E < E0``, ``E0 = e0_ratio * ln K`` (Eq. 2; 0.4 ln K by default); gradient ``g`` of their mean
  entropy; sharpness-aware perturbation (SAM, Eq. 4) ``theta + rho g / (||g||_2 + 1e-12)``, the norm
  over all trained parameters together; a second forward at the perturbed parameters, whose entropies
  on the first step's reliable samples are filtered again by ``E0``; the gradient of their mean, taken
  at the perturbed point, updates the unperturbed parameters with one SGD step (momentum 0.9). When no
  sample passes a filter the gradient is zero and the step is still taken, so momentum still moves the
  parameters, as in the official code;
- model recovery: the mean entropy of the second filter's samples (when there are any) enters an
  exponential moving average ``ema <- 0.9 ema + 0.1 loss`` (the first value as is); once
  ``ema < reset_constant`` (0.2) the model and the optimizer are restored to the source state. As in
  the official ``forward`` (which assigns the step's ``ema`` after ``reset``), the average itself is
  kept across a recovery (so does TTAB; mariodoebler/test-time-adaptation clears it);
- the logits returned are those of the first forward pass, computed before that pass's update.

Defaults are the paper's (ImageNet-C, ResNet-50-BN at batch 64: SGD lr 0.00025, momentum 0.9,
rho 0.05, ``E0 = 0.4 ln 1000``, reset 0.2); the authors scale the lr as ``2 * 0.00025 * bs / 64`` for
batches under 32, which is left to the grid here. One deliberate widening, as in this project's Tent:
every BatchNorm layer (1d/2d/3d) counts, not only ``BatchNorm2d``. ``episodic=True`` (not used in
the paper) restores the source model, the optimizer and the moving average before every batch.
"""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._batchnorm import batchnorm_layers, require_batch_statistics, use_batch_statistics
from shiftbench.methods._online import OnlineLoop
from shiftbench.methods.eata import entropy_margin
from shiftbench.methods.tent import softmax_entropy

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
EMA_MOMENTUM = 0.9  # moving average of the second-step loss, fixed in the official code
SAM_EPS = 1e-12  # guard in the SAM perturbation's denominator


def frozen_by_authors(name: str) -> bool:
    """Whether the norm layer named ``name`` (inside the backbone, as the authors' networks name their modules)
    is one the authors leave unadapted: a ResNet's ``layer4``, a ViT-Base's blocks 9-11 and its final ``norm``."""
    return any(part in name for part in ("layer4", "blocks.9", "blocks.10", "blocks.11", "norm.")) or name == "norm"


def configure_for_sar(model: nn.Module, prefix: str = "") -> list[nn.Parameter]:
    """Put ``model`` in SAR's mode (in place) and return the norm-layer affine parameters it trains; the
    authors' rule reads module names with ``prefix`` (where the backbone sits in ``model``) removed."""
    model.requires_grad_(False)
    use_batch_statistics(model)
    model.train()
    params = [p for name, m in model.named_modules()
              if isinstance(m, NORM_LAYERS) and not frozen_by_authors(name.removeprefix(prefix))
              for p in (getattr(m, "weight", None), getattr(m, "bias", None)) if p is not None]
    if not params:
        raise ShiftbenchError("SAR needs a network with affine normalisation layers (BatchNorm, LayerNorm or "
                              "GroupNorm) outside its top layers; this one has none")
    for p in params:
        p.requires_grad_(True)
    return params


class SAR(OnlineLoop):
    """A model wrapped for SAR: ``sar(x)`` returns logits of batch ``x`` and adapts on it."""

    def __init__(self, model: nn.Module, lr: float = 0.00025, steps: int = 1, episodic: bool = False,
                 e0_ratio: float = 0.4, rho: float = 0.05, reset_constant: float = 0.2, prefix: str = ""):
        SARAdapter.check_setting({"lr": lr, "steps": steps, "episodic": episodic, "e0_ratio": e0_ratio, "rho": rho,
                                  "reset_constant": reset_constant})
        self.e0_ratio, self.rho, self.reset_constant = e0_ratio, rho, reset_constant
        self.params = configure_for_sar(model, prefix)
        self.batch_statistics = bool(batchnorm_layers(model))
        super().__init__(model, torch.optim.SGD(self.params, lr=lr, momentum=0.9), steps, episodic)
        self.ema: float | None = None  # moving average of the second pass's loss, read by the model recovery
        self.recoveries = 0  # model recoveries so far (diagnostics, tests)
        #: per-sample masks of the last step: reliable at the first pass, and also at the perturbed pass
        self.reliable = self.reliable_perturbed = torch.zeros(0, dtype=torch.bool)

    def reset(self) -> None:
        """Restore the model, the optimizer and the loss average to their state at construction."""
        super().reset()
        self.ema = None

    def check(self, x: torch.Tensor) -> None:
        """Batches of at least 2 examples when the network has BatchNorm layers."""
        if self.batch_statistics:
            require_batch_statistics(x, "SAR on a network with BatchNorm")

    def _recover_if_collapsing(self) -> None:
        """Model recovery: restore the source model and optimizer once the loss average is below
        ``reset_constant``; the average itself is kept, as in the official code (hence the base class's
        :meth:`reset`, not :meth:`SAR.reset`, which clears it)."""
        if self.ema is not None and self.ema < self.reset_constant:
            super().reset()
            self.recoveries += 1

    def _mean_entropy_gradient(self, entropy: torch.Tensor) -> list[torch.Tensor]:
        """Gradient of ``entropy.mean()`` w.r.t. the trained parameters (zero when ``entropy`` is empty)."""
        if len(entropy) == 0:
            return [torch.zeros_like(p) for p in self.params]
        return list(torch.autograd.grad(entropy.mean(), self.params))

    @torch.enable_grad()
    def _forward_and_adapt(self, x: torch.Tensor) -> torch.Tensor:
        """The sharpness-aware step on the reliable samples, then the model recovery rule; returns the logits of
        the first forward pass (computed before the update)."""
        logits = self.model(x)
        entropy = softmax_entropy(logits)
        e0 = entropy_margin(logits.shape[1], self.e0_ratio)
        self.reliable = (entropy < e0).detach()
        grads = self._mean_entropy_gradient(entropy[self.reliable])
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = self.rho / (norm + SAM_EPS)
        origin = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, g in zip(self.params, grads):
                p.add_(g * scale)
        perturbed = softmax_entropy(self.model(x))[self.reliable]
        again = (perturbed < e0).detach()
        self.reliable_perturbed = self.reliable.clone()
        self.reliable_perturbed[self.reliable] = again
        if again.any():
            loss = float(perturbed[again].detach().mean())
            self.ema = loss if self.ema is None else EMA_MOMENTUM * self.ema + (1 - EMA_MOMENTUM) * loss
        sharp_grads = self._mean_entropy_gradient(perturbed[again])
        with torch.no_grad():
            for p, o, g in zip(self.params, origin, sharp_grads):
                p.copy_(o)
                p.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad()
        self._recover_if_collapsing()
        return logits.detach()


class SARAdapter(ModelAdapter):
    """SAR (Niu et al. 2023): reliable entropy minimisation with SAM on the norm layers, and model recovery."""

    name = "sar"
    hyperparameters = {
        "lr": Float(0.00025, above=0, doc="SGD learning rate (momentum 0.9)"),
        "steps": Int(1, doc="adaptation steps per batch"),
        "episodic": Bool(False, doc="restore the source model before every batch"),
        "e0_ratio": Float(0.4, above=0, doc="E0 as a fraction of ln K: reliable samples have entropy < E0"),
        "rho": Float(0.05, above=0, doc="radius of SAM's sharpness-aware perturbation"),
        "reset_constant": Float(0.2, at_least=0, doc="restore the source model once the loss average falls below"),
    }
    grid = {"lr": [2.5e-4, 1e-3, 5e-3]}

    def not_applicable(self, model, data) -> str | None:
        if any(isinstance(m, NORM_LAYERS) for m in model.network.modules()):
            return None
        return f"model {model.name!r} has no normalisation layers (BatchNorm, LayerNorm or GroupNorm)"

    def prepare(self, task: Task) -> None:
        # task.network() is nn.Sequential(backbone, head): the authors' names are those under "0."
        self.sar = SAR(task.network(), self.lr, self.steps, self.episodic, self.e0_ratio, self.rho, self.reset_constant,
                       prefix="0.")

    def process(self, batch: Batch) -> torch.Tensor:
        return self.sar(batch.inputs)
