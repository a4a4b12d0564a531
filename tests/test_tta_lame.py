"""LAME against a direct, loop-based re-implementation of the authors' procedure (fiveai/LAME)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shiftbench import methods
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch
from shiftbench.methods.lame import lame


def reference_lame(probs: np.ndarray, feats: np.ndarray, affinity: str, k: int, max_iter: int = 100) -> np.ndarray:
    """The published procedure written out plainly: pairwise difference tensor, loops, float64."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    x = torch.as_tensor(feats, dtype=torch.float64)
    z = x / x.norm(dim=1, keepdim=True)
    n = len(z)
    dist = torch.norm(z.unsqueeze(0) - z.unsqueeze(1), dim=-1)  # (N, N) from an (N, N, d) tensor
    if affinity == "knn":
        w = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            order = sorted(range(n), key=lambda j: (float(dist[i, j]), j != i))
            for j in order[1:min(k + 1, n)]:
                w[i, j] = 1.0
    elif affinity == "rbf":
        kth = [sorted(float(v) for v in dist[i])[min(k, n) - 1] for i in range(n)]
        sigma = sum(kth) / n
        w = torch.tensor([[math.exp(-float(dist[i, j]) ** 2 / (2 * sigma ** 2)) for j in range(n)] for i in range(n)],
                         dtype=torch.float64)
    else:
        w = torch.tensor([[float(z[i] @ z[j]) for j in range(n)] for i in range(n)], dtype=torch.float64)
    unary = -torch.log(p + 1e-10)
    y = torch.softmax(-unary, -1)
    old = float("inf")
    for i in range(max_iter):
        pairwise = w @ y
        y = torch.softmax(-unary + pairwise, -1)
        energy = float((unary * y - pairwise * y + y * torch.log(y.clip(1e-20))).sum())
        if i > 1 and abs(energy - old) <= 1e-8 * abs(old):
            break
        old = energy
    return y.numpy()


def clustered_batch(n: int = 40, k: int = 5, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features in ``k`` clusters and noisy source probabilities that half-agree with the clusters."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * 3
    feats = centres[labels] + rng.normal(size=(n, d))
    logits = rng.normal(size=(n, k)) * 1.5
    logits[np.arange(n), labels] += rng.normal(1.0, 1.0, n)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, feats


@pytest.mark.parametrize("affinity,k", [(a, k) for a in ("knn", "rbf", "linear") for k in (1, 2, 3, 5)
                                         if (a, k) != ("rbf", 1)])  # rbf k=1 gives sigma=0: rejected
def test_matches_reference_procedure(affinity, k):
    probs, feats = clustered_batch(seed=k)
    ours = lame(probs, feats, affinity=affinity, k=k)
    ref = reference_lame(probs, feats, affinity, k)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("affinity", ["knn", "rbf", "linear"])
def test_float32_inputs_agree_to_float32_precision(affinity):
    probs, feats = clustered_batch(n=64, seed=3)
    ours = lame(probs.astype(np.float32), feats.astype(np.float32), affinity=affinity)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_lame(probs, feats, affinity, 5), atol=1e-4)


@pytest.mark.parametrize("max_iter", [1, 2, 3, 7])
def test_iteration_budget_is_respected_like_reference(max_iter):
    probs, feats = clustered_batch(seed=11)
    np.testing.assert_allclose(lame(probs, feats, "rbf", 3, max_iter=max_iter),
                               reference_lame(probs, feats, "rbf", 3, max_iter), atol=1e-10)


def test_converged_output_is_the_fixed_point():
    probs, feats = clustered_batch(seed=5)
    y = lame(probs, feats, "knn", 5, max_iter=1000)
    z = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    w = np.zeros_like(d)
    for i, row in enumerate(np.argsort(d, axis=1)):
        w[i, row[1:6]] = 1.0
    a = np.log(probs + 1e-10) + w @ y
    fixed = np.exp(a - a.max(1, keepdims=True))
    fixed /= fixed.sum(1, keepdims=True)
    np.testing.assert_allclose(y, fixed, atol=1e-5)


def test_neighbours_pull_towards_cluster_consensus():
    """Points whose features sit in a cluster adopt the cluster's majority label (the method's purpose)."""
    probs, feats = clustered_batch(n=80, seed=7)
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 5, 80)  # same draw as clustered_batch
    before = (probs.argmax(1) == labels).mean()
    after = (lame(probs, feats, "knn", 5).argmax(1) == labels).mean()
    assert after > before


def test_rows_are_distributions_and_torch_inputs_accepted():
    probs, feats = clustered_batch(n=10)
    out = lame(torch.as_tensor(probs), torch.as_tensor(feats), "knn", k=50)  # k > N is clipped
    assert out.shape == probs.shape
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    probs, feats = clustered_batch(n=10)
    with pytest.raises(ShiftbenchError, match="valid: knn, rbf, linear"):
        lame(probs, feats, affinity="cosine")
    with pytest.raises(ShiftbenchError, match="rows"):
        lame(probs, feats[:5])
    with pytest.raises(ShiftbenchError, match="softmax"):
        lame(np.log(probs), feats)
    with pytest.raises(ShiftbenchError, match="k must be an integer >= 1"):
        lame(probs, feats, k=0)
    with pytest.raises(ShiftbenchError, match="rbf affinity needs k >= 2"):
        lame(probs, feats, affinity="rbf", k=1)


def test_plugin_wraps_function_with_its_hyperparameters():
    m = methods.load("lame", affinity="rbf", k=3)
    probs, feats = clustered_batch()
    np.testing.assert_array_equal(m.process(Batch.from_arrays(probs=probs, feats=feats)), lame(probs, feats, "rbf", 3))
    assert {k for sub in type(m).grid for k in sub} == {"affinity", "k"}
