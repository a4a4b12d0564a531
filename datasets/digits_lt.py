"""Long-tailed digits: the ``digits`` benchmark with a class-imbalanced source (train) split.

The ``train`` split keeps ``n_c = floor(n_max * ratio^(-c/(K-1)))`` examples of class ``c``
(``n_max`` the smallest class count of the balanced train split, so every class can supply it),
chosen by a seeded permutation: class 0 is the head, class 9 the tail (imbalance ratio 100 ->
300, 179, 107, ..., 5, 3 examples, 740 in all). ``id_val`` / ``id_test`` / ``val`` / ``test`` stay balanced
pools; long-tailed targets are scenarios on top of them (``Scenario(long_tail=...)``).
"""

from __future__ import annotations

import numpy as np

from shiftbench.datasets.digits import Digits
from shiftbench.seeding import generator
from shiftbench.validation import check_number


def long_tailed_subset(y: np.ndarray, imbalance_ratio: float, seed: int) -> np.ndarray:
    """Sorted indices of a long-tailed subsample of ``y`` (classes in index order, head first)."""
    rng = generator(seed, "long_tail_source")
    classes = np.unique(y)
    n_max = min(int((y == c).sum()) for c in classes)
    exponent = np.arange(len(classes)) / max(len(classes) - 1, 1)
    sizes = np.floor(n_max * float(imbalance_ratio) ** -exponent).astype(int).clip(min=1)
    picks = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, sizes)]
    return np.sort(np.concatenate(picks))


class DigitsLongTailed(Digits):
    """Digits with a long-tailed source: MNIST-5k train subsampled to an imbalance ratio (default 100)."""

    name = "digits_lt"

    def __init__(self, imbalance_ratio: float = 100.0, split_seed: int = 0, n_train: int = 3000,
                 n_val: int = 1000, n_test: int = 1000):
        check_number(imbalance_ratio, "imbalance_ratio", "dataset digits_lt", at_least=1)  # head size / tail size
        super().__init__(split_seed=split_seed, n_train=n_train, n_val=n_val, n_test=n_test)
        train = self.splits["train"]
        self.splits["train"] = train.subset(long_tailed_subset(train.y, imbalance_ratio, split_seed),
                                            tag=f"longtail{imbalance_ratio:g}")
