"""DeYO: destroy your object, entropy minimisation on samples whose prediction rests on shape (Lee et al., ICLR 2024).

Semantics of the official code (Jhyun17/DeYO, ``methods/deyo.py``, defaults ``config.py`` and
``exp_deyo.sh``), on each target batch ``x`` of ``n`` images, ``K`` classes:

1. forward pass in train mode (every BatchNorm layer normalises with the batch's statistics);
   ``Ent_i`` = softmax entropy of example ``i``;
2. entropy filter: keep the examples with ``Ent_i < tau_Ent``, ``tau_Ent = entropy_margin * ln K``
   (0.5 ln K);
3. patch shuffle of the kept images: each is resized to the nearest multiple of ``patch_grid``
   below its side (bilinear, antialiased; skipped when the side divides), cut into
   ``patch_grid x patch_grid`` patches (``patch_grid`` is the number of patches per row and column,
   4: a 28x28 digit becomes 16 patches of 7x7, a 32x32 image 16 of 8x8, with no resizing; a
   30x30 image is resized to 28x28, shuffled, resized back), the patches put back in an order
   drawn independently per image (``argsort`` of uniform draws from torch's generator, as the
   authors do), resized back; the shuffled batch is forwarded without gradient (batch statistics
   of the shuffled kept batch);
4. PLPD_i = ``p_i[c_i] - p'_i[c_i]``, ``c_i`` the argmax of the clean prediction ``p_i``, ``p'_i`` the
   prediction on the shuffled image; keep the examples with ``PLPD_i > tau_PLPD`` (0.2);
5. loss = mean over the examples kept by both filters of ``alpha_i * Ent_i``, with the weight
   ``alpha_i = exp(-(Ent_i - Ent_0)) + exp(PLPD_i)`` (``Ent_0 = weight_margin * ln K``, 0.4 ln K;
   either term can be switched off; the weight is not differentiated through); backward, one
   optimiser step, zero the gradients; no update when a filter keeps nothing;
6. the logits returned are those of step 1's forward pass (before the update).

Parameters: the affine scale and shift of every normalisation layer (BatchNorm, LayerNorm,
GroupNorm); BatchNorm layers drop their running statistics (``track_running_stats=False``) so they
use the batch's in train and eval mode. Optimiser: SGD, momentum 0.9, lr 0.00025, the authors'
setting for ImageNet-C (batch 64; ``optimizer="adam"`` with lr 1e-3 is
mariodoebler/test-time-adaptation's CIFAR-C setting for DeYO). ``episodic=True`` restores the model
and optimiser before every batch.

Deliberate deviations, each because the authors' choice is specific to their architectures:

- the official ``collect_params`` skips ResNet-50's ``layer4`` and ViT-B's last three blocks and
  final norm by module name; here every normalisation layer trains (shiftbench's networks have no
  such names);
- the official code configures ``BatchNorm2d`` only; here every BatchNorm layer (1d/2d/3d) uses
  batch statistics and trains, as in :mod:`shiftbench.methods.tent`. A BatchNorm1d layer cannot
  normalise a batch of one example, so when the entropy filter keeps a single example of a network
  with BatchNorm1d, its PLPD cannot be computed and the batch makes no update;
- the official resize uses the image width for both sides (square images); here height and width
  are resized separately (the same on square images);
- the authors scale lr with batch size for batches under 32; here lr is a hyperparameter.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Choice, Float, Int
from shiftbench.methods._batchnorm import batchnorm_layers, require_batch_statistics
from shiftbench.methods._online import OnlineLearner
from shiftbench.methods.tent import softmax_entropy

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def norm_layers(network: nn.Module) -> list[nn.Module]:
    """Every BatchNorm, LayerNorm and GroupNorm layer of ``network``, in module order."""
    return [m for m in network.modules() if isinstance(m, NORM_LAYERS)]


def configure_norm_adaptation(model: nn.Module) -> list[nn.Parameter]:
    """Put ``model`` in DeYO's mode (in place: train mode, BatchNorm on batch statistics, only the norm
    layers' affine parameters trainable) and return those parameters."""
    norms = norm_layers(model)
    params = [p for m in norms for p in (m.weight, m.bias) if p is not None]
    if not params:
        raise ShiftbenchError("DeYO needs a network with affine normalisation layers (BatchNorm, LayerNorm or "
                              "GroupNorm); this one has none")
    model.train()
    model.requires_grad_(False)
    for m in norms:
        m.requires_grad_(True)
    for bn in batchnorm_layers(model):
        bn.track_running_stats = False
        bn.running_mean, bn.running_var = None, None
    return params


