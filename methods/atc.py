"""ATC, average thresholded confidence (Garg et al., ICLR 2022).

A confidence score s(x) (maximum softmax probability, or negative entropy sum_k p_k log p_k) is
thresholded at t, chosen on the labelled reference so that the fraction of reference examples with
s > t equals the reference accuracy; the estimated accuracy of a target chunk is its fraction of
examples with s > t. (The paper also temperature-scales the source model first; here the
scores are used as the model gives them, the same inputs every estimator receives.)
"""

from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_probs
from shiftbench.families import Batch, Outputs, PerformanceEstimator
from shiftbench.hyperparameters import Choice


def negative_entropy(probs: np.ndarray) -> np.ndarray:
    """sum_k p_k log p_k per row (0 log 0 = 0): higher means more confident."""
    return np.sum(probs * np.log(np.where(probs > 0, probs, 1.0)), axis=1)


CONFIDENCE_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max_confidence": lambda probs: probs.max(1),
    "negative_entropy": negative_entropy,
}


def atc_threshold(scores: np.ndarray, correct: np.ndarray) -> float:
    """Threshold t with #{s > t} = #correct on the reference (-inf if everything is correct)."""
    n_errors = int(len(correct) - np.sum(correct))
    return -np.inf if n_errors == 0 else float(np.sort(scores)[n_errors - 1])


class ATC(PerformanceEstimator):
    """Average thresholded confidence: share of target confidences above the reference-fitted threshold."""

    name = "atc"
    hyperparameters = {"score": Choice("max_confidence", tuple(CONFIDENCE_SCORES), doc="confidence score thresholded")}
    grid: ClassVar[dict] = {"score": ["max_confidence", "negative_entropy"]}

    def fit(self, reference: Outputs) -> ATC:
        probs = check_probs(reference.probs, "reference.probs")
        y = check_labels(reference.y, probs.shape[1], "reference.y", n=len(probs))
        self.threshold_ = atc_threshold(CONFIDENCE_SCORES[self.score](probs), probs.argmax(1) == y)
        return self

    def process(self, chunk: Batch) -> float:
        return float(np.mean(CONFIDENCE_SCORES[self.score](check_probs(chunk.probs, "chunk.probs")) > self.threshold_))
