"""Blur corruptions: Gaussian, glass, defocus, motion and zoom blur (same calling convention as
:mod:`~shiftbench.corruptions.noise`)."""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import torch

from shiftbench.corruptions import ops

Rngs = Sequence[np.random.Generator]


def gaussian_blur(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """skimage ``gaussian(sigma)`` per channel, nearest-edge border."""
    (sigma,) = p
    return ops.gaussian_blur(x, sigma)


@numba.njit(cache=True)
def _shuffle_neighbours(images: np.ndarray, offsets: np.ndarray, delta: int) -> None:  # pragma: no cover - jitted
    """In place, per image: walk the pixels bottom-right to top-left and overwrite each with the
    neighbour at its (dx, dy) offset, once per iteration. This is what the ImageNet-C glass blur
    does: its "swap" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` assigns views of the pixel
    vectors, so the second assignment writes back the copied value and the pixel is duplicated."""
    n, h, w, _ = images.shape
    for i in range(n):
        for it in range(offsets.shape[1]):
            k = 0
            for row in range(h - delta, delta, -1):
                for col in range(w - delta, delta, -1):
                    r2 = row + offsets[i, it, k, 1]
                    c2 = col + offsets[i, it, k, 0]
                    for ch in range(images.shape[3]):
                        images[i, row, col, ch] = images[i, r2, c2, ch]
                    k += 1


def glass_blur(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Gaussian blur, truncate to 8 bits, locally shuffle pixels, blur again."""
    sigma, delta, iterations = p
    h, w = x.shape[-2:]
    blurred = torch.floor(ops.gaussian_blur(x, sigma).clamp(0, 1) * 255 + 1e-4)
    images = np.ascontiguousarray(blurred.permute(0, 2, 3, 1).numpy().astype(np.uint8))
    positions = max(h - 2 * delta, 0) * max(w - 2 * delta, 0)
    # offsets drawn like numpy's randint(-delta, delta): the upper end is excluded
    offsets = np.stack([r.integers(-delta, delta, size=(iterations, positions, 2), dtype=np.int8) for r in rngs])
    _shuffle_neighbours(images, offsets, delta)
    shuffled = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return ops.gaussian_blur(shuffled, sigma)


def defocus_blur(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Correlate with an anti-aliased disk (OpenCV ``filter2D``, reflect-101 border)."""
    radius, alias = p
    kernel = ops.disk_kernel(radius, alias)
    return ops.correlate_fft(ops.pad(x, kernel.shape[-1] // 2, "reflect101"), kernel)


def motion_blur(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """ImageMagick-style motion blur along a random angle in [-45, 45) degrees per image."""
    radius, sigma = p
    angles = np.array([r.uniform(-45, 45) for r in rngs])
    return ops.motion_blur(x * 255, radius, sigma, angles) / 255


def zoom_blur(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Average of the image and its centre zoomed by each factor."""
    factors, centre_trim = p
    x = x.contiguous(memory_format=torch.channels_last)  # torch's bilinear resize is 1.5x faster on it
    total = x.clone()
    for factor in factors:
        total += ops.clipped_zoom(x, float(factor), centre_trim)
    return total / (len(factors) + 1)
