"""LAME: Laplacian-regularised maximum-likelihood estimation of a batch's outputs (Boudiaf et al., CVPR 2022).

Output-only test-time adaptation: the network is untouched; each batch's class probabilities
``p`` are replaced by the assignment ``Y`` minimising

    E(Y) = sum_i KL(y_i || p_i) - sum_ij W_ij y_i . y_j

over the simplex, with ``W`` an affinity between the batch's L2-normalised features. The
bound-optimisation fixed point ``Y <- softmax(log p + W Y)`` is iterated from ``Y = p``
(up to the 1e-10 guard inside the log) until the relative change of the energy

    E = sum_ij [ -Y log(p + 1e-10) - Y (W Y_old) + Y log Y ]

falls to 1e-8 (checked from the third iteration on) or ``max_iter`` iterations have run, as in
the authors' code (fiveai/LAME). Affinities, all on L2-normalised features ``z``:

- ``knn``: ``W_ij = 1`` if ``j`` is one of the ``k`` nearest neighbours of ``i`` (itself
  excluded: the first of the ``k + 1`` smallest distances is dropped), else 0; not symmetrised.
- ``rbf``: ``exp(-|z_i - z_j|^2 / (2 sigma^2))`` with ``sigma`` the mean over ``i`` of the
  ``k``-th smallest distance from ``i`` (counting ``i`` itself, at distance 0).
- ``linear``: ``z_i . z_j``.

Pairwise distances come from one matrix product (``|a-b|^2 = 2 - 2 a.b`` for unit vectors), so
memory is O(N^2), not O(N^2 d).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from shiftbench.arrays import check_matrix, check_probs
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, OutputAdapter
from shiftbench.hyperparameters import Choice, Int
from shiftbench.validation import check_choice, check_int

LOG_EPS = 1e-10  # guard inside log(p), as in the authors' unary term
ENTROPY_CLIP = 1e-20  # clip inside Y log Y of the energy
REL_TOL = 1e-8  # stopping rule: |E - E_old| <= REL_TOL * |E_old|


def unit_distances(z: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between rows of ``z`` (rows of unit norm) through one Gram matrix."""
    gram = z @ z.T
    sq = (2.0 - 2.0 * gram).clamp_min(0.0)
    sq.fill_diagonal_(0.0)
    return sq.sqrt()


def knn_affinity(z: torch.Tensor, k: int) -> torch.Tensor:
    """0/1 matrix: row ``i`` marks the ``k`` nearest neighbours of ``i`` (excluding ``i``)."""
    n = z.shape[0]
    nearest = unit_distances(z).topk(min(k + 1, n), dim=1, largest=False).indices[:, 1:]
    return torch.zeros(n, n, dtype=z.dtype).scatter_(1, nearest, 1.0)


def rbf_affinity(z: torch.Tensor, k: int) -> torch.Tensor:
    """Gaussian kernel whose bandwidth is the mean distance to the ``k``-th closest point (self included)."""
    dist = unit_distances(z)
    sigma = dist.topk(min(k, z.shape[0]), dim=1, largest=False).values[:, -1].mean()
    if sigma == 0:
        raise ShiftbenchError("lame: the rbf bandwidth is 0: the k-th closest point to every row of feats (itself "
                              "included) is at distance 0 (a batch of one, or of identical feats); use knn or linear")
    return torch.exp(-dist.pow(2) / (2 * sigma ** 2))


def linear_affinity(z: torch.Tensor, k: int) -> torch.Tensor:
    """Cosine similarities (``k`` unused)."""
    return z @ z.T


AFFINITIES: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "knn": knn_affinity,
    "rbf": rbf_affinity,
    "linear": linear_affinity,
}


def laplacian_energy(y: torch.Tensor, unary: torch.Tensor, pairwise: torch.Tensor) -> float:
    """Energy of assignment ``y`` given ``unary = -log p`` and ``pairwise = W @ Y_previous``."""
    return float((y * unary - y * pairwise + y * torch.log(y.clamp_min(ENTROPY_CLIP))).sum())


def laplacian_optimization(unary: torch.Tensor, kernel: torch.Tensor, max_iter: int = 100) -> torch.Tensor:
    """Iterate ``Y <- softmax(-unary + kernel @ Y)`` from ``softmax(-unary)`` until the energy settles."""
    y = torch.softmax(-unary, dim=1)
    previous = float("inf")
    for i in range(max_iter):
        pairwise = kernel @ y
        y = torch.softmax(pairwise - unary, dim=1)
        energy = laplacian_energy(y, unary, pairwise)
        if i > 1 and abs(energy - previous) <= REL_TOL * abs(previous):
            break
        previous = energy
    return y


def check_hyperparameters(affinity: str, k: int, max_iter: int) -> None:
    """Raise a ShiftbenchError naming the first invalid LAME hyperparameter (shared by :func:`lame` and the plugin)."""
    check_choice(affinity, "affinity", "lame", AFFINITIES)
    check_int(k, "k", "lame")
    check_int(max_iter, "max_iter", "lame")
    if affinity == "rbf" and k < 2:
        raise ShiftbenchError("lame: the rbf affinity needs k >= 2: its bandwidth is the distance to the k-th closest "
                              "point counting the point itself, so k=1 gives sigma=0 (NaN in the authors' code)")


def lame(probs: Any, feats: Any, affinity: str = "knn", k: int = 5, max_iter: int = 100) -> np.ndarray:
    """LAME-adapted probabilities (N, K) of one batch from its softmax outputs and raw features."""
    check_hyperparameters(affinity, k, max_iter)
    p = check_probs(probs, "probs", min_rows=1)
    f = check_matrix(feats, "feats", n_rows=p.shape[0])
    dtype = torch.float64 if p.dtype == np.float64 else torch.float32
    p_t = torch.as_tensor(p, dtype=dtype)
    z = torch.nn.functional.normalize(torch.as_tensor(f, dtype=dtype), p=2, dim=1)
    kernel = AFFINITIES[affinity](z, int(k))
    return laplacian_optimization(-torch.log(p_t + LOG_EPS), kernel, max_iter).numpy()


class LAME(OutputAdapter):
    """LAME (Boudiaf et al. 2022): Laplacian-regularised correction of each batch's probabilities."""

    name = "lame"
    hyperparameters = {
        "affinity": Choice("knn", tuple(AFFINITIES), doc="how features are compared"),
        "k": Int(5, doc="neighbours (knn) or the bandwidth's neighbour rank (rbf)"),
        "max_iter": Int(100, doc="bound-optimisation iterations at most"),
    }
    #: the linear affinity ignores k, so it is not swept there
    grid = [{"affinity": ["knn", "rbf"], "k": [3, 5, 7]}, {"affinity": ["linear"]}]

    @classmethod
    def check_together(cls, values: dict) -> None:
        check_hyperparameters(values["affinity"], values["k"], values["max_iter"])

    def process(self, batch: Batch) -> np.ndarray:
        return lame(batch.probs, batch.feats, self.affinity, self.k, self.max_iter)
