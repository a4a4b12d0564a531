"""DoC, difference of confidences (Guillory et al., ICCV 2021).

The drop in accuracy from reference to target is estimated by the drop in average maximum
softmax confidence: acc_target ~ acc_reference - (mean conf_reference - mean conf_target).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.arrays import check_probs
from shiftbench.families import Batch, Outputs
from shiftbench.methods.reference_accuracy import ReferenceAccuracy


class DoC(ReferenceAccuracy):
    """Difference of confidences: reference accuracy shifted by the change in mean confidence."""

    name = "doc"
    grid: ClassVar[dict] = {}

    def fit(self, reference: Outputs) -> DoC:
        super().fit(reference)
        self.reference_confidence_ = float(check_probs(reference.probs, "reference.probs").max(1).mean())
        return self

    def process(self, chunk: Batch) -> float:
        shift = self.reference_confidence_ - float(check_probs(chunk.probs, "chunk.probs").max(1).mean())
        return float(np.clip(self.reference_accuracy_ - shift, 0.0, 1.0))
