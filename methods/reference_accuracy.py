"""Reference accuracy, the no-estimation baseline of label-free performance estimation.

Every target chunk is assumed to perform like the labelled reference: the estimate of each chunk
is the model's accuracy on the reference, whatever the chunk holds. An estimator is useful where
its error is below this one's.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_probs
from shiftbench.families import PerformanceEstimator


class ReferenceAccuracy(PerformanceEstimator):
    """No estimation: every chunk's accuracy is the reference accuracy."""

    name = "reference_accuracy"
    grid: ClassVar[dict] = {}

    def fit(self, reference_probs: np.ndarray, reference_y: np.ndarray) -> ReferenceAccuracy:
        probs = check_probs(reference_probs, "reference_probs")
        y = check_labels(reference_y, probs.shape[1], "reference_y", n=len(probs))
        self.reference_accuracy_ = float(np.mean(probs.argmax(1) == y))
        return self

    def estimate_accuracy(self, probs: np.ndarray) -> float:
        check_probs(probs)
        return self.reference_accuracy_
