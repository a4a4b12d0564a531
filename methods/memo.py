"""MEMO: test-time robustness via adaptation and augmentation (Zhang, Levine & Finn, NeurIPS 2022).

Semantics of the official code (zhangmarvin/memo: ``cifar-10-exps/test_calls/test_adapt.py``,
``imagenet-exps/test_calls/test_adapt.py`` and ``imagenet-exps/utils/adapt_helpers.py``), for each
test point ``x`` on its own, whatever the batch it arrives in:

1. restore the source model (episodic: nothing carries over from one test point to the next);
2. ``steps`` times (1): draw ``n_augmentations`` AugMix views of ``x`` (32 in the authors' CIFAR
   setting, 64 in their ImageNet one; :mod:`shiftbench.methods._memo_augmix`), forward them, and take
   one SGD step (no momentum, no weight decay) on the marginal entropy
   ``H(p_bar) = -sum_k p_bar_k log p_bar_k``, ``p_bar = mean_b softmax(f(x_b))``, computed in log space
   (``log p_bar = logsumexp_b log_softmax(f(x_b)) - log B``, clamped at the dtype's smallest value);
   **all** the network's parameters train, lr 0.005 (their CIFAR setting, ResNet-26 with GroupNorm;
   0.00025 for their ResNet-50 on ImageNet);
3. the prediction is the adapted model's logits on the clean ``x``.

BatchNorm statistics, as the official code sets them (``prior_strength``, their ImageNet default 16):
the network stays in eval mode, and each ``BatchNorm2d`` layer normalises with
``N/(N+1)`` x its source running statistics + ``1/(N+1)`` x the statistics of the batch it sees
(the ``n_augmentations`` views while adapting, the single clean image when predicting; mean and
*unbiased* variance over the batch and spatial positions, not differentiated through), for
adaptation and prediction alike. ``prior_strength=None`` (their ``-1``) keeps the source
statistics only. Other BatchNorm layers (1d, 3d) keep their source statistics, as the authors patch
``BatchNorm2d`` only; this also lets a single test point pass a BatchNorm1d feature layer.

The augmentations work on the 8-bit image behind each network input (the authors augment the PIL
image before normalising): the plugin reads the network-input values of a black and a white pixel
from the model's preprocessing, so it needs 1- or 3-channel image inputs whose preprocessing is
affine per channel (every shiftbench image model's: scaling, normalisation, resizing).

Cost: ``steps x (n_augmentations forward + backward) + 1`` forward passes of one example per test
point, and the AugMix views drawn on the CPU.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._memo_augmix import PixelRange, augmix


def marginal_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy of the mean softmax over the rows of ``logits`` (B, K), and that mean's log (K,)."""
    log_mean = torch.logsumexp(logits.log_softmax(1), dim=0) - math.log(logits.shape[0])
    log_mean = log_mean.clamp_min(torch.finfo(log_mean.dtype).min)
    return -(log_mean * log_mean.exp()).sum(), log_mean


