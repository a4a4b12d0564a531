"""Digital corruptions: brightness, contrast, saturate, JPEG, pixelate and the elastic transform
(same calling convention as ``_corruption_noise``, except that JPEG and pixelate, marked
``on_levels``, take and return uint8 (N, H, W, C) arrays)."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from shiftbench.datasets import _corruption_ops as ops

Rngs = Sequence[np.random.Generator]


def brightness(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Add ``shift`` to the HSV value (clipped at 1), keeping hue and saturation."""
    (shift,) = p
    value = x.amax(dim=1, keepdim=True)
    brighter = (value + shift).clamp(max=1)
    # with hue and saturation fixed every RGB channel is proportional to the value
    return torch.where(value > 0, x * brighter / value.clamp_min(1e-12), brighter)


def contrast(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Pull every channel towards its image mean by the factor ``c``."""
    (c,) = p
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * c + means


def saturate(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Scale and shift the HSV saturation (clipped to [0, 1]), keeping hue and value."""
    scale, shift = p
    value, low = x.amax(dim=1, keepdim=True), x.amin(dim=1, keepdim=True)
    spread = value - low
    sat = torch.where(value > 0, spread / value.clamp_min(1e-12), torch.zeros_like(value))
    new_sat = (sat * scale + shift).clamp(0, 1)
    # each channel is value * (1 - sat * g) with g depending on the hue only; grey pixels have hue 0 (red)
    grey_hue = torch.tensor([0.0, 1.0, 1.0][: x.shape[1]]).view(1, -1, 1, 1)
    g = torch.where(spread > 0, (value - x) / spread.clamp_min(1e-12), grey_hue)
    return value * (1 - new_sat * g)


PIL_FILTERS = {"nearest": 0, "box": 4}  # PIL.Image.NEAREST, PIL.Image.BOX


def on_levels(fn):
    """Mark a corruption that takes and returns uint8 images (N, H, W, C) as numpy arrays (no float round trip)."""
    fn.on_levels = True
    return fn


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one uint8 (H, W, C) image as a JPEG with Pillow and decode it (grey via RGB, as the reference)."""
    from PIL import Image

    grey = image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0]).convert("RGB") if grey else Image.fromarray(image)
    buffer = io.BytesIO()
    pil.save(buffer, "JPEG", quality=quality)
    decoded = Image.open(buffer)
    return np.asarray(decoded.convert("L") if grey else decoded).reshape(image.shape)


@on_levels
def jpeg_compression(levels: np.ndarray, p: tuple, rngs: Rngs) -> np.ndarray:
    """JPEG at ``quality``, one image at a time (a codec has no batch form)."""
    (quality,) = p
    return np.stack([jpeg_roundtrip(im, quality) for im in levels])


def pixelate_one(image: np.ndarray, factor: float, upsample: str) -> np.ndarray:
    """Pillow BOX downscale of one uint8 (H, W, C) image by ``factor``, then back up with ``upsample``."""
    from PIL import Image

    h, w = image.shape[:2]
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    small = pil.resize((int(w * factor), int(h * factor)), Image.BOX)
    return np.asarray(small.resize((w, h), PIL_FILTERS[upsample])).reshape(image.shape)


@on_levels
def pixelate(levels: np.ndarray, p: tuple, rngs: Rngs) -> np.ndarray:
    """Pillow BOX downscale by ``factor``, then back up with NEAREST (imagecorruptions) or BOX (CIFAR-10-C).

    Per image through Pillow itself: its resampling loop is already tight C code, so a batched
    re-implementation (tried: fixed-point matrix passes) was no faster at 32 px and slower at 224 px."""
    factor, upsample = p
    return np.stack([pixelate_one(im, factor, upsample) for im in levels])


def elastic_transform(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Random affine jitter of three anchor points (CIFAR-10-C only), then a smooth random
    displacement field: uniform(-1, 1) noise blurred by sigma_frac * size, times amplitude_frac * height."""
    amplitude, sigma, jitter = p
    h, w = x.shape[-2:]
    if jitter > 0:
        x = random_affine(x, jitter * min(h, w), rngs)
    noise = ops.draw(rngs, lambda r: r.uniform(-1, 1, size=(2, h, w))).float()
    field = ops.gaussian_blur(noise, (sigma * h, sigma * w), mode="reflect", truncate=3.0) * (amplitude * h)
    rows = torch.arange(h, dtype=torch.float32).view(1, h, 1) + field[:, 1]
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, w) + field[:, 0]
    # half-sample symmetric border (scipy's "reflect") is grid_sample's reflection without corner alignment
    grid = torch.stack([(2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_affine(x: torch.Tensor, jitter: float, rngs: Rngs) -> torch.Tensor:
    """make_cifar_c's affine warp: move three anchor points by uniform(-jitter, jitter) each and warp
    the image accordingly (bilinear, reflect-101 border)."""
    h, w = x.shape[-2:]
    cx, cy, half = w // 2, h // 2, min(h, w) // 3
    src = np.array([[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]], dtype=np.float64)
    dst = np.stack([src + r.uniform(-jitter, jitter, size=(3, 2)) for r in rngs])
    ones = np.ones((3, 1))
    # M maps source to destination points; each output pixel samples the source at M^-1(pixel)
    forward = np.stack([np.linalg.solve(np.hstack([src, ones]), d) for d in dst])  # (N, 3, 2): [x y 1] @ M
    a, t = forward[:, :2, :], forward[:, 2, :]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pixels = np.stack([xs, ys], axis=-1)[None] - t[:, None, None, :]
    source = np.einsum("nhwj,nji->nhwi", pixels, np.linalg.inv(a))  # (pixel - t) @ B^-1
    grid = torch.from_numpy(np.stack([2 * source[..., 0] / (w - 1) - 1, 2 * source[..., 1] / (h - 1) - 1], axis=-1)).float()
    # reflection with corner alignment reflects about the edge pixels: OpenCV's reflect-101
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
