"""Severity constants of the 19 corruptions, per preset, as the original generators use them.

``imagenet``: the constants of the maintained ``imagecorruptions`` package (Michaelis et al.,
ImageNet-C constants made size independent). ``cifar``: the CIFAR-10-C constants of Hendrycks'
``make_cifar_c.py``. Each entry is a tuple of five parameter tuples, one per severity 1..5, in
the order the corruption function in the corruption modules unpacks them. Where a preset's
generator differs in more than its numbers (zoom trimming, pixelate upsampling filter, frost
texture scale), the difference is a parameter here too, so one function serves both presets.
"""

from __future__ import annotations

import numpy as np

ZOOM_TRIM_CORNER = False  # imagecorruptions keeps the top-left H x W of a zoomed image
ZOOM_TRIM_CENTRE = True   # make_cifar_c trims symmetrically


def _each(values, *extra) -> tuple[tuple, ...]:
    """One parameter tuple per severity: the severity's value(s) followed by ``extra``."""
    return tuple((*(v if isinstance(v, tuple) else (v,)), *extra) for v in values)


IMAGENET: dict[str, tuple[tuple, ...]] = {
    "gaussian_noise": _each((0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": _each((60, 25, 12, 5, 3)),
    "impulse_noise": _each((0.03, 0.06, 0.09, 0.17, 0.27)),
    "speckle_noise": _each((0.15, 0.2, 0.35, 0.45, 0.6)),
    "gaussian_blur": _each((1, 2, 3, 4, 6)),
    # (sigma, max pixel displacement, iterations)
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    # (disk radius, anti-alias sigma)
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    # (radius, sigma) of ImageMagick's motion blur
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": _each((np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
                        np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)), ZOOM_TRIM_CORNER),
    # (mean, std, zoom, threshold, blur radius, blur sigma, image weight, zoom trim)
    "snow": _each(((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                   (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                   (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)), ZOOM_TRIM_CORNER),
    # (image weight, frost weight, texture scale, resize mode, number of textures drawn from)
    "frost": _each(((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)), 1.1, "bicubic", 6),
    # (fog strength, fractal wibble decay)
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
    # (mean, std, blur sigma, threshold, intensity, mud?)
    "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
    "brightness": _each((0.1, 0.2, 0.3, 0.4, 0.5)),
    "contrast": _each((0.4, 0.3, 0.2, 0.1, 0.05)),
    # (saturation scale, saturation shift)
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    "jpeg_compression": _each((25, 18, 15, 10, 7)),
    # (downscale factor, upsampling filter)
    "pixelate": _each((0.6, 0.5, 0.4, 0.3, 0.25), "nearest"),
    # displacement field: uniform(-1, 1) smoothed by a Gaussian of sigma_frac * size, times
    # amplitude_frac * height (imagecorruptions: amplitude 0.005 * height * alpha, sigma 0.01 * size);
    # (amplitude_frac, sigma_frac, affine jitter_frac): imagecorruptions has no affine part
    "elastic_transform": tuple((0.005 * a, 0.01, 0.0) for a in (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)),
}

CIFAR: dict[str, tuple[tuple, ...]] = {
    "gaussian_noise": _each((0.04, 0.06, 0.08, 0.09, 0.10)),
    "shot_noise": _each((500, 250, 100, 75, 50)),
    "impulse_noise": _each((0.01, 0.02, 0.03, 0.05, 0.07)),
    "speckle_noise": _each((0.06, 0.1, 0.12, 0.16, 0.2)),
    "gaussian_blur": _each((0.4, 0.6, 0.7, 0.8, 1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": _each((np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                        np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)), ZOOM_TRIM_CENTRE),
    "snow": _each(((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                   (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                   (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)), ZOOM_TRIM_CENTRE),
    # make_cifar_c scales the frost photographs by 0.2 (bilinear) and draws from the first five
    "frost": _each(((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)), 0.2, "bilinear", 5),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    "brightness": _each((0.05, 0.1, 0.15, 0.2, 0.3)),
    "contrast": _each((0.75, 0.5, 0.4, 0.3, 0.15)),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "jpeg_compression": _each((80, 65, 58, 50, 40)),
    "pixelate": _each((0.95, 0.9, 0.85, 0.75, 0.65), "box"),
    # make_cifar_c at 32 px: (alpha, sigma, affine jitter) = 32 * (a, s, f), so a field uniform(-1, 1)
    # smoothed by sigma, times alpha; relative to the image size here
    "elastic_transform": ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
}
