"""MEMO's augmentations: AugMix at severity 1 on the 8-bit image behind a network input (Zhang et al. 2022).

The authors (zhangmarvin/memo, ``cifar-10-exps/utils/third_party.py``, after google-research/augmix)
augment each test image as a PIL image before ``ToTensor``/``Normalize``:

1. pre-augmentation: random crop of the image's size after zero padding (4 pixels for 32x32;
   here ``side // 8``), random horizontal flip (both drawn from torch's generator, as torchvision does);
2. ``w ~ Dirichlet(1, 1, 1)``, ``m ~ Beta(1, 1)``; three chains, each of 1-3 operations drawn
   uniformly from autocontrast, equalize, rotate, solarize, shear x/y, translate x/y, posterize, at
   level 1 (each operation draws its strength uniformly in [0.1, 1] of one tenth of its range:
   rotations of at most 3 degrees, shears of at most 0.03, translations of at most a tenth of a
   third of the side, solarize thresholds from 231 to 255, posterize to 4 bits), affine fills 128;
3. the augmented image is ``m * x + (1 - m) * sum_i w_i chain_i(x)``.

The numpy draws come from a ``numpy.random.RandomState`` passed in, in the authors' order, so that the
same seed gives their augmentations exactly. Sizes follow the image instead of the authors' fixed 32
(their shear and translate output size and translate range).

shiftbench hands a method preprocessed tensors, so :class:`PixelRange` maps each channel back to
0-255 (rounded to 8 bits) from the network-input values of a black and a white pixel, and forward
again after augmenting: exact for the affine per-channel preprocessing of shiftbench's image models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision import transforms

from shiftbench.errors import ShiftbenchError

FILL = 128  # the authors' fill colour of rotations and affine transforms
MODES = {1: "L", 3: "RGB"}


@dataclass(frozen=True)
class PixelRange:
    """Network-input values (per channel) of pixel value 0 (``black``) and 255 (``white``)."""

    black: torch.Tensor
    white: torch.Tensor

    def to_image(self, x: torch.Tensor) -> Image.Image:
        """The 8-bit PIL image behind one network input ``x`` (c, h, w), c = 1 (L) or 3 (RGB)."""
        if x.ndim != 3 or x.shape[0] not in MODES:
            raise ShiftbenchError("memo augments 1- or 3-channel images (c, h, w); "
                                  f"got an input of shape {tuple(x.shape)}")
        fraction = (x - self.black.view(-1, 1, 1)) / (self.white - self.black).view(-1, 1, 1)
        pixels = (255.0 * fraction).round().clamp(0, 255)
        array = pixels.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(array[..., 0] if x.shape[0] == 1 else array, MODES[x.shape[0]])

    def to_input(self, fraction: np.ndarray) -> torch.Tensor:
        """Network inputs (n, c, h, w) of images given as pixel values / 255, (n, h, w) or (n, h, w, c)."""
        fraction = torch.from_numpy(np.ascontiguousarray(fraction, dtype=np.float32))
        fraction = (fraction.unsqueeze(-1) if fraction.ndim == 3 else fraction).permute(0, 3, 1, 2)
        return self.black.view(1, -1, 1, 1) + (self.white - self.black).view(1, -1, 1, 1) * fraction


def _strength(rng: np.random.RandomState, maximum: float) -> float:
    """A level-1 strength: uniform in [0.1, 1], scaled to a tenth of ``maximum``."""
    return rng.uniform(low=0.1, high=1) * maximum / 10


def _signed(value: float, rng: np.random.RandomState) -> float:
    return -value if rng.uniform() > 0.5 else value


def _affine(image: Image.Image, coefficients: tuple[float, ...]) -> Image.Image:
    return image.transform(image.size, Image.AFFINE, coefficients, resample=Image.BILINEAR, fillcolor=FILL)


def _autocontrast(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return ImageOps.autocontrast(image)


def _equalize(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return ImageOps.equalize(image)


def _rotate(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    degrees = _signed(int(_strength(rng, 30)), rng)
    return image.rotate(degrees, resample=Image.BILINEAR, fillcolor=FILL)


def _solarize(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return ImageOps.solarize(image, 256 - int(_strength(rng, 256)))


def _shear_x(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return _affine(image, (1, _signed(_strength(rng, 0.3), rng), 0, 0, 1, 0))


def _shear_y(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return _affine(image, (1, 0, 0, _signed(_strength(rng, 0.3), rng), 1, 0))


def _translate_x(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return _affine(image, (1, 0, _signed(int(_strength(rng, image.size[0] / 3)), rng), 0, 1, 0))


def _translate_y(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return _affine(image, (1, 0, 0, 0, 1, _signed(int(_strength(rng, image.size[1] / 3)), rng)))


def _posterize(image: Image.Image, rng: np.random.RandomState) -> Image.Image:
    return ImageOps.posterize(image, 4 - int(_strength(rng, 4)))


#: the operations in the authors' order (the order matters: a chain draws an index into this list)
OPERATIONS: tuple[Callable[[Image.Image, np.random.RandomState], Image.Image], ...] = (
    _autocontrast, _equalize, _rotate, _solarize, _shear_x, _shear_y, _translate_x, _translate_y, _posterize,
)


def pre_augment(image: Image.Image, flip: bool = True) -> Image.Image:
    """Random crop of the image's size after zero padding of ``side // 8`` pixels (4 for 32x32), then (``flip``)
    a random horizontal flip; both from torch's generator (torchvision's transforms)."""
    crop = transforms.RandomCrop(image.size[::-1], padding=min(image.size) // 8)
    image = crop(image)
    return transforms.RandomHorizontalFlip()(image) if flip else image


def augmix(image: Image.Image, rng: np.random.RandomState, flip: bool = True) -> np.ndarray:
    """One AugMix view of an 8-bit ``image``, as MEMO draws it, as pixel values / 255 (float32, (h, w[, c])).

    The authors mix the normalised tensors; the normalisation is affine and the weights sum to 1, so mixing
    pixel values and normalising once is the same up to float rounding (and cheaper)."""
    original = pre_augment(image, flip)
    weights = np.float32(rng.dirichlet([1.0, 1.0, 1.0]))
    m = np.float32(rng.beta(1.0, 1.0))
    mix = np.zeros(np.asarray(original).shape, dtype=np.float32)
    for weight in weights:
        chain = original.copy()
        for _ in range(rng.randint(1, 4)):
            chain = OPERATIONS[rng.choice(len(OPERATIONS))](chain, rng)
        mix += weight * np.asarray(chain, dtype=np.float32)
    return (m * np.asarray(original, dtype=np.float32) + (1 - m) * mix) / np.float32(255)
