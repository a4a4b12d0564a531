"""SKADA's simulated shifts (``skada.datasets.make_shifted_datasets``): 2-D Gaussian-mixture
classification with a covariate, target (label), conditional or subspace shift.

The source sample is split 80/20 into ``train`` / ``id_val``; the target sample into ``val`` /
``test`` halves (stratified, seeded). Needs the optional dependency ``skada``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.datasets._sampling import labelled_parts
from shiftbench.errors import ShiftbenchError

SHIFTS = ("covariate_shift", "target_shift", "conditional_shift", "subspace")


class SkadaShift(Dataset):
    """A simulated domain-adaptation problem from skada's generator."""

    name = "skada_shift"
    input_kind = "tabular"
    visible_metadata = ("domain",)
    seed_option = "seed"

    def __init__(self, shift: str = "covariate_shift", n_samples: int = 100, noise: float | None = None, seed: int = 0):
        super().__init__()
        if shift not in SHIFTS:
            raise ShiftbenchError(f"unknown skada shift {shift!r}; valid shifts: {', '.join(SHIFTS)}")
        try:
            from skada.datasets import make_shifted_datasets
        except ImportError as exc:
            raise ShiftbenchError("dataset 'skada_shift' needs skada: pip install 'skada>=0.6'") from exc
        x, y, domain = make_shifted_datasets(n_samples_source=n_samples, n_samples_target=n_samples, shift=shift,
                                             noise=noise, label="binary", random_state=seed)
        x, y = x.astype(np.float32), y.astype(np.int64)
        meta = pd.DataFrame({"domain": np.where(domain > 0, "source", "target"), "y": y})
        self.n_classes, self.class_names = 2, ["0", "1"]
        self.grouper = Grouper(["y"])
        index = {**labelled_parts({"train": 0.8, "id_val": 0.2}, np.flatnonzero(domain > 0), y, seed),
                 **labelled_parts({"val": 0.5, "test": 0.5}, np.flatnonzero(domain < 0), y, seed)}
        for key, idx in index.items():
            self.splits[key] = Split(key, y[idx], meta.iloc[idx], x=x[idx])
