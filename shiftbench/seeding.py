"""One random generator per purpose, all drawn from a cell's seed.

A cell's seed (``seed`` in a run config) drives every random choice of that cell, but each kind
of choice has its own generator, so that, e.g., the order of a stream does not change when a
method draws one more number, and the data split and the method's subset are not the same draws:

| purpose            | what it draws                                                        |
|--------------------|----------------------------------------------------------------------|
| ``data``           | a dataset's random sampling (its ``seed_option``: splits, subsets)   |
| ``model``          | a source model's training (initial weights, batch order)             |
| ``stream``         | the order of a scenario's target batches                             |
| ``label_shift``    | a Dirichlet target prior and the resample that realises it           |
| ``long_tail``      | a long-tailed resample of a target                                   |
| ``long_tail_source`` | the long-tailed subset of a source ``train`` split (``digits_lt``) |
| ``training``       | a method's own training loop (the label shift adapter's batches)     |
| ``method``         | a method's random state (``task.random_state``; subsets, folds,      |
|                    | classifiers) and the numpy / torch global generators a method may use |

``data`` and ``model`` hand the cell seed on unchanged (a dataset's seed option and a model's
training seed were the cell seed, or its default 0, before this module existed, so seed 0 keeps
its splits and its cached models). The other purposes mix the seed with a salt; the salts of
``stream``, ``label_shift``, ``long_tail``, ``long_tail_source`` and ``training`` are the ones
those generators had before, so their draws are unchanged. For example::

    order = generator(seed, "stream").permutation(n)
    classifier = LogisticRegression(random_state=int_seed(seed, "method"))
"""

from __future__ import annotations

import numpy as np

from shiftbench.errors import UnknownNameError

#: purpose -> salt mixed with the cell seed (``None``: the cell seed itself)
PURPOSES: dict[str, int | None] = {
    "data": None,
    "model": None,
    "stream": 17,
    "label_shift": 29,
    "long_tail": 31,
    "long_tail_source": 41,
    "training": 53,
    "method": 59,
}


def _salt(purpose: str) -> int | None:
    if purpose not in PURPOSES:
        raise UnknownNameError("seed purpose", purpose, list(PURPOSES))
    return PURPOSES[purpose]


def generator(seed: int, purpose: str) -> np.random.Generator:
    """A fresh numpy generator for ``purpose`` under the cell seed ``seed`` (same arguments, same draws)."""
    salt = _salt(purpose)
    return np.random.default_rng(int(seed) if salt is None else [int(seed), salt])


def int_seed(seed: int, purpose: str) -> int:
    """An int in [0, 2**31) for ``purpose`` under ``seed``, for libraries that take one
    (scikit-learn ``random_state``, ``torch.manual_seed``, a dataset's seed option)."""
    if _salt(purpose) is None:
        return int(seed)
    return int(generator(seed, purpose).integers(2 ** 31))


def seed_globals(seed: int) -> None:
    """Seed numpy's and torch's global generators for a method under the cell seed ``seed``."""
    import torch  # here, so that reading records and scenarios (``shiftbench table``) never imports torch

    state = int_seed(seed, "method")
    np.random.seed(state)
    torch.manual_seed(state)
