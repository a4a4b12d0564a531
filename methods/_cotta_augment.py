"""The test-time image augmentation of CoTTA and RoTTA (shared by ``methods/cotta.py`` and ``methods/rotta.py``).

Both official codes (qinenergy/cotta ``get_tta_transforms``, BIT-DA/RoTTA ``core/utils/custom_transforms.py``)
use one chain on images with pixels in [0, 1], CIFAR's 32x32 RGB in their experiments:

1. clip to [0, 1];
2. colour jitter, its operations in a random order: brightness x U(0.6, 1.4), contrast U(0.7, 1.3) (blend with
   the image's grey mean), saturation U(0.5, 1.5), hue U(-0.06, 0.06), gamma U(0.7, 1.3) (on pixels clamped to
   [1e-8, 1]); each result clipped to [0, 1];
3. pad by half the image size, replicating the edge;
4. random affine: rotation U(-15, 15) degrees, a translation of a whole number of pixels up to 1/16 of the padded
   size, scale U(0.9, 1.1), no shear, bilinear, 0 fill;
5. Gaussian blur, kernel 5, sigma U(0.001, 0.5);
6. centre crop back to the image size;
7. horizontal flip with probability 1/2;
8. Gaussian noise of std 0.005 on every pixel; clip to [0, 1].

As in the official code (torchvision transforms applied to a batched tensor) every random parameter but the
noise is drawn once per call and shared by the whole batch; the noise is drawn per pixel.

Adaptation to this harness and to small grayscale inputs (digits, 28x28):

- the network here takes *normalised* inputs (the model's ``preprocess`` maps pixels ``p`` in [0, 1] to
  ``(p - mean) / std`` per channel), whereas the authors' networks normalise inside. :func:`pixel_map` recovers
  that per-channel affine map from the model's own ``preprocess`` (black, grey and white images of the split's
  format), so the chain runs on pixels in [0, 1] as in the official code and maps the result back;
- on one channel, saturation and hue are the identity (torchvision's own rule for grayscale images), so only
  brightness, contrast and gamma are shuffled;
- the horizontal flip is off for one-channel inputs: mirrored digits are not the same digit (CIFAR's natural
  images are mirror-invariant, which is why the authors flip); on three channels it is on, as in the official
  code;
- the size-dependent parts (padding by half the size, translation by 1/16 of the padded size) scale with the
  image as in the official code; the blur's kernel 5 and sigma <= 0.5 act on a pixel's immediate neighbours at
  any size, so they are kept.

Randomness comes from a ``torch.Generator`` the method seeds from its cell seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Task

BRIGHTNESS = (0.6, 1.4)
CONTRAST = (0.7, 1.3)
SATURATION = (0.5, 1.5)
HUE = (-0.06, 0.06)
GAMMA = (0.7, 1.3)
DEGREES = (-15.0, 15.0)
TRANSLATE = 1 / 16  # of the padded image's size
SCALE = (0.9, 1.1)
BLUR_KERNEL = 5
BLUR_SIGMA = (0.001, 0.5)
NOISE_STD = 0.005
GAMMA_FLOOR = 1e-8  # the official code clamps pixels to [1e-8, 1] before the gamma correction


def image_inputs_reason(input_kind: str, method: str) -> str | None:
    """Why ``method`` cannot run on data whose inputs are ``input_kind`` (None for images)."""
    if input_kind == "image":
        return None
    return (f"{method} augments its inputs with image transforms (colour jitter, affine, blur); "
            f"this dataset's inputs are {input_kind!r}, not images")


@dataclass(frozen=True)
class PixelMap:
    """The per-channel affine map ``inputs = pixels * scale + offset`` of a model's preprocessing."""

    offset: torch.Tensor  # (1, C, 1, 1)
    scale: torch.Tensor  # (1, C, 1, 1)

    @classmethod
    def identity(cls, channels: int) -> PixelMap:
        """Inputs that are the pixels themselves (a network that normalises inside, as the authors' do)."""
        return cls(torch.zeros(1, channels, 1, 1), torch.ones(1, channels, 1, 1))

    @property
    def channels(self) -> int:
        return self.offset.shape[1]

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset.to(x)) / self.scale.to(x)

    def to_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels * self.scale.to(pixels) + self.offset.to(pixels)


