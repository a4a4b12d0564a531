"""Reference accuracy, the no-estimation baseline of label-free performance estimation.

Every target chunk is assumed to perform like the labelled reference: the estimate of each chunk
is the model's accuracy on the reference, whatever the chunk holds. An estimator is useful where
its error is below this one's.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.arrays import check_labels, check_probs
from shiftbench.families import Batch, Outputs, PerformanceEstimator


class ReferenceAccuracy(PerformanceEstimator):
    """No estimation: every chunk's accuracy is the reference accuracy."""

    name = "reference_accuracy"
    grid: ClassVar[dict] = {}

    def fit(self, reference: Outputs) -> ReferenceAccuracy:
        probs = check_probs(reference.probs, "reference.probs")
        y = check_labels(reference.y, probs.shape[1], "reference.y", n=len(probs))
        self.reference_accuracy_ = float(np.mean(probs.argmax(1) == y))
        return self

    def process(self, chunk: Batch) -> float:
        check_probs(chunk.probs, "chunk.probs")
        return self.reference_accuracy_
