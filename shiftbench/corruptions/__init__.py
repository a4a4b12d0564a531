"""Image corruptions of Hendrycks & Dietterich (2019): the 15 ImageNet-C corruptions and the 4
extra ones, severities 1..5, batched and deterministic per image.

``corrupt(images, name, severity, preset="imagenet", seed=0)`` takes uint8 images (H, W, C),
(H, W) or a batch (N, H, W[, C]) with C in {1, 3}, at least 32 x 32 pixels, and returns uint8
images of the same shape. Presets: ``imagenet`` (the constants and procedures of the maintained
``imagecorruptions`` package, any size) and ``cifar`` (the CIFAR-10-C constants of
``make_cifar_c.py``). Like the reference generators, float results are truncated to 8 bits.

Randomness is drawn per image from a Philox generator keyed by a hash of (seed, corruption name,
image bytes), so an
image corrupted alone or inside any batch gives the same output; severities of one corruption
share their random draws (common random numbers), so a severity ladder is monotone in effect.
Grey images are corrupted as one channel, following the reference's grey-image branches.

Known departures from the reference generators (random corruptions only; their statistics are
tested against ``imagecorruptions``): make_cifar_c's motion blur and snow call ImageMagick, whose
kernel ``imagecorruptions`` reimplements and which is used here for both presets; frost needs the frost
photographs shipped inside ``imagecorruptions`` and falls back to a procedural texture when that
package is absent. Images smaller than 32 px: pad them (:func:`pad_to_min_size`), as
:func:`shiftbench.corruptions.splits.corrupted_split` does for MNIST.

A core transform package: the scenarios' ``corruption`` option and the ``<base>-c`` datasets corrupt
splits through :mod:`~shiftbench.corruptions.splits`; the corruptions themselves are in ``noise``,
``blur``, ``weather`` and ``digital`` (batched operators in ``ops``, severity constants in ``params``).
``shiftbench.datasets.corruptions`` re-exports this API under its documented name.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from numpy.random.bit_generator import ISeedSequence

from shiftbench.corruptions import blur, digital, noise, ops, params, weather
from shiftbench.errors import ShiftbenchError
from shiftbench.threads import torch_threads
from shiftbench.validation import check_int

__all__ = ["BENCHMARK_CORRUPTIONS", "CORRUPTIONS", "EXTRA_CORRUPTIONS", "MIN_SIZE", "PRESETS", "SEVERITIES",
           "code_fingerprint", "corrupt", "pad_to_min_size"]

Corruption = Callable[[torch.Tensor, tuple, Sequence[np.random.Generator]], torch.Tensor]

#: name -> function(images (N, C, H, W) in [0, 1], severity parameters, one Generator per image);
#: functions marked ``on_levels`` map one uint8 (H, W, C) image and the parameters to another instead
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": weather.spatter,
    "saturate": digital.saturate,
}
#: the 15 benchmark corruptions of ImageNet-C / CIFAR-10-C, then the 4 extra (validation) ones
BENCHMARK_CORRUPTIONS = tuple(CORRUPTIONS)[:15]
EXTRA_CORRUPTIONS = tuple(CORRUPTIONS)[15:]
PRESETS: dict[str, dict[str, tuple[tuple, ...]]] = {"imagenet": params.IMAGENET, "cifar": params.CIFAR}
SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIZE = 32
#: images per chunk are bounded so that a float32 copy of a chunk (about 1 MB) stays in cache:
#: measured 1.5-3x faster per image at 224 px than 32 MB chunks; at 32 px a chunk still holds 85 images
CHUNK_VALUES = 1 << 18


def corrupt(images: np.ndarray, name: str, severity: int, preset: str = "imagenet", seed: int = 0) -> np.ndarray:
    """Corrupt uint8 images with corruption ``name`` at ``severity`` (1..5); deterministic per image and seed."""
    images = _check(images, name, severity, preset, seed)
    single = images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3))
    batch = images[None] if single else images
    grey = batch.ndim == 3
    batch = batch[..., None] if grey else batch
    _check_shape(batch)
    out = np.empty(batch.shape, dtype=np.uint8)  # C-contiguous: unit_to_levels writes its images in place
    per_chunk = max(1, CHUNK_VALUES // int(np.prod(batch.shape[1:])))
    with single_threaded():
        for start in range(0, len(batch), per_chunk):
            chunk = slice(start, start + per_chunk)
            _corrupt_chunk(batch[chunk], out[chunk], name, PRESETS[preset][name][severity - 1], seed)
    out = out[..., 0] if grey else out
    return out[0] if single else out


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch and OpenCV ops on one thread: chunks are cache-sized, so intra-op threads only add
    overhead (and spin badly on a loaded machine: 1000 MNIST images x 19 x 5 took 75 s with 2 threads, 17 s with 1)."""
    import cv2

    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with torch_threads(1):
            yield
    finally:
        cv2.setNumThreads(cv2_threads)


