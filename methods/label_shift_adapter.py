"""Label shift adapter for test-time adaptation under covariate and label shift (Park et al., ICCV 2023).

No public code exists; this follows the paper's recipe, with these decisions (documented here
because the paper leaves them open or the digits scale forces them):

- **Which part of the model.** The adapter produces parameters for the classifier head only: a
  per-feature scale ``s`` (d), a per-class weight scale ``g`` (K) and a per-class bias ``c`` (K),
  giving ``logits = (1 + g) * (W (f * (1 + s))) + b + c`` with the source head ``(W, b)`` frozen.
  The backbone is left to the base TTA method, so the adapter composes with any of them.
- **Adapter network.** An MLP (K -> hidden -> d + 2K, ReLU) whose input is the log prior ratio
  ``log pi_t - log pi_s`` (zero when the target has the source's label distribution); its last
  layer starts at zero, so an untrained adapter is the source model.
- **Training** (before deployment, on the labelled source ``train`` split, features of the frozen
  source model): each example of a mini-batch is paired with a label distribution ``pi_t`` drawn
  from a mixture of Dirichlet(1) draws and exponential long-tailed profiles with a log-uniform
  imbalance ratio in [1, 100] over a random class order (floored at 1e-3 and renormalised), and
  the loss is the generalised logit-adjusted cross-entropy
  ``CE(logits(x; pi_t) + log pi_s - log pi_t, y)``, whose minimiser on source data is the
  target posterior ``log p_t(y|x)`` (Menon et al. 2021; Hong et al. 2021). ``pi_s`` is the class
  frequency of the source ``train`` split. Adam, fixed number of steps, seeded, cached by
  (model, source split, settings).
- **Online estimate.** ``pi_t`` starts at ``pi_s``; after each batch it moves to
  ``momentum * pi_t + (1 - momentum) * mean_batch softmax(adapted logits)`` (an exponential
  moving average of the predictions, i.e. an online form of the Saerens EM update). A batch's
  predictions use the estimate from the batches before it.
- **Combination** (``base``): ``none`` (frozen source backbone), ``bn_adapt`` (batch statistics)
  or ``tent`` (Tent on the backbone's BatchNorm affine parameters, its entropy taken on the
  adapted logits, as in the paper where the adapter sits inside the TTA model).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Choice, Float, Int
from shiftbench.methods._batchnorm import require_batch_statistics, use_batch_statistics
from shiftbench.methods.tent import Tent
from shiftbench.seeding import generator

PRIOR_FLOOR = 1e-3


def floor_prior(prior: torch.Tensor) -> torch.Tensor:
    """Class priors floored at ``PRIOR_FLOOR`` and renormalised (rows of a matrix or one vector)."""
    prior = prior.clamp_min(PRIOR_FLOOR)
    return prior / prior.sum(-1, keepdim=True)


def sample_label_distributions(n: int, n_classes: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` training label distributions: half Dirichlet(1), half long-tailed over a random class order."""
    dirichlet = rng.dirichlet(np.ones(n_classes), size=n)
    ratios = np.exp(rng.uniform(0, np.log(100.0), size=(n, 1)))
    ranks = np.argsort(rng.random((n, n_classes)), axis=1) / max(n_classes - 1, 1)
    long_tailed = ratios ** -ranks
    long_tailed /= long_tailed.sum(1, keepdims=True)
    pick = rng.random((n, 1)) < 0.5
    return floor_prior(torch.as_tensor(np.where(pick, dirichlet, long_tailed), dtype=torch.float32))


class AdapterNet(nn.Module):
    """MLP from a log prior ratio (K) to head parameters: feature scale (d), class scale (K), class bias (K)."""

    def __init__(self, n_classes: int, feature_dim: int, hidden: int = 64):
        super().__init__()
        self.feature_dim = feature_dim
        self.mlp = nn.Sequential(nn.Linear(n_classes, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim + 2 * n_classes))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.mlp(log_ratio)
        d = self.feature_dim
        return out[..., :d], out[..., d:-log_ratio.shape[-1]], out[..., -log_ratio.shape[-1]:]


