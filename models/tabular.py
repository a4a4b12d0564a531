"""Logistic regression on standardised tabular features, as a :class:`SourceModel`.

The backbone standardises with the ``train`` split's mean and standard deviation (so features
are the standardised inputs); the head is a ``torch.nn.Linear`` holding scikit-learn's
multinomial logistic regression fitted on ``train`` (binary: logits (0, w.x + b), which give the
same probabilities). Deterministic and fast, so it is rebuilt rather than cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from shiftbench.model import ModelSpec, SourceModel, state_fingerprint

ABSENT_CLASS_BIAS = -30.0  # logit of a class that never occurs in train


class Standardise(nn.Module):
    """(x - mean) / std with fixed statistics."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def linear_head(classifier: LogisticRegression, n_features: int, n_classes: int) -> nn.Linear:
    """A Linear layer giving the fitted classifier's probabilities through a softmax, one row per class."""
    weight = np.zeros((n_classes, n_features))
    bias = np.full(n_classes, ABSENT_CLASS_BIAS)
    classes = classifier.classes_.astype(np.int64)
    if len(classes) == 2:
        weight[classes[1]], bias[classes[1]] = classifier.coef_[0], classifier.intercept_[0]
        bias[classes[0]] = 0.0
    else:
        weight[classes], bias[classes] = classifier.coef_, classifier.intercept_
    head = nn.Linear(n_features, n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return head


def tabular_preprocess(inputs: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(inputs, dtype=np.float32))


class TabularLogistic(ModelSpec):
    """Multinomial logistic regression (L2, C) on standardised features of the ``train`` split."""

    name = "tabular_logistic"
    input_kinds = ("tabular",)
    defaults = {"C": 1.0, "max_iter": 2000}

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        cfg = {**self.defaults, **self.options}
        train = dataset.split("train")
        x = np.asarray(train.inputs(), dtype=np.float64)
        mean, std = x.mean(0), x.std(0)
        std[std == 0] = 1.0
        classifier = LogisticRegression(C=cfg["C"], max_iter=cfg["max_iter"], random_state=seed)
        classifier.fit((x - mean) / std, train.y)
        backbone = Standardise(mean, std)
        head = linear_head(classifier, x.shape[1], dataset.n_classes)
        net = nn.Sequential(backbone, head)
        return SourceModel(self.name, backbone, head, tabular_preprocess, state_fingerprint(net), "trained-by-harness", device)
