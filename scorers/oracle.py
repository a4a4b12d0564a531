"""The oracle: target accuracy from target labels, an upper reference."""

from __future__ import annotations

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.scoring import Candidate, LabelledTarget, Scorer, ValidationView


class Oracle(Scorer):
    """Target accuracy from target labels: an upper reference, never a realistic selection."""

    name = "oracle"
    needs_target_labels = True

    def score(self, candidate: Candidate, view: ValidationView, truth: LabelledTarget | None = None) -> float:
        if truth is None:
            raise ShiftbenchError("the oracle scorer needs the labelled target; only the selection code passes it")
        return float((candidate.predict(truth.X) == truth.y).mean())

    def score_output(self, probs: np.ndarray, y: np.ndarray | None = None) -> float:
        """Accuracy of the most probable classes against the target labels ``y``."""
        if y is None:
            raise ShiftbenchError("the oracle scorer needs the target labels y; only the selection code passes them")
        return float((np.asarray(probs).argmax(1) == np.asarray(y)).mean())
