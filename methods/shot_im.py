"""SHOT-IM: information maximisation on the feature extractor, classifier frozen (Liang et al., ICML 2020).

The loss on a batch of softmax outputs ``p_i`` (official code tim-learn/SHOT, ``object/loss.py`` and
``image_target.py``, with its ``epsilon = 1e-5`` inside both logarithms)::

    L = mean_i  -sum_k p_ik log(p_ik + eps)   +   sum_k pbar_k log(pbar_k + eps),   pbar = mean_i p_i

i.e. the mean entropy (confident predictions) minus the entropy of the mean prediction (diverse
ones). SHOT-IM is SHOT without its clustering pseudo-label term. Semantics kept from the official
code: every parameter of the feature extractor (the source model's backbone) is trained, the
classifier head is frozen ("hypothesis transfer"); the backbone is in train mode (BatchNorm
normalises with the batch's statistics and updates its running ones, as ``netF.train()``,
``netB.train()``); SGD with momentum 0.9, Nesterov, weight decay 1e-3.

Run online, batch by batch, as TTAB (LINs-lab/ttab, ``shot.py`` online mode) runs it: each call on
a batch, ``steps`` times, forward, loss, backward, one SGD step; the logits returned are those of
the last forward pass, computed before its update (as in Tent). ``episodic=True`` restores the
model and the optimizer's momentum before every batch. Deliberate deviations from the offline
official code, which trains for a fixed number of epochs over the whole target set: no learning-rate
decay (its ``(1 + 10 t/T)^-0.75`` needs the number of steps in advance; TTAB's online mode has none
either) and one learning rate for the whole backbone (the official code splits it into a backbone
at 0.1 x lr and a bottleneck at lr, a split the harness's models do not have). The default
lr = 1e-3 is the official backbone rate (0.1 x 1e-2) on the object benchmarks.
"""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Bool, Float, Int
from shiftbench.methods._online import OnlineLearner

EPSILON = 1e-5  # inside the logarithms of both entropies, as in the official code


def information_maximisation_loss(logits: torch.Tensor, eps: float = EPSILON) -> torch.Tensor:
    """Mean per-example entropy minus the entropy of the mean prediction, of the softmax of ``logits``."""
    p = logits.softmax(1)
    mean_entropy = -(p * torch.log(p + eps)).sum(1).mean()
    p_mean = p.mean(0)
    return mean_entropy + (p_mean * torch.log(p_mean + eps)).sum()


class ShotIM(OnlineLearner):
    """A ``Sequential(backbone, head)`` network wrapped for SHOT-IM: ``shot(x)`` returns logits and adapts."""

    def __init__(self, network: nn.Sequential, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 1e-3,
                 steps: int = 1, episodic: bool = False):
        SHOTIM.check_setting({"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "steps": steps,
                              "episodic": episodic})
        backbone, head = network[0], network[1]
        head.requires_grad_(False)
        params = [p for p in backbone.parameters() if p.requires_grad]
        if not params:
            raise ShiftbenchError("shot_im trains the feature extractor, and this backbone has no parameters")
        backbone.train()
        head.eval()
        super().__init__(network, torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                                  nesterov=True), steps, episodic)

    def check(self, x: torch.Tensor) -> None:
        """Batches of at least 2 examples (the diversity term needs a batch mean)."""
        if x.shape[0] < 2:
            raise ShiftbenchError(f"shot_im's diversity term (entropy of the batch's mean prediction) needs at least "
                                  f"2 examples per batch; got a batch of {x.shape[0]} (use a scenario with "
                                  f"batch_size >= 2)")

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """SHOT's information maximisation loss of the batch."""
        return information_maximisation_loss(logits)


class SHOTIM(ModelAdapter):
    """SHOT-IM (Liang et al. 2020): information maximisation on the backbone, head frozen, SGD, online."""

    name = "shot_im"
    hyperparameters = {
        "lr": Float(1e-3, above=0, doc="SGD learning rate of the backbone"),
        "momentum": Float(0.9, above=0, at_most=1, doc="SGD momentum (Nesterov, as the official code: needs > 0)"),
        "weight_decay": Float(1e-3, at_least=0, doc="SGD weight decay"),
        "steps": Int(1, doc="adaptation steps per batch"),
        "episodic": Bool(False, doc="restore the source model before every batch"),
    }
    grid = {"lr": [1e-4, 1e-3, 1e-2]}

    def prepare(self, task: Task) -> None:
        self.shot = ShotIM(task.network(), self.lr, self.momentum, self.weight_decay, self.steps, self.episodic)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.shot(batch.inputs)