class PriorConditionedHead(nn.Module):
    """The frozen source head with parameters adjusted by the adapter for a target label distribution."""

    def __init__(self, head: nn.Linear, adapter: AdapterNet, source_prior: torch.Tensor):
        super().__init__()
        self.head, self.adapter = head, adapter
        self.register_buffer("log_source_prior", torch.log(floor_prior(source_prior)))
        self.register_buffer("prior", floor_prior(source_prior).clone())

    def logits(self, feats: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Adapted logits of ``feats`` for target prior(s) ``prior`` ((K,) or one row per example)."""
        scale, class_scale, bias = self.adapter(torch.log(prior) - self.log_source_prior)
        weighted = nn.functional.linear(feats * (1 + scale), self.head.weight)
        return (1 + class_scale) * weighted + self.head.bias + bias

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.logits(feats, self.prior)

    @torch.no_grad()
    def update_prior(self, probs: torch.Tensor, momentum: float) -> None:
        """Move the target prior estimate towards the batch's mean prediction."""
        self.prior.copy_(floor_prior(momentum * self.prior + (1 - momentum) * probs.mean(0)))


def train_adapter(head: nn.Linear, feats: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
                  hidden: int = 64, steps: int = 600, batch_size: int = 256, lr: float = 1e-3) -> PriorConditionedHead:
    """Fit the adapter on labelled source features under the generalised logit-adjusted loss."""
    torch.manual_seed(seed)
    rng = generator(seed, "training")
    source_prior = torch.as_tensor(np.bincount(y, minlength=n_classes) / len(y), dtype=torch.float32)
    model = PriorConditionedHead(head, AdapterNet(n_classes, feats.shape[1], hidden), source_prior)
    model.head.requires_grad_(False)
    f_all, y_all = torch.as_tensor(feats, dtype=torch.float32), torch.as_tensor(y)
    opt = torch.optim.Adam(model.adapter.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(y), batch_size))
        prior = sample_label_distributions(batch_size, n_classes, rng)
        adjusted = model.logits(f_all[idx], prior) + model.log_source_prior - torch.log(prior)
        loss = nn.functional.cross_entropy(adjusted, y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def frozen_forward(network: nn.Module, lr: float) -> Callable[[torch.Tensor], torch.Tensor]:
    network.eval()
    return torch.no_grad()(network)


def bn_adapt_forward(network: nn.Module, lr: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.no_grad()(use_batch_statistics(network))


def tent_forward(network: nn.Module, lr: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return Tent(network, lr=lr)


#: base TTA method -> builds the batch -> logits function of a network whose head is the adapter's
BASES: dict[str, Callable[[nn.Module, float], Callable[[torch.Tensor], torch.Tensor]]] = {
    "none": frozen_forward,
    "bn_adapt": bn_adapt_forward,
    "tent": tent_forward,
}


class LabelShiftAdapter(ModelAdapter):
    """Label shift adapter (Park et al. 2023): head parameters from an online target label-distribution estimate."""

    name = "label_shift_adapter"
    hyperparameters = {
        "base": Choice("none", tuple(BASES), doc="test-time method adapting the backbone"),
        "momentum": Float(0.9, at_least=0, at_most=1, doc="momentum of the online target prior estimate"),
        "lr": Float(1e-3, above=0, doc="learning rate of the tent base"),
        "hidden": Int(64, doc="hidden units of the adapter network"),
        "train_steps": Int(600, doc="Adam steps training the adapter on the source train split"),
    }
    grid = {"base": ["none", "bn_adapt", "tent"], "momentum": [0.5, 0.9]}

    def not_applicable(self, model, data) -> str | None:
        if self.base != "none" and not model.has_batchnorm():
            return f"base {self.base!r} needs BatchNorm layers; model {model.name!r} has none"
        return None

    def prepare(self, task: Task) -> None:
        backbone, head = task.backbone_and_head()
        if not isinstance(head, nn.Linear):
            raise ShiftbenchError(f"the label shift adapter needs a linear head; this model's head is {type(head).__name__}")
        self.head = self._trained_head(head, task)
        self.forward = BASES[self.base](nn.Sequential(backbone, self.head), self.lr)

    def process(self, batch: Batch) -> torch.Tensor:
        x = batch.inputs
        if self.base != "none":
            require_batch_statistics(x, f"the label shift adapter with base {self.base!r}")
        logits = self.forward(x).detach()
        self.head.update_prior(torch.softmax(logits, 1), self.momentum)
        return logits

    def _trained_head(self, head: nn.Linear, task: Task) -> PriorConditionedHead:
        """The adapter trained on the source ``train`` split, from the cache when already trained."""
        src = task.source_outputs("train")

        def fit() -> dict[str, np.ndarray]:
            trained = train_adapter(head, src.feats, src.y, task.n_classes, task.seed, self.hidden, self.train_steps)
            return {k: v.numpy() for k, v in trained.state_dict().items()}

        state = self.cached(task, {"hidden": self.hidden, "steps": self.train_steps, "seed": task.seed}, fit)
        model = PriorConditionedHead(head, AdapterNet(task.n_classes, src.feats.shape[1], self.hidden),
                                     torch.zeros(task.n_classes))
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        return model.eval()
