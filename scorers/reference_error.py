"""Reference error: how well a performance estimator estimates accuracy on held-out labelled reference data."""

from __future__ import annotations

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.scoring import Scorer


class ReferenceError(Scorer):
    """Minus the mean absolute error of the estimated accuracy on held-out reference data (no shift: the
    estimator's in-distribution error, the only label-backed check that needs no target label)."""

    name = "reference_error"

    def score_estimate(self, estimates: np.ndarray, realised: np.ndarray) -> float:
        estimates, realised = np.asarray(estimates, np.float64), np.asarray(realised, np.float64)
        if estimates.shape != realised.shape or estimates.size == 0:
            raise ShiftbenchError(f"reference_error needs one estimate per realised accuracy; got {estimates.shape} "
                                  f"estimates and {realised.shape} realised")
        return -float(np.abs(estimates - realised).mean())
