"""Mean-teacher pieces shared by CoTTA (``methods/cotta.py``) and RoTTA (``methods/rotta.py``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from shiftbench.errors import InvalidArrayError


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy of the student's softmax to the teacher's softmax (the teacher's probabilities as
    soft pseudo-labels): ``-sum_k softmax(teacher)_k log softmax(student)_k``; no gradient reaches the teacher."""
    return -(teacher_logits.detach().softmax(1) * student_logits.log_softmax(1)).sum(1)


def frozen_copy(network: nn.Module) -> nn.Module:
    """A deep copy of ``network`` whose parameters take no gradient (a teacher or an anchor)."""
    teacher = copy.deepcopy(network)
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, keep: float) -> None:
    """``teacher <- keep * teacher + (1 - keep) * student``, parameter by parameter (buffers untouched)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(keep).add_(s.detach(), alpha=1.0 - keep)


def require_finite(x: torch.Tensor, method: str) -> None:
    """Refuse a target batch holding NaN or infinite values, before any update."""
    if not torch.isfinite(x).all():
        raise InvalidArrayError(f"target batch for method {method!r} contains NaN or infinite values")
