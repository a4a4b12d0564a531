"""Covariate shift by biased sampling on a feature's median, the protocol of the double-weighting
paper (Segovia-Martin et al. 2023) on tabular data bundled with scikit-learn.

Each example goes to the source pool with probability 0.7 if its ``feature`` is at most the
median and 0.3 otherwise, else to the target pool (seeded). The source pool is split 80/20
into ``train`` / ``id_val``; the target pool into ``val`` / ``test`` halves (stratified, seeded).
Inputs are float features (N, d); metadata records ``below_median`` for grouping.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets

from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.datasets._sampling import labelled_parts
from shiftbench.errors import ShiftbenchError, UnknownNameError
from shiftbench.validation import check_int

SOURCES: dict[str, Callable] = {
    "breast_cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "digits": sk_datasets.load_digits,
}


def biased_split(values: np.ndarray, seed: int, p_below: float = 0.7, p_above: float = 0.3) -> np.ndarray:
    """Boolean mask of source examples: kept with ``p_below`` at or below the median of ``values``, else ``p_above``."""
    rng = np.random.default_rng(seed)
    p = np.where(values <= np.median(values), p_below, p_above)
    return rng.random(len(values)) < p


class BiasedSampling(Dataset):
    """A scikit-learn tabular dataset with the DW paper's median-biased covariate shift."""

    name = "biased_sampling"
    input_kind = "tabular"
    visible_metadata = ("below_median",)
    seed_option = "seed"

    def __init__(self, source: str = "breast_cancer", feature: int = 0, seed: int = 0):
        super().__init__()
        if source not in SOURCES:
            raise UnknownNameError("biased-sampling source", source, list(SOURCES))
        bunch = SOURCES[source]()
        x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
        check_int(feature, "feature", "dataset biased_sampling", at_least=0)
        if feature >= x.shape[1]:
            raise ShiftbenchError(f"dataset biased_sampling: feature must index one of the {x.shape[1]} columns of "
                                  f"{source}; got {feature}. Set feature to 0..{x.shape[1] - 1}.")
        in_source = biased_split(x[:, feature], seed)
        meta = pd.DataFrame({"below_median": x[:, feature] <= np.median(x[:, feature]), "y": y})
        self.n_classes = int(y.max()) + 1
        self.class_names = [str(c) for c in getattr(bunch, "target_names", range(self.n_classes))]
        self.grouper = Grouper(["below_median"])
        index = {**labelled_parts({"train": 0.8, "id_val": 0.2}, np.flatnonzero(in_source), y, seed),
                 **labelled_parts({"val": 0.5, "test": 0.5}, np.flatnonzero(~in_source), y, seed)}
        for key, idx in index.items():
            self.splits[key] = Split(key, y[idx], meta.iloc[idx], x=x[idx])