def patch_shuffle(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Images ``x`` (n, c, h, w) cut into ``grid x grid`` patches put back in a random order per image."""
    n, c, h, w = x.shape
    if h < grid or w < grid:
        raise ShiftbenchError(f"deyo: a {h}x{w} image cannot be cut into {grid}x{grid} patches; "
                              f"use patch_grid <= {min(h, w)}")
    ph, pw = h // grid, w // grid
    resized = (ph * grid, pw * grid) != (h, w)
    if resized:
        x = nn.functional.interpolate(x, size=(ph * grid, pw * grid), mode="bilinear", antialias=True,
                                      align_corners=False)
    patches = x.reshape(n, c, grid, ph, grid, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, c, ph, pw)
    order = torch.argsort(torch.rand(n, grid * grid), dim=-1).to(x.device)
    patches = patches[torch.arange(n, device=x.device).unsqueeze(-1), order]
    x = patches.reshape(n, grid, grid, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * grid, pw * grid)
    if resized:
        x = nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x


class DeYO(OnlineLearner):
    """A model wrapped for DeYO: ``deyo(x)`` returns logits of image batch ``x`` and adapts on it."""

    def __init__(self, model: nn.Module, lr: float = 0.00025, optimizer: str = "sgd",
                 entropy_margin: float = 0.5, weight_margin: float = 0.4, plpd_threshold: float = 0.2,
                 patch_grid: int = 4, reweight_ent: bool = True, reweight_plpd: bool = True, steps: int = 1,
                 episodic: bool = False):
        DeYOAdapter.check_setting({
            "lr": lr, "optimizer": optimizer, "entropy_margin": entropy_margin, "weight_margin": weight_margin,
            "plpd_threshold": plpd_threshold, "patch_grid": patch_grid, "reweight_ent": reweight_ent,
            "reweight_plpd": reweight_plpd, "steps": steps, "episodic": episodic})
        self.entropy_margin, self.weight_margin = entropy_margin, weight_margin
        self.plpd_threshold, self.patch_grid = plpd_threshold, patch_grid
        self.reweight_ent, self.reweight_plpd = reweight_ent, reweight_plpd
        self.params = configure_norm_adaptation(model)
        self.has_batchnorm = bool(batchnorm_layers(model))
        self.lone_example_fails = any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
        super().__init__(model, torch.optim.SGD(self.params, lr=lr, momentum=0.9) if optimizer == "sgd"
                         else torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999)), steps, episodic)
        #: examples kept by the entropy filter and by both filters on the last step (diagnostics, tests)
        self.kept_entropy = self.kept_both = torch.zeros(0, dtype=torch.long)

    def check(self, x: torch.Tensor) -> None:
        """Image batches only, of at least 2 examples when the network has BatchNorm layers."""
        if x.ndim != 4:
            raise ShiftbenchError("deyo shuffles image patches and needs image batches (n, c, h, w); "
                                  f"got shape {tuple(x.shape)}")
        if self.has_batchnorm:
            require_batch_statistics(x, "DeYO")

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """DeYO's weighted entropy of the examples of ``x`` that pass both filters (``None`` if none does);
        records which examples passed in ``kept_entropy`` and ``kept_both`` (indices into ``x``)."""
        log_k = math.log(logits.shape[1])
        entropy = softmax_entropy(logits)
        self.kept_entropy = torch.nonzero(entropy < self.entropy_margin * log_k).flatten()
        self.kept_both = self.kept_entropy[:0]
        if len(self.kept_entropy) == 0 or (len(self.kept_entropy) == 1 and self.lone_example_fails):
            return None
        with torch.no_grad():
            shuffled = self.model(patch_shuffle(x[self.kept_entropy].detach(), self.patch_grid))
        probs = logits[self.kept_entropy].softmax(1)
        label = probs.argmax(1, keepdim=True)
        plpd = (probs.gather(1, label) - shuffled.softmax(1).gather(1, label)).flatten()
        passed = plpd > self.plpd_threshold
        self.kept_both = self.kept_entropy[passed]
        if not passed.any():
            return None
        entropy, plpd = entropy[self.kept_both], plpd[passed].detach()
        if self.reweight_ent or self.reweight_plpd:
            weight = (float(self.reweight_ent) * torch.exp(-(entropy.detach() - self.weight_margin * log_k))
                      + float(self.reweight_plpd) * torch.exp(plpd))
            entropy = entropy * weight
        return entropy.mean(0)


class DeYOAdapter(ModelAdapter):
    """DeYO (Lee et al. 2024): entropy minimisation on examples whose prediction a patch shuffle destroys."""

    name = "deyo"
    hyperparameters = {
        "lr": Float(0.00025, above=0, doc="learning rate (the authors' 0.00025 with SGD at batch 64)"),
        "optimizer": Choice("sgd", ("sgd", "adam"), doc="sgd: momentum 0.9 (the authors'); adam: betas (0.9, 0.999)"),
        "entropy_margin": Float(0.5, above=0, doc="entropy filter tau_Ent, as a fraction of ln K"),
        "weight_margin": Float(0.4, above=0, doc="Ent_0 of the entropy weight exp(Ent_0 - Ent), as a fraction of ln K"),
        "plpd_threshold": Float(0.2, at_least=-1, at_most=1,
                                doc="PLPD filter tau_PLPD: keep examples with PLPD above it"),
        "patch_grid": Int(4, doc="patches per row and per column of the shuffle"),
        "reweight_ent": Bool(True, doc="weight each loss term by exp(Ent_0 - Ent)"),
        "reweight_plpd": Bool(True, doc="weight each loss term by exp(PLPD)"),
        "steps": Int(1, doc="adaptation steps per batch"),
        "episodic": Bool(False, doc="restore the source model before every batch"),
    }
    #: tau_PLPD 0.2 is the authors' default and wild-setting value, 0.3 their ImageNet-C (mild) one
    grid = {"lr": [2.5e-4, 1e-3, 1e-2], "plpd_threshold": [0.2, 0.3]}

    def not_applicable(self, model, data) -> str | None:
        if data.input_kind != "image":
            return f"DeYO shuffles image patches; dataset {data.name!r} has {data.input_kind} inputs"
        if not any(p is not None for m in norm_layers(model.network) for p in (m.weight, m.bias)):
            return f"model {model.name!r} has no affine normalisation layers (BatchNorm, LayerNorm, GroupNorm)"
        return None

    def prepare(self, task: Task) -> None:
        self.deyo = DeYO(task.network(), self.lr, self.optimizer, self.entropy_margin,
                         self.weight_margin, self.plpd_threshold, self.patch_grid, self.reweight_ent,
                         self.reweight_plpd, self.steps, self.episodic)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.deyo(batch.inputs)
