"""Image corruptions of Hendrycks & Dietterich (2019), ImageNet-C / CIFAR-10-C style.

``corrupt(images, name, severity, preset="imagenet", seed=0)`` takes uint8 images (H,W,C),
(H,W) or a batch (N,H,W[,C]) and returns uint8 images of the same shape.
"""

from __future__ import annotations

import numpy as np

from shiftbench.errors import ShiftbenchError

# Severity constants per preset, from the original generators.
_CONSTANTS: dict[str, dict[str, tuple]] = {
    "imagenet": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot_noise": (60, 25, 12, 5, 3),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    },
    "cifar": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    },
}


def _rgb_to_hsv_v_shift(x: np.ndarray, c: float) -> np.ndarray:
    # brightness adds c to the HSV value channel; for grey images that is the pixel value itself
    if x.shape[-1] == 1:
        return np.clip(x + c, 0, 1)
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return hsv2rgb(hsv)


def corrupt(images: np.ndarray, name: str, severity: int, preset: str = "imagenet", seed: int = 0) -> np.ndarray:
    """Corrupt uint8 images with corruption ``name`` at ``severity`` (1..5); deterministic per image and seed."""
    images = np.asarray(images)
    if preset not in _CONSTANTS:
        raise ShiftbenchError(f"unknown preset {preset!r}; valid presets: {', '.join(_CONSTANTS)}")
    valid = _CONSTANTS[preset]
    if name not in valid:
        raise ShiftbenchError(f"unknown corruption {name!r}; valid corruptions: {', '.join(sorted(valid))}")
    if severity not in (1, 2, 3, 4, 5):
        raise ShiftbenchError(f"severity must be an integer 1..5; got {severity!r}")
    if images.dtype != np.uint8:
        raise ShiftbenchError(f"images must be uint8 (0..255); got dtype {images.dtype}")
    single = images.ndim in (2, 3) and not (images.ndim == 3 and images.shape[-1] not in (1, 3))
    batch = images[None] if single else images
    squeeze_channel = batch.ndim == 3
    if squeeze_channel:
        batch = batch[..., None]
    c = valid[name][severity - 1]
    x = batch.astype(np.float64) / 255.0
    out = np.empty_like(x)
    for i in range(len(x)):
        rng = np.random.default_rng([seed, i])
        out[i] = _apply(name, x[i], c, rng)
    out = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    if squeeze_channel:
        out = out[..., 0]
    return out[0] if single else out


def _apply(name: str, x: np.ndarray, c, rng: np.random.Generator) -> np.ndarray:
    if name == "gaussian_noise":
        return x + rng.normal(size=x.shape, scale=c)
    if name == "shot_noise":
        return rng.poisson(x * c) / c
    if name == "brightness":
        return _rgb_to_hsv_v_shift(x, c)
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means