def _prior_hook(prior: float):
    def hook(bn: nn.BatchNorm2d, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        if x.numel() // x.shape[1] < 2:
            raise ShiftbenchError(f"memo: a BatchNorm2d layer sees {tuple(x.shape)}, one value per channel; its "
                                  "batch variance is undefined (use prior_strength=None for source statistics)")
        with torch.no_grad():
            mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)
        mean = prior * bn.running_mean + (1 - prior) * mean
        var = prior * bn.running_var + (1 - prior) * var
        return nn.functional.batch_norm(x, mean, var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return hook


def use_prior_statistics(network: nn.Module, prior_strength: float) -> int:
    """Make every BatchNorm2d layer of ``network`` normalise with ``N/(N+1)`` source + ``1/(N+1)`` batch
    statistics, ``N = prior_strength`` (in place); returns how many layers it changed."""
    layers = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in layers:
        if not bn.track_running_stats or bn.running_mean is None:
            raise ShiftbenchError("memo: a BatchNorm2d layer of this network has no source running statistics to mix "
                                  "with the batch's (set prior_strength=None)")
        bn.register_forward_hook(_prior_hook(prior_strength / (prior_strength + 1)))
    return len(layers)


class MEMO:
    """A model wrapped for MEMO: ``memo(x)`` adapts a fresh copy of the source model to each example of ``x``
    in turn and returns the adapted logits of each."""

    def __init__(self, model: nn.Module, pixels: PixelRange, rng: np.random.RandomState, lr: float = 0.005,
                 n_augmentations: int = 32, prior_strength: float | None = 16.0, steps: int = 1, flip: bool = True):
        MEMOAdapter.check_setting({"lr": lr, "n_augmentations": n_augmentations, "prior_strength": prior_strength,
                                   "steps": steps, "flip": flip})
        self.model = model.eval()
        self.pixels, self.rng = pixels, rng
        self.n_augmentations, self.steps, self.flip = n_augmentations, steps, flip
        if prior_strength is not None:
            use_prior_statistics(model, prior_strength)
        self.params = list(model.parameters())
        for p in self.params:
            p.requires_grad_(True)
        self.optimizer = torch.optim.SGD(self.params, lr=lr, momentum=0.0, weight_decay=0.0)
        self._saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(self.optimizer.state_dict()))

    def reset(self) -> None:
        """Restore the model and optimizer to their state at construction (the source model)."""
        self.model.load_state_dict(self._saved[0], strict=True)
        self.optimizer.load_state_dict(self._saved[1])

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """``n_augmentations`` AugMix views (B, c, h, w) of one input ``x`` (c, h, w)."""
        image = self.pixels.to_image(x)
        views = np.stack([augmix(image, self.rng, self.flip) for _ in range(self.n_augmentations)])
        return self.pixels.to_input(views).to(x.device)

    @torch.enable_grad()
    def adapt(self, x: torch.Tensor) -> None:
        """``steps`` SGD steps of the marginal entropy over fresh views of one input ``x`` (c, h, w)."""
        for _ in range(self.steps):
            self.optimizer.zero_grad()
            loss, _ = marginal_entropy(self.model(self.views(x)))
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ShiftbenchError("memo augments images and needs image batches (n, c, h, w); "
                                  f"got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ShiftbenchError("memo: the target batch contains NaN or infinite inputs")
        logits = []
        for example in x:
            self.reset()
            self.adapt(example)
            with torch.no_grad():
                logits.append(self.model(example.unsqueeze(0))[0])
        return torch.stack(logits)


def pixel_range(task: Task) -> PixelRange:
    """Network-input values of a black and a white pixel per channel, from the model's preprocessing of a black,
    a white and a mid-grey copy of one raw target image (which must be 8-bit); refuses non-affine preprocessing."""
    raw = np.asarray(task.target.inputs(np.arange(1)))
    if raw.dtype != np.uint8:
        raise ShiftbenchError(f"memo augments 8-bit images; the target inputs are {raw.dtype} arrays")
    black, grey, white = (task.model.preprocess(np.full_like(raw, v)).float() for v in (0, 128, 255))
    if black.ndim != 4:
        raise ShiftbenchError("memo augments images; the model's preprocessing gives inputs of shape "
                              f"{tuple(black.shape)}")
    constant = all(float((t - t[..., :1, :1]).abs().max()) <= 1e-5 for t in (black, white))  # as affine maps keep them
    expected = black + (white - black) * 128 / 255
    if not constant or (grey - expected).abs().max() > 1e-4 * (white - black).abs().max():
        raise ShiftbenchError("memo maps inputs back to 8-bit pixels and needs a preprocessing affine in each "
                              f"channel's pixel values; model {task.model.name!r}'s is not")
    return PixelRange(black[0, :, 0, 0], white[0, :, 0, 0])


class MEMOAdapter(ModelAdapter):
    """MEMO (Zhang et al. 2022): per-example marginal entropy over AugMix views, one SGD step, episodic."""

    name = "memo"
    hyperparameters = {
        "lr": Float(0.005, above=0,
                    doc="SGD learning rate on all parameters (0.005 CIFAR, 0.00025 ImageNet in the paper)"),
        "n_augmentations": Int(32, at_least=2, doc="AugMix views per test point (B)"),
        "prior_strength": Float(16.0, at_least=0, allow_none=True,
                                doc="N: BatchNorm2d uses N/(N+1) source + 1/(N+1) batch statistics "
                                    "(None: source only)"),
        "steps": Int(1, doc="SGD steps per test point"),
        "flip": Bool(True, doc="random horizontal flip in the pre-augmentation (the authors'; off for digits or text)"),
    }
    #: the paper's two learning rates, and its prior strength against source-only statistics
    grid = {"lr": [2.5e-4, 5e-3], "prior_strength": [16.0, None]}

    def not_applicable(self, model, data) -> str | None:
        if data.input_kind != "image":
            return f"MEMO augments images; dataset {data.name!r} has {data.input_kind} inputs"
        return None

    def prepare(self, task: Task) -> None:
        self.memo = MEMO(task.network(), pixel_range(task), np.random.RandomState(self.random_state), self.lr,
                         self.n_augmentations, self.prior_strength, self.steps, self.flip)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.memo(batch.inputs)
