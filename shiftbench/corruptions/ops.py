"""Batched image operators shared by the corruptions: separable filters as small matrices,
FFT correlation, zooms, motion-blur kernels and the plasma fractal.

Images are float32 torch tensors (N, C, H, W); random draws come from one numpy Generator per
image, so each image's result does not depend on the batch it is in.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import numba
import numpy as np
import torch
import torch.nn.functional as F


UNIT_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255)  # level -> level / 255, correctly rounded


@numba.njit(cache=True)
def _deinterleave(levels: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - jitted
    n, h, w, c = levels.shape
    for i in range(n):
        for ch in range(c):
            for row in range(h):
                for col in range(w):
                    out[i, ch, row, col] = table[levels[i, row, col, ch]]


def levels_to_unit(levels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1] in one pass (torch's permute-and-cast
    leaves channels-last strides, on which per-channel broadcasting is 5x slower)."""
    n, h, w, c = levels.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    _deinterleave(levels, UNIT_LEVELS, out)
    return torch.from_numpy(out)


@numba.njit(cache=True)
def _truncate_to_levels(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - jitted
    flat, dst = x.reshape(-1), out.reshape(-1)
    for k in range(flat.size):
        v = min(max(flat[k] * np.float32(255), np.float32(0)), np.float32(255))
        dst[k] = np.uint8(np.int32(v + np.float32(1e-4)))


def unit_to_levels(x: torch.Tensor, out: np.ndarray) -> None:
    """Write float (N, C, H, W) in [0, 1] into uint8 ``out`` (N, H, W, C), truncating like
    ``np.uint8(x * 255)`` in the reference generators after clipping to [0, 255] (the epsilon absorbs
    float32 rounding just below an integer). Channels are interleaved by OpenCV's SIMD ``merge``."""
    import cv2

    planes = np.empty(x.shape, dtype=np.uint8)
    _truncate_to_levels(x.float().contiguous().numpy(), planes)
    if planes.shape[1] == 1:
        out[..., 0] = planes[:, 0]
        return
    for image, target in zip(planes, out):
        cv2.merge(list(image), dst=target)


def draw(rngs: Sequence[np.random.Generator], sample: Callable[[np.random.Generator], np.ndarray]) -> torch.Tensor:
    """Stack one draw per image (``sample(rng)``) into a tensor with a leading batch axis."""
    return torch.from_numpy(np.stack([sample(r) for r in rngs]))


def draw_normal(rngs: Sequence[np.random.Generator], shape: tuple[int, ...], mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """One N(mean, std^2) float32 field of ``shape`` per image, through a torch generator seeded from
    the image's own generator (torch's vectorised Box-Muller is 3.5x faster than numpy's float32 ziggurat)."""
    fields = torch.empty((len(rngs), *shape))
    for field, r in zip(fields, rngs):
        field.normal_(mean, std, generator=torch.Generator().manual_seed(int(r.integers(2 ** 63))))
    return fields


def fold_index(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map out-of-range indices into 0..n-1 the way scipy's boundary ``mode`` extends a signal."""
    if mode == "nearest":
        return np.clip(index, 0, n - 1)
    period = 2 * n if mode == "reflect" else max(2 * n - 2, 1)  # reflect: d c b a | a b c d; mirror: d c b | a b c d
    index = np.mod(index, period)
    top = period - 1 if mode == "reflect" else period
    return np.where(index >= n, top - index, index)


@lru_cache(maxsize=256)
def gaussian_operator(n: int, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """(n, n) matrix applying scipy's ``gaussian_filter1d`` (sigma, truncate, boundary mode)."""
    if sigma <= 0:
        return torch.eye(n)
    radius = int(truncate * float(sigma) + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    rows = np.repeat(np.arange(n), len(taps))
    cols = fold_index(rows + np.tile(taps, n), n, mode)
    op = np.zeros((n, n))
    np.add.at(op, (rows, cols), np.tile(weights, n))
    return torch.from_numpy(op.astype(np.float32))


def separable(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Apply ``rows`` (H', H) along the height and ``cols`` (W', W) along the width of (..., H, W)."""
    return torch.matmul(rows, torch.matmul(x, cols.T))


def gaussian_blur(x: torch.Tensor, sigma: float | tuple[float, float], mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian over the last two axes (per channel), as one matrix product each way."""
    sy, sx = sigma if isinstance(sigma, tuple) else (sigma, sigma)
    h, w = x.shape[-2:]
    return separable(x, gaussian_operator(h, float(sy), mode, truncate), gaussian_operator(w, float(sx), mode, truncate))


def fast_fft_size(n: int) -> int:
    """The smallest 5-smooth integer >= n (FFT lengths with only factors 2, 3, 5 are fastest)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def correlate_fft(padded: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid 2-D correlation of (N, C, Hp, Wp) with a (K, K) kernel or one (N, K, K) kernel per image."""
    hp, wp = padded.shape[-2:]
    k = kernel.shape[-1]
    kernel = kernel.reshape(-1, 1, k, k) if kernel.dim() == 3 else kernel
    size = (fast_fft_size(hp), fast_fft_size(wp))
    spectrum = torch.fft.rfft2(padded.float(), s=size) * torch.fft.rfft2(kernel.float(), s=size).conj()
    out = torch.fft.irfft2(spectrum, s=size)
    return out[..., : hp - k + 1, : wp - k + 1]


def pad(x: torch.Tensor, amount: int, mode: str) -> torch.Tensor:
    """Pad the last two axes by ``amount``: ``reflect101`` (OpenCV's default border) or ``edge``."""
    if amount == 0:
        return x
    if mode == "edge":
        return F.pad(x, (amount,) * 4, mode="replicate")
    h, w = x.shape[-2:]
    if amount < min(h, w):  # torch's "reflect" omits the edge pixel, like reflect-101 (10x faster than indexing)
        return F.pad(x, (amount,) * 4, mode="reflect")
    index_h = torch.from_numpy(fold_index(np.arange(-amount, h + amount), h, "mirror"))
    index_w = torch.from_numpy(fold_index(np.arange(-amount, w + amount), w, "mirror"))
    return x[..., index_h[:, None], index_w[None, :]]


def gaussian_kernel_opencv(ksize: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(ksize, sigma) for sigma > 0."""
    taps = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(taps ** 2) / (2 * sigma ** 2))
    return k / k.sum()


@lru_cache(maxsize=32)
def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """Normalised disk of ``radius``, anti-aliased by a small Gaussian (as the ImageNet-C generator builds it)."""
    half = 8 if radius <= 8 else int(radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    disk = ((grid[None, :] ** 2 + grid[:, None] ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    g = gaussian_kernel_opencv(ksize, alias_blur)
    # cv2.GaussianBlur on the kernel image: separable, OpenCV's reflect-101 border
    index = fold_index(np.arange(-(ksize // 2), len(grid) + ksize // 2), len(grid), "mirror")
    padded = disk[np.ix_(index, index)]
    rows = sum(g[i] * padded[i:i + len(grid)] for i in range(ksize))
    smooth = sum(g[i] * rows[:, i:i + len(grid)] for i in range(ksize))
    return torch.from_numpy(smooth)


def motion_offsets(radius: int, sigma: float, angle: float, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights and (dy, dx) pixel offsets of ImageMagick's one-sided motion blur along ``angle`` degrees.

    The taps stop where the motion leaves the image (as imagecorruptions does); weights are not renormalised.
    """
    width_k = 2 * radius + 1
    weights = np.exp(-(np.arange(width_k) ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    py, px = width_k * math.sin(math.radians(angle)), width_k * math.cos(math.radians(angle))
    hyp = math.hypot(py, px)
    steps = np.arange(width_k)
    dy = -np.ceil(steps * py / hyp - 0.5).astype(np.int64)
    dx = -np.ceil(steps * px / hyp - 0.5).astype(np.int64)
    outside = (np.abs(dy) >= height) | (np.abs(dx) >= width)
    keep = np.arange(width_k) < (np.argmax(outside) if outside.any() else width_k)
    return weights[keep], dy[keep], dx[keep]


def motion_blur(x: torch.Tensor, radius: int, sigma: float, angles: np.ndarray) -> torch.Tensor:
    """Motion-blur each image of (N, C, H, W) along its own angle; borders repeat the edge pixels."""
    h, w = x.shape[-2:]
    taps = [motion_offsets(radius, sigma, a, h, w) for a in angles]
    # the padding depends only on the parameters and the image size, never on the batch, so that each
    # image's result is the same alone or in any batch
    reach = min(2 * radius + 1, max(h, w) - 1)
    size = 2 * reach + 1
    kernels = np.zeros((len(angles), size, size))
    for i, (weights, dy, dx) in enumerate(taps):
        # shifted[i, j] = x[i - dy, j - dx], so the correlation tap sits at (reach - dy, reach - dx)
        np.add.at(kernels[i], (reach - dy, reach - dx), weights)
    return correlate_fft(pad(x, reach, "edge"), torch.from_numpy(kernels))


def clipped_zoom(x: torch.Tensor, factor: float, centre_trim: bool, trim: bool = True) -> torch.Tensor:
    """Crop the centre 1/factor of (N, C, H, W) and zoom it back up by ``factor`` (scipy ``zoom``,
    order 1), then keep H x W from the top-left corner or the centre."""
    h, w = x.shape[-2:]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    size = (int(round(ch * factor)), int(round(cw * factor)))
    zoomed = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)
    if not trim:
        return zoomed
    ty, tx = ((size[0] - h) // 2, (size[1] - w) // 2) if centre_trim else (0, 0)
    return zoomed[..., ty:ty + h, tx:tx + w]


def plasma_fractal(mapsize: int, decay: float, rngs: Sequence[np.random.Generator]) -> torch.Tensor:
    """Diamond-square height maps (N, mapsize, mapsize) in [0, 1], one per generator (the ImageNet-C fog):
    each new point is the mean of its four (wrapping) neighbours plus uniform noise of +-wibble^2,
    with wibble starting at 100 and divided by ``decay`` at every halving of the step."""
    maps = np.zeros((len(rngs), mapsize, mapsize), dtype=np.float32)
    uniforms = np.stack([r.random(mapsize * mapsize, dtype=np.float32) for r in rngs])
    _diamond_square(maps, uniforms, float(decay))
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return torch.from_numpy(maps / maps.max(axis=(1, 2), keepdims=True))


@numba.njit(cache=True)
def _diamond_square(maps: np.ndarray, uniforms: np.ndarray, decay: float) -> None:  # pragma: no cover - jitted
    """Fill zero maps (N, m, m) in place; ``uniforms`` (N, >= m * m - 1) in [0, 1) are used in order."""
    n, m, _ = maps.shape
    for i in range(n):
        step, wibble, u = m, 100.0, 0
        while step >= 2:
            half, amp = step // 2, np.float32(wibble * wibble)
            for y in range(0, m, step):  # squares: centre from the four corners
                for x in range(0, m, step):
                    y2, x2 = (y + step) % m, (x + step) % m
                    total = (maps[i, y, x] + maps[i, y2, x]) + (maps[i, y, x2] + maps[i, y2, x2])
                    maps[i, y + half, x + half] = total / 4 + amp * (uniforms[i, u] * 2 - 1)
                    u += 1
            for y in range(0, m, step):  # diamonds on the square rows: centres above and below, corners left and right
                for x in range(0, m, step):
                    total = maps[i, y + half, x + half] + maps[i, (y - half) % m, x + half] + maps[i, y, x] + maps[i, y, (x + step) % m]
                    maps[i, y, x + half] = total / 4 + amp * (uniforms[i, u] * 2 - 1)
                    u += 1
            for y in range(0, m, step):  # diamonds on the centre rows: centres left and right, corners above and below
                for x in range(0, m, step):
                    total = maps[i, y + half, x + half] + maps[i, y + half, (x - half) % m] + maps[i, y, x] + maps[i, (y + step) % m, x]
                    maps[i, y + half, x] = total / 4 + amp * (uniforms[i, u] * 2 - 1)
                    u += 1
            step //= 2
            wibble /= decay


def luma(x: torch.Tensor, weights: tuple[float, float, float] = (0.299, 0.587, 0.114)) -> torch.Tensor:
    """Grey level (N, 1, H, W) of RGB (N, 3, H, W); a grey image is returned as it is."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(weights, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)
