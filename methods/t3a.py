"""T3A: test-time template adjuster (Iwasawa & Matsuo, NeurIPS 2021).

Gradient-free: the network is untouched (eval mode); only the linear classifier on top of the
backbone's features is replaced by a prototype classifier that grows with the test stream.
Semantics of the official code (matsuolab/T3A, ``domainbed/adapt_algorithms.py``):

- the support set starts from the head's weight vectors ``w_k`` (one per class), each labelled by
  the head's own prediction on it, ``argmax_k(head(w_k))``, with entropy ``H(softmax(head(w_k)))``
  (the head's bias included, as the code computes ``classifier(weight)``);
- for each test batch: features ``z = backbone(x)``; every example joins the support set, labelled by
  the head's prediction ``argmax head(z)`` and scored by the entropy of ``softmax(head(z))``;
- the support set is then filtered, class by class (by the label it carries), to the ``filter_k``
  supports of lowest entropy, and the filtered set *replaces* the stored one (pruned for good);
- prototypes: ``c_k = normalise(sum of the L2-normalised supports labelled k)``; the logits of the
  batch are ``z . c_k`` (``z`` itself not normalised, no bias), computed after the batch has joined
  the supports; a class with no support gets logit 0.

``filter_k = -1`` keeps every support (the paper's "no filtering"). Deliberate deviation: the
official code at -1 slices ``[:-1]``, which drops each class's highest-entropy support; TTAB
(LINs-lab/ttab) refuses -1 altogether. Ties in entropy are broken by arrival order (a stable sort;
the official ``torch.sort`` leaves them unspecified). The paper's grid for the filter size is
``{1, 5, 20, 50, 100, -1}``; TTAB's default is 100, used here.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import normalize, one_hot

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, ModelAdapter, Task
from shiftbench.hyperparameters import Int
from shiftbench.methods.tent import softmax_entropy


class TemplateAdjuster:
    """T3A's support set over a frozen linear ``head``: ``adjuster(z)`` adds features ``z`` and returns their logits."""

    def __init__(self, head: nn.Linear, filter_k: int = 100):
        if not isinstance(head, nn.Linear):
            raise ShiftbenchError(f"t3a needs a linear classifier head (its weight rows are the first prototypes); "
                                  f"got {type(head).__name__}")
        T3A.check_setting({"filter_k": filter_k})
        self.head, self.filter_k = head.eval(), filter_k
        self.n_classes = head.out_features
        with torch.no_grad():
            warmup = head.weight.detach().clone()
            self.supports, self.labels, self.entropies = warmup, *self._label(warmup)

    def _label(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's predicted class of each row of ``z`` and the entropy of its softmax output."""
        logits = self.head(z)
        return logits.argmax(1), softmax_entropy(logits)

    def filter(self) -> None:
        """Keep, within each class, the ``filter_k`` supports of lowest entropy (all if ``filter_k == -1``)."""
        if self.filter_k == -1:
            return
        keep = []
        for k in range(self.n_classes):
            members = torch.nonzero(self.labels == k).flatten()
            order = torch.sort(self.entropies[members], stable=True).indices
            keep.append(members[order[:self.filter_k]])
        keep = torch.cat(keep)
        self.supports, self.labels, self.entropies = self.supports[keep], self.labels[keep], self.entropies[keep]

    def prototypes(self) -> torch.Tensor:
        """(d, K) matrix whose column ``k`` is the normalised sum of the normalised supports of class ``k``."""
        onehot = one_hot(self.labels, self.n_classes).to(self.supports.dtype)
        return normalize(normalize(self.supports, dim=1).T @ onehot, dim=0)

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        labels, entropies = self._label(z)
        self.supports = torch.cat([self.supports, z])
        self.labels = torch.cat([self.labels, labels])
        self.entropies = torch.cat([self.entropies, entropies])
        self.filter()
        return z @ self.prototypes()


class T3A(ModelAdapter):
    """T3A (Iwasawa & Matsuo 2021): prototype classifier from low-entropy test features, gradient-free."""

    name = "t3a"
    hyperparameters = {
        "filter_k": Int(100, at_least=-1,
                        doc="supports kept per class, those of lowest entropy (M in the paper; -1 keeps all)"),
    }
    grid = {"filter_k": [1, 5, 20, 50, 100, -1]}

    @classmethod
    def check_together(cls, values: dict) -> None:
        if values["filter_k"] == 0:
            raise ShiftbenchError("t3a: filter_k must be >= 1 (supports kept per class) or -1 (keep all); got 0, "
                                  "which would empty the support set")

    def not_applicable(self, model, data) -> str | None:
        if not isinstance(model.head, nn.Linear):
            return f"model {model.name!r} has a {type(model.head).__name__} head; t3a adjusts a linear classifier"
        return None

    def prepare(self, task: Task) -> None:
        backbone, head = task.backbone_and_head()
        self.backbone = backbone.eval()
        self.adjuster = TemplateAdjuster(head, self.filter_k)

    @torch.no_grad()
    def process(self, batch: Batch) -> torch.Tensor:
        return self.adjuster(self.backbone(batch.inputs))
