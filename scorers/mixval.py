"""MixVal (Hu et al. 2023): agreement of predictions on mixed target samples (ICE, intra + inter)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.scoring import Candidate, Scorer, ValidationView

#: how the intra- and inter-cluster agreements combine into the score
ICE_REDUCTIONS: dict[str, Callable[[dict[str, float]], float]] = {
    "both": lambda ice: np.nanmean([ice["intra"], ice["inter"]]),
    "intra": lambda ice: ice["intra"],
    "inter": lambda ice: ice["inter"],
}


class MixVal(Scorer):
    """MixVal: agreement of predictions on mixed target samples with the dominant sample's pseudo-label.

    Hu et al. 2023: mix target samples (weight ``alpha``) with a random permutation of themselves; the accuracy of predictions on the mixtures against the dominant sample's pseudo-label,
    averaged over same-label (intra) and different-label (inter) pairs."""

    name = "mixval"

    def __init__(self, alpha: float = 0.55, ice: str = "both", seed: int = 0):
        if ice not in ICE_REDUCTIONS:
            raise ShiftbenchError(f"MixVal ice={ice!r}; choose one of {sorted(ICE_REDUCTIONS)}")
        self.alpha, self.ice, self.seed = alpha, ice, seed

    def score(self, candidate: Candidate, view: ValidationView) -> float:
        X = np.asarray(view.target.X, dtype=np.float64)
        perm = np.random.RandomState(self.seed).permutation(len(X))
        labels_a = candidate.predict(X)
        labels_b = labels_a[perm]
        mixed = self.alpha * X + (1 - self.alpha) * X[perm]
        mix_labels = labels_a if self.alpha >= 0.5 else labels_b
        agree = candidate.predict(mixed) == mix_labels
        same = labels_a == labels_b
        ice = {"intra": agree[same].mean() if same.any() else np.nan,
               "inter": agree[~same].mean() if (~same).any() else np.nan}
        return float(ICE_REDUCTIONS[self.ice](ice))
