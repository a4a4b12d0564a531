"""Pseudo-labelling (PL): cross-entropy on the network's own confident hard predictions, at test time.

The test-time baseline of Lee (2013)'s pseudo-labels as the LAME authors implement it
(fiveai/LAME, ``src/adaptation/pseudo_label.py``, defaults ``configs/method/default/pl.yaml`` and
``src/config/defaults.py``): on each target batch,

- forward pass with every BatchNorm layer normalising with the batch's statistics;
- keep the examples whose top softmax probability exceeds ``threshold`` (strictly; 0.9);
- loss = mean over the kept examples of ``-log(p_i[argmax p_i] + 1e-10)``, the cross-entropy to their
  one-hot pseudo-label (the label is not differentiated through), with the same ``1e-10`` guard;
- one plain SGD step (lr 0.01, momentum 0: the authors' default and their best setting) on the
  BatchNorm affine parameters ("all-BN"), the only parameters that train; no update when no
  example is confident.

Neither mariodoebler/test-time-adaptation (whose nearest method, RPL, uses a generalised
cross-entropy on every example) nor TTAB (LINs-lab/ttab, which has conjugate pseudo-labels) has
this plain baseline, so the reference is fiveai/LAME's ``PseudoLabeller``.

One deliberate difference from fiveai/LAME: their harness predicts *after* the update, in eval
mode, with the source running statistics (their BatchNorm momentum is 0). Here, as in Tent
(:mod:`shiftbench.methods.tent`), the logits returned are those of the forward pass that made the
pseudo-labels (before the update, batch statistics), so PL and Tent differ only in their loss and
optimiser and can be compared cell for cell. The network is set up with Tent's
:func:`~shiftbench.methods.tent.configure_for_tent` (every BatchNorm layer, 1d/2d/3d).
"""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Float, Int
from shiftbench.methods._batchnorm import require_batch_statistics
from shiftbench.methods._online import OnlineLearner
from shiftbench.methods.tent import configure_for_tent

LOG_EPS = 1e-10  # guard inside log(p), as in the authors' loss


def confident_pseudo_label_loss(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Mean cross-entropy of the confident rows of ``logits`` to their own argmax (``None`` if no row is
    confident), and the boolean mask of the rows kept (top probability > ``threshold``)."""
    probs = logits.softmax(1)
    top = probs.detach().max(1)
    keep = top.values > threshold
    if not keep.any():
        return None, keep
    picked = probs[keep].gather(1, top.indices[keep].unsqueeze(1)).squeeze(1)
    return -torch.log(picked + LOG_EPS).mean(), keep


class PseudoLabel(OnlineLearner):
    """A model wrapped for pseudo-labelling: ``pl(x)`` returns logits of batch ``x`` and adapts on it."""

    def __init__(self, model: nn.Module, lr: float = 0.01, threshold: float = 0.9, steps: int = 1):
        PseudoLabelAdapter.check_setting({"lr": lr, "threshold": threshold, "steps": steps})
        self.threshold = threshold
        self.params = configure_for_tent(model)
        super().__init__(model, torch.optim.SGD(self.params, lr=lr, momentum=0.0), steps)

    def check(self, x: torch.Tensor) -> None:
        """Batches of at least 2 examples (BatchNorm normalises with the batch's statistics)."""
        require_batch_statistics(x, "pseudo_label")

    def loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor | None:
        """Cross-entropy of the confident examples to their pseudo-labels (``None`` if none is confident)."""
        return confident_pseudo_label_loss(logits, self.threshold)[0]


class PseudoLabelAdapter(ModelAdapter):
    """Pseudo-labelling (fiveai/LAME's PL baseline): cross-entropy on confident hard labels, BatchNorm affine, SGD."""

    name = "pseudo_label"
    hyperparameters = {
        "lr": Float(0.01, above=0, doc="SGD learning rate (momentum 0)"),
        "threshold": Float(0.9, at_least=0, at_most=1,
                           doc="an example is pseudo-labelled when its top softmax probability exceeds this"),
        "steps": Int(1, doc="adaptation steps per batch"),
    }
    #: the LAME authors tune lr over 0.001-0.1; the threshold sets how many examples train
    grid = {"lr": [1e-3, 1e-2], "threshold": [0.8, 0.9, 0.95]}

    def not_applicable(self, model, data) -> str | None:
        return None if model.has_batchnorm() else f"model {model.name!r} has no BatchNorm layers"

    def prepare(self, task: Task) -> None:
        self.pl = PseudoLabel(task.network(), self.lr, self.threshold, self.steps)

    def process(self, batch: Batch) -> torch.Tensor:
        return self.pl(batch.inputs)
