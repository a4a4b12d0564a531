"""Source-only baseline: the source model's predictions, unchanged."""

from __future__ import annotations

import numpy as np

from shiftbench.families import Batch, OutputAdapter


class SourceOnly(OutputAdapter):
    """The unadapted source model (the reference every method is compared with)."""

    name = "source_only"
    grid: dict = {}

    def process(self, batch: Batch) -> np.ndarray:
        return batch.probs