def _corrupt_chunk(chunk: np.ndarray, out: np.ndarray, name: str, p: tuple, seed: int) -> None:
    """Corrupt (N, H, W, C) uint8 ``chunk`` into ``out`` with one severity's parameters ``p``."""
    corruption = CORRUPTIONS[name]
    if getattr(corruption, "on_levels", False):
        for image, target in zip(chunk, out):
            target[...] = corruption(image, p)
        return
    ops.unit_to_levels(corruption(ops.levels_to_unit(chunk), p, ImageGenerators(chunk, name, seed)), out)


class ImageGenerators(Sequence[np.random.Generator]):
    """One counter-based (Philox) Generator per image, keyed by a hash of (seed, corruption name,
    the image's shape and bytes): independent of the batch the image is in. Created on first use,
    so corruptions without randomness pay nothing."""

    def __init__(self, batch: np.ndarray, name: str, seed: int):
        self.batch, self.prefix = batch, f"{int(seed)}|{name}|{batch.shape[1:]}|".encode()
        self._made: list[np.random.Generator] | None = None

    def __len__(self) -> int:
        return len(self.batch)

    def __getitem__(self, index):  # type: ignore[override]
        if self._made is None:
            self._made = [self._generator(image) for image in self.batch]
        return self._made[index]

    def _generator(self, image: np.ndarray) -> np.random.Generator:
        digest = hashlib.sha256(self.prefix)
        digest.update(np.ascontiguousarray(image))  # SHA-256 has hardware support: 2x faster than BLAKE2 here
        return np.random.Generator(np.random.Philox(PhiloxKey(digest.digest()[:16])))


class PhiloxKey(ISeedSequence):
    """A seed that hands Philox the 128-bit key ``key_bytes`` (little-endian) as its two key words: the
    generator is then the one of ``Philox(key=int.from_bytes(key_bytes, "little"))``, without the
    operating-system entropy that Philox gathers for a keyed generator's unused seed (2.5x faster)."""

    def __init__(self, key_bytes: bytes):
        self.words = np.frombuffer(key_bytes, dtype="<u8").astype(np.uint64)

    def generate_state(self, n_words: int, dtype=np.uint32) -> np.ndarray:
        if n_words != 2 or np.dtype(dtype) != np.uint64:
            raise ValueError(f"PhiloxKey holds two 64-bit key words; asked for {n_words} of {np.dtype(dtype)}")
        return self.words.copy()


def _check(images: np.ndarray, name: str, severity: int, preset: str, seed: int) -> np.ndarray:
    """Validate the arguments; the errors list the valid values."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ShiftbenchError(f"unknown corruption preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise ShiftbenchError(f"unknown corruption name {name!r}; valid corruptions: {', '.join(CORRUPTIONS)}")
    check_int(seed, "seed", "corrupt", at_least=0)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ShiftbenchError(f"severity must be an integer 1..5; got {severity!r}")
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ShiftbenchError(f"images must be uint8 (0..255); got dtype {images.dtype}. "
                              "Convert with (x * 255).round().astype(np.uint8) for floats in [0, 1].")
    if images.ndim not in (2, 3, 4):
        raise ShiftbenchError(f"images must be (H, W), (H, W, C), (N, H, W) or (N, H, W, C); got shape {images.shape}")
    return images


def _check_shape(batch: np.ndarray) -> None:
    n, h, w, c = batch.shape
    if c not in (1, 3):
        raise ShiftbenchError(f"images must have 1 or 3 channels (last axis); got {c} in shape {batch.shape}")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ShiftbenchError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels; got {h}x{w}. "
                              f"Pad smaller images first (see pad_to_min_size).")


def pad_to_min_size(images: np.ndarray, size: int = MIN_SIZE) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Zero-pad (N, H, W[, C]) images symmetrically to at least ``size`` x ``size``; returns the padded
    images and the (rows, cols) slices that crop them back."""
    h, w = images.shape[1:3]
    top, left = max(size - h, 0) // 2, max(size - w, 0) // 2
    pads = [(0, 0), (top, max(size - h, 0) - top), (left, max(size - w, 0) - left)] + [(0, 0)] * (images.ndim - 3)
    return np.pad(images, pads), (slice(top, top + h), slice(left, left + w))


def code_fingerprint() -> str:
    """Hash of the sources of every corruption module (a cache key that changes when any of them does)."""
    import inspect

    modules = (blur, digital, noise, ops, params, weather)
    h = hashlib.sha256(inspect.getsource(corrupt).encode())
    for module in modules:
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()[:12]