def pixel_map(task: Task, method: str) -> PixelMap:
    """The affine map from pixels in [0, 1] to the network's inputs, read off the model's ``preprocess`` applied
    to a black, a grey and a white image of the format the splits store (uint8 0..255, as ``image_preprocess`` takes)."""
    split = task.source_splits.get("train") or task.target
    raw = None if split is None else split.inputs(np.arange(1))
    if raw is None or np.asarray(raw).ndim < 3:
        raise ShiftbenchError(f"{method} needs the raw images of a split to read the model's pixel scaling off its "
                              f"preprocess; this task has none")
    raw = np.asarray(raw)
    black, grey, white = (task.model.preprocess(np.full_like(raw, level, dtype=np.uint8)).float()
                          for level in (0, 51, 255))
    if black.ndim != 4 or black.shape != white.shape:
        raise ShiftbenchError(f"{method}: the model's preprocess gives {tuple(black.shape)} for a black image; "
                              f"image augmentation needs (N, C, H, W) inputs")
    offset = black.mean((0, 2, 3), keepdim=True)
    scale = white.mean((0, 2, 3), keepdim=True) - offset
    affine = all(torch.allclose(out, (offset + scale * level).expand_as(out), atol=1e-5)
                 for out, level in ((black, 0.0), (grey, 0.2), (white, 1.0)))
    if not affine or not bool((scale > 0).all()):
        raise ShiftbenchError(f"{method}: the model's preprocess is not a per-channel increasing affine map of the "
                              f"pixels (black, grey and white images do not come out as constant channels on one "
                              f"line), so the augmentations cannot be applied in pixel space")
    if offset.shape[1] not in (1, 3):
        raise ShiftbenchError(f"{method}: image augmentation needs 1 or 3 channels; the inputs have {offset.shape[1]}")
    return PixelMap(offset, scale)


class CoTTAAugmentation:
    """``aug(x)``: one random draw of the CoTTA/RoTTA augmentation chain applied to the batch ``x`` (network
    inputs, mapped to pixels and back with ``pixels``). ``flip=None`` flips only three-channel images."""

    def __init__(self, pixels: PixelMap, generator: torch.Generator, flip: bool | None = None):
        self.pixels = pixels
        self.generator = generator
        self.flip = pixels.channels == 3 if flip is None else flip

    def _uniform(self, bounds: tuple[float, float]) -> float:
        low, high = bounds
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def _jitter(self, img: torch.Tensor) -> torch.Tensor:
        operations = [
            lambda im, f: TF.adjust_brightness(im, f),
            lambda im, f: TF.adjust_contrast(im, f),
            lambda im, f: TF.adjust_gamma(im.clamp(GAMMA_FLOOR, 1.0), f),
        ]
        bounds = [BRIGHTNESS, CONTRAST, GAMMA]
        if img.shape[1] == 3:
            operations += [lambda im, f: TF.adjust_saturation(im, f), lambda im, f: TF.adjust_hue(im, f)]
            bounds += [SATURATION, HUE]
        for i in torch.randperm(len(operations), generator=self.generator).tolist():
            img = operations[i](img, self._uniform(bounds[i]))
        return img

    def _affine(self, img: torch.Tensor) -> torch.Tensor:
        angle = self._uniform(DEGREES)
        height, width = img.shape[-2:]
        tx = round(self._uniform((-TRANSLATE * width, TRANSLATE * width)))
        ty = round(self._uniform((-TRANSLATE * height, TRANSLATE * height)))
        scale = self._uniform(SCALE)
        return TF.affine(img, angle=angle, translate=[tx, ty], scale=scale, shear=[0.0, 0.0],
                         interpolation=TF.InterpolationMode.BILINEAR, fill=0.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        img = self.pixels.to_pixels(x).clamp(0.0, 1.0)
        img = self._jitter(img)
        img = TF.pad(img, [width // 2, height // 2], padding_mode="edge")
        img = self._affine(img)
        sigma = self._uniform(BLUR_SIGMA)
        img = TF.gaussian_blur(img, [BLUR_KERNEL, BLUR_KERNEL], [sigma, sigma])
        img = TF.center_crop(img, [height, width])
        if self.flip and float(torch.rand((), generator=self.generator)) < 0.5:
            img = TF.horizontal_flip(img)
        noise = torch.randn(img.shape, generator=self.generator) * NOISE_STD
        img = (img + noise.to(img)).clamp(0.0, 1.0)
        return self.pixels.to_inputs(img)
