"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Each function takes images (N, C, H, W) float32 in [0, 1], the severity's parameters and one
numpy Generator per image, and returns the corrupted images in [0, 1] (before clipping).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numba
import numpy as np
import torch
from scipy.special import pdtr

from shiftbench.corruptions import ops

Rngs = Sequence[np.random.Generator]


def gaussian_noise(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Add N(0, scale^2) noise to every pixel and channel."""
    (scale,) = p
    return ops.draw_normal(rngs, x.shape[1:], std=scale).add_(x)


def speckle_noise(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Multiplicative noise: x + x * N(0, scale^2)."""
    (scale,) = p
    return ops.draw_normal(rngs, x.shape[1:], std=scale).mul_(x).add_(x)  # in place: no temporaries


def impulse_noise(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Salt and pepper (skimage ``random_noise(mode="s&p")``): each value becomes 0 or 1 with probability amount."""
    (amount,) = p
    u = ops.draw(rngs, lambda r: r.random(x.shape[1:], dtype=np.float32)).numpy()
    out = np.empty(x.shape, dtype=np.float32)
    _salt_and_pepper(x.contiguous().numpy(), u, np.float32(amount), out)
    return torch.from_numpy(out)


@numba.njit(cache=True)
def _salt_and_pepper(x: np.ndarray, u: np.ndarray, amount: np.float32, out: np.ndarray) -> None:  # pragma: no cover - jitted
    """out = 1 where u < amount / 2, 0 where amount / 2 <= u < amount, else x (one pass)."""
    flat_x, flat_u, flat_out = x.reshape(-1), u.reshape(-1), out.reshape(-1)
    half = amount / np.float32(2)
    for k in range(flat_x.size):
        v = flat_u[k]
        flat_out[k] = np.float32(1) if v < half else (np.float32(0) if v < amount else flat_x[k])


QUANTILE_BUCKETS = 4096


@lru_cache(maxsize=32)
def _poisson_tables(photons: float) -> tuple[np.ndarray, np.ndarray, int]:
    """CDF of Poisson(level / 255 * photons) for each 8-bit level (256, K), flattened with the
    level added (so one sorted array holds all rows), and the inverse CDF at bucket edges j / Q."""
    rate = np.arange(256) / 255.0 * photons
    k_max = int(photons + 12 * np.sqrt(photons) + 30)
    cdf = pdtr(np.arange(k_max)[None, :], rate[:, None])
    cdf[:, -1] = 1.0
    edges = np.arange(QUANTILE_BUCKETS + 1) / QUANTILE_BUCKETS
    inverse = np.stack([np.searchsorted(row, edges, side="left") for row in cdf]).clip(max=k_max - 1)
    return (cdf + np.arange(256)[:, None]).ravel(), inverse.astype(np.int32), k_max


def shot_noise(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Poisson(x * photons) / photons, sampled exactly by inverting the CDF of each 8-bit level."""
    (photons,) = p
    flat_cdf, inverse, k_max = _poisson_tables(float(photons))
    u = ops.draw(rngs, lambda r: r.random(x.shape[1:])).numpy()
    out = np.empty(x.shape, dtype=np.float32)
    _invert_poisson(x.contiguous().numpy(), u, flat_cdf, inverse, k_max, np.float32(photons), out)
    return torch.from_numpy(out)


@numba.njit(cache=True)
def _invert_poisson(x: np.ndarray, u: np.ndarray, flat_cdf: np.ndarray, inverse: np.ndarray, k_max: int,
                    photons: np.float32, out: np.ndarray) -> None:  # pragma: no cover - jitted
    """out = (smallest count k with CDF_level(k) >= u) / photons, one pass: the bucket of u bounds k
    by the inverse-CDF table; where the bound is not tight, binary search the level's row of the
    flattened CDF (compared as u + level against CDF + level, the rounding of a global search)."""
    flat_x, flat_u, flat_out = x.reshape(-1), u.reshape(-1), out.reshape(-1)
    for k in range(flat_x.size):
        level = np.int64(np.rint(flat_x[k] * np.float32(255)))
        v = flat_u[k]
        bucket = np.int64(v * QUANTILE_BUCKETS)
        lo, hi = inverse[level, bucket], inverse[level, bucket + 1]
        count = lo
        if lo != hi:
            target = v + level
            left, right = level * k_max, (level + 1) * k_max
            while left < right:
                mid = (left + right) // 2
                if flat_cdf[mid] < target:
                    left = mid + 1
                else:
                    right = mid
            count = min(max(left - level * k_max, lo), hi)
        flat_out[k] = np.float32(count) / photons
