"""Source-only baseline: the source model's predictions, unchanged."""

from __future__ import annotations

import numpy as np

from shiftbench.families import OutputAdapter


class SourceOnly(OutputAdapter):
    """The unadapted source model (the reference every method is compared with)."""

    name = "source_only"
    grid: dict = {}

    def adapt(self, probs: np.ndarray, feats: np.ndarray) -> np.ndarray:
        return probs
