"""Weather corruptions: snow, frost, fog and spatter (same calling convention as :mod:`~shiftbench.corruptions.noise`).

Frost blends in crops of the six frost photographs that the ``imagecorruptions`` package ships;
where that package is not installed, a procedural ice texture stands in (see
:func:`procedural_frost`), and results then differ from ImageNet-C's frost.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from shiftbench.corruptions import ops

Rngs = Sequence[np.random.Generator]

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


def snow(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Zoomed, thresholded Gaussian flakes, motion-blurred along a random angle, over a brightened image."""
    mean, std, zoom, threshold, radius, sigma, weight, centre_trim = p
    h, w = x.shape[-2:]
    flakes = ops.draw_normal(rngs, (1, h, w), mean, std)
    flakes = ops.clipped_zoom(flakes, zoom, centre_trim, trim=centre_trim)
    flakes = torch.where(flakes < threshold, torch.zeros_like(flakes), flakes).clamp(0, 1)
    angles = np.array([r.uniform(-135, -45) for r in rngs])
    flakes = ops.motion_blur(flakes, radius, sigma, angles)[..., :h, :w]
    flakes = torch.round(flakes * 255) / 255
    x = weight * x + (1 - weight) * torch.maximum(x, ops.luma(x) * 1.5 + 0.5)
    return x + flakes + torch.flip(flakes, dims=(-2, -1))


def frost(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Blend each image with a random crop of a randomly chosen frost texture."""
    image_weight, frost_weight, scale, mode, n_textures = p
    h, w = x.shape[-2:]
    crops = []
    for r in rngs:
        texture = scaled_frost(int(r.integers(n_textures)), scale, mode, h, w)
        top, left = int(r.integers(0, texture.shape[1] - h)), int(r.integers(0, texture.shape[2] - w))
        crops.append(texture[:, top:top + h, left:left + w])
    layer = torch.stack(crops)
    layer = ops.luma(layer, (0.2989, 0.587, 0.114)) if x.shape[1] == 1 else layer
    return image_weight * x + frost_weight * layer


@lru_cache(maxsize=64)
def scaled_frost(index: int, scale: float, mode: str, height: int, width: int) -> torch.Tensor:
    """Frost texture ``index`` (3, h, w) in [0, 1], resized by ``scale`` and at least 1.1x the image size."""
    texture = frost_textures()[index]
    th, tw = texture.shape[-2:]
    factor = max(scale, 1.1 * height / th, 1.1 * width / tw)
    size = (int(np.ceil(th * factor)), int(np.ceil(tw * factor)))
    resized = F.interpolate(texture[None] * 255, size=size, mode=mode, align_corners=False)[0]
    return resized.clamp(0, 255).round() / 255


@lru_cache(maxsize=1)
def frost_textures() -> tuple[torch.Tensor, ...]:
    """The six ImageNet-C frost photographs (3, h, w) in [0, 1] from the installed ``imagecorruptions``
    package, or procedural stand-ins when it is absent."""
    folder = imagecorruptions_frost_folder()
    if folder is None:
        return tuple(procedural_frost(i) for i in range(len(FROST_FILES)))
    from PIL import Image

    images = [np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.float32) / 255 for name in FROST_FILES]
    return tuple(torch.from_numpy(im).permute(2, 0, 1).contiguous() for im in images)


def imagecorruptions_frost_folder() -> Path | None:
    """Folder of the frost images inside the installed ``imagecorruptions`` package (without importing it)."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "frost"
    return folder if all((folder / name).exists() for name in FROST_FILES) else None


def procedural_frost(index: int, size: int = 512) -> torch.Tensor:
    """A deterministic ice-like texture (3, size, size): a plasma fractal for the frosted haze plus
    thin bright crystal streaks, tinted pale blue, with the mean brightness of the real frost photographs."""
    rng = np.random.default_rng(1000 + index)
    haze = ops.plasma_fractal(size, 1.6, [rng])
    seeds = torch.from_numpy((rng.random((1, 1, size, size)) < 0.004).astype(np.float32))
    streaks = sum(ops.motion_blur(seeds, 12, 6.0, np.array([rng.uniform(-90, 90)])) for _ in range(3))
    ice = (0.55 * haze[:, None] ** 1.5 + 4.0 * streaks).clamp(0, 1)[0]
    tint = torch.tensor([0.80, 0.88, 0.97]).view(3, 1, 1)
    return (0.15 + 0.85 * ice) * tint


def fog(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Add a plasma-fractal haze and rescale so the image's maximum keeps its share."""
    strength, decay = p
    h, w = x.shape[-2:]
    mapsize = 1 << (max(h, w) - 1).bit_length()
    haze = ops.plasma_fractal(mapsize, decay, rngs)[:, None, :h, :w]
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + strength * haze) * peak / (peak + strength)


WATER = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD = (63 / 255, 42 / 255, 20 / 255)


def spatter(x: torch.Tensor, p: tuple, rngs: Rngs) -> torch.Tensor:
    """Water drops (embossed liquid blobs) at low severities, mud splashes at high ones."""
    mean, std, sigma, threshold, intensity, mud = p
    h, w = x.shape[-2:]
    liquid = ops.gaussian_blur(ops.draw_normal(rngs, (h, w), mean, std), sigma)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mud:
        mask = ops.gaussian_blur((liquid > threshold).float(), intensity)
        mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask)[:, None]
        return x * (1 - mask) + mask * colour(MUD, x.shape[1])
    water = water_mask(liquid) * intensity * colour(WATER, 3)
    return x + water if x.shape[1] == 3 else x + ops.luma(water.clamp(0, 1), (0.2989, 0.587, 0.114))


def colour(rgb: tuple[float, float, float], channels: int) -> torch.Tensor:
    """A colour as a (1, C, 1, 1) tensor; its luma for grey images."""
    c = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)
    return c if channels == 3 else ops.luma(c)


EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)


def water_mask(liquid: torch.Tensor) -> torch.Tensor:
    """Drop shading (N, 1, H, W) in [0, 1]: distance to the blob edges (Canny), truncated at 20,
    equalised and embossed, times the liquid layer: the ImageNet-C spatter's OpenCV calls, per image."""
    import cv2

    layers = (liquid * 255).clamp(0, 255).to(torch.uint8).numpy()
    shading = np.empty(layers.shape, dtype=np.float32)
    for layer, out in zip(layers, shading):
        dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
        dist = cv2.blur(np.minimum(dist, 20), (3, 3)).astype(np.uint8)
        dist = cv2.filter2D(cv2.equalizeHist(dist), cv2.CV_8U, EMBOSS)
        np.multiply(layer, cv2.blur(dist, (3, 3)), out=out, dtype=np.float32)
    m = torch.from_numpy(shading)
    return (m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12))[:, None]
