"""Digital corruptions: brightness, contrast, saturate, JPEG, pixelate and the elastic transform
(same calling convention as :mod:`~shiftbench.corruptions.noise`, except that JPEG and pixelate, marked
``on_levels``, take and return uint8 (N, H, W, C) arrays)."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numba
import numpy as np
import torch
import torch.nn.functional as F

from shiftbench.corruptions import ops

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


def on_levels(fn):
    """Mark a corruption without randomness that maps one uint8 (H, W, C) image to another
    (no float round trip; the caller writes each result straight into its output batch)."""
    fn.on_levels = True
    return fn


@on_levels
def jpeg_compression(image: np.ndarray, p: tuple) -> np.ndarray:
    """Encode one uint8 (H, W, C) image as a baseline JPEG at ``quality`` and decode it (a codec has no batch form).

    The reference's Pillow round trip, bit for bit, through the same libjpeg-turbo settings (IJG tables,
    4:2:0 chroma, integer DCT, fancy upsampling) with less around the codec: OpenCV encodes (BGR),
    simplejpeg's TurboJPEG decodes straight to RGB. A grey image is encoded as one channel: the
    reference's grey -> RGB -> JPEG -> grey trip gives the same levels, since grey RGB has exactly
    neutral chroma."""
    import cv2
    import simplejpeg

    (quality,) = p
    grey = image.shape[-1] == 1
    pixels = image[..., 0] if grey else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    decoded = simplejpeg.decode_jpeg(encoded.tobytes(), colorspace="GRAY" if grey else "RGB",
                                     fastdct=False, fastupsample=False)
    return decoded.reshape(image.shape)


@on_levels
def pixelate(image: np.ndarray, p: tuple) -> np.ndarray:
    """Pillow BOX downscale by ``factor``, then back up with NEAREST (imagecorruptions) or BOX (CIFAR-10-C).

    A compiled copy of Pillow's fixed-point BOX resampling, bit for bit: the horizontal pass, rounded to
    8 bits, then the vertical one. Both run as sums of whole rows (contiguous, so they vectorise): the
    horizontal pass on the transposed image, whose rows are the image's columns. Either upscale copies
    one small pixel per output pixel: whole rows are repeated, of the transposed small image, then of
    the image (OpenCV's transpose is a fast blocked copy)."""
    import cv2

    factor, upsample = p
    h, w, c = image.shape
    small_w, small_h = int(w * factor), int(h * factor)
    columns = cv2.transpose(image).reshape(w, h * c)  # row x holds column x
    narrow = np.empty((small_w, h * c), np.uint8)
    _box_sum_rows(columns, *pillow_box_runs(w, small_w), narrow)
    small = np.empty((small_h, small_w * c), np.uint8)
    _box_sum_rows(cv2.transpose(narrow.reshape(small_w, h, c)).reshape(h, small_w * c),
                  *pillow_box_runs(h, small_h), small)
    # the upscale repeats whole rows, of the transposed small image (its columns), then of the image
    small_columns = cv2.transpose(small.reshape(small_h, small_w, c)).reshape(small_w, small_h * c)
    stretched = small_columns[_upsample_index(small_w, w, upsample)].reshape(w, small_h, c)
    small_rows = cv2.transpose(stretched).reshape(small_h, w * c)
    return small_rows[_upsample_index(small_h, h, upsample)].reshape(image.shape)


PILLOW_PRECISION_BITS = 22  # Pillow's fixed-point coefficients for 8-bit images


@lru_cache(maxsize=64)
def pillow_box_runs(size: int, new_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's BOX resampling of ``size`` pixels to ``new_size``: for each output pixel the run
    [start, stop) of input pixels with weight 1 and their fixed-point coefficient (1 / run length)."""
    scale = size / new_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    starts, stops, coefs = [], [], []
    for out in range(new_size):
        centre = (out + 0.5) * scale
        first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size)
        inside = [x for x in range(first, last) if -0.5 < (x - centre + 0.5) * (1.0 / filterscale) <= 0.5]
        starts.append(inside[0])
        stops.append(inside[-1] + 1)  # the box is an interval: its pixels are consecutive
        coefs.append(int(0.5 + 1.0 / len(inside) * (1 << PILLOW_PRECISION_BITS)))
    return np.array(starts), np.array(stops), np.array(coefs)


@lru_cache(maxsize=64)
def _upsample_index(small: int, size: int, upsample: str) -> np.ndarray:
    """Which small pixel each of ``size`` output pixels copies: OpenCV's INTER_NEAREST_EXACT (Pillow's
    NEAREST) or Pillow's BOX upscale, whose box always holds exactly one input pixel."""
    import cv2

    if upsample == "box":
        return pillow_box_runs(small, size)[0]
    index = np.arange(small, dtype=np.float32)[None, :]
    return cv2.resize(index, (size, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0].astype(np.int64)


@numba.njit(cache=True)
def _box_sum_rows(src, start, stop, coef, dst):  # pragma: no cover - jitted
    """One of Pillow's fixed-point BOX passes along the first axis of a 2-D uint8 array:
    ``dst[r]`` is the rounded, clipped sum of ``src[start[r]:stop[r]]`` times ``coef[r]``."""
    n = src.shape[1]
    half = np.int32(1) << (PILLOW_PRECISION_BITS - 1)
    total = np.empty(n, np.int32)  # at most 255 * run * coef < 2^31: the coefficients are 2^22 / run
    for r in range(start.size):
        total[:] = 0
        for y in range(start[r], stop[r]):
            for f in range(n):
                total[f] += src[y, f]
        k = np.int32(coef[r])
        for f in range(n):
            level = (total[f] * k + half) >> PILLOW_PRECISION_BITS
            dst[r, f] = level if level < 255 else 255


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
