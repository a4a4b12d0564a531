"""Corruptions: fidelity to the reference generator (imagecorruptions), per-image determinism, errors."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from shiftbench.corruptions import CORRUPTIONS, corrupt, pad_to_min_size
from shiftbench.errors import ShiftbenchError

DETERMINISTIC = ["gaussian_blur", "defocus_blur", "zoom_blur", "contrast", "brightness", "saturate",
                 "jpeg_compression", "pixelate"]


def photos() -> list[np.ndarray]:
    """Crops of scikit-learn's sample photographs: square, small and non-square."""
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    return [china[100:196, 200:296], flower[50:114, 100:180], china[10:42, 300:332]]


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("imagecorruptions")
    warnings.filterwarnings("ignore")
    from imagecorruptions import corrupt as ref

    return ref


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_match_reference(reference, name):
    for image in photos():
        for severity in range(1, 6):
            diff = np.abs(corrupt(image, name, severity).astype(int) - reference(image, severity, name).astype(int))
            assert diff.mean() < 0.5, (name, severity, image.shape, diff.mean())
            assert np.quantile(diff, 0.999) <= 1 and diff.max() <= 2, (name, severity, image.shape, diff.max())


def noise_std(images: np.ndarray, out: np.ndarray) -> float:
    return float((out.astype(float) - images).std() / 255)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "speckle_noise", "impulse_noise"])
def test_noise_scale_matches_reference(reference, name):
    # mid-grey images keep clipping out of the way for the lower severities
    # the reference draws from numpy's global generator: seed it, so that the comparison does not depend
    # on what ran before in this worker (one unlucky draw was 2.8 standard errors low)
    grey = np.full((48, 48, 3), 120, dtype=np.uint8)
    np.random.seed(0)
    for severity in (1, 3):
        ours = noise_std(grey, corrupt(np.stack([grey + i for i in range(6)]), name, severity))
        ref = np.mean([noise_std(grey + i, reference(grey + i, severity, name)) for i in range(6)])
        assert ours == pytest.approx(ref, rel=0.05), (name, severity)


def sharpness(images: np.ndarray) -> float:
    """Mean absolute Laplacian: falls as blur extent grows."""
    x = images.astype(float)
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    return float(np.abs(lap).mean())


@pytest.mark.parametrize("name,tolerance", [pytest.param("glass_blur", 0.1, marks=pytest.mark.slow), ("motion_blur", 0.2), ("elastic_transform", 0.15),
                                            ("snow", 0.3), ("fog", 0.3), ("frost", 0.3), ("spatter", 0.3)])
def test_random_corruptions_match_reference_statistics(reference, name, tolerance):
    """Blur extent (sharpness) and strength (mean change) agree with the reference within ``tolerance``."""
    from sklearn.datasets import load_sample_images

    china = load_sample_images().images[0]
    crops = np.stack([china[40 * i:40 * i + 64, 30 * i:30 * i + 64] for i in range(8)])
    # the reference draws from numpy's global generator (frost even picks one of six photos), so
    # seed it and compare averages over several draws rather than one draw per crop
    draws = 4
    images = np.concatenate([crops] * draws)
    state = np.random.get_state()
    np.random.seed(0)
    try:
        for severity in (1, 3, 5):
            ours = np.concatenate([corrupt(crops, name, severity, seed=s) for s in range(draws)])
            ref = np.stack([reference(im, severity, name) for im in images])
            check_statistics(name, severity, images, ours, ref, tolerance)
    finally:
        np.random.set_state(state)


def check_statistics(name, severity, images, ours, ref, tolerance):
    """Sharpness and mean change from the clean images of ours and the reference's agree within ``tolerance``."""
    assert sharpness(ours) == pytest.approx(sharpness(ref), rel=tolerance), (name, severity)
    change = np.abs(ours.astype(float) - images).mean(), np.abs(ref.astype(float) - images).mean()
    assert change[0] == pytest.approx(change[1], rel=tolerance, abs=1.0), (name, severity)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_same_output_alone_or_in_a_batch(name):
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    together = corrupt(batch, name, 3, seed=7)
    assert together.shape == batch.shape and together.dtype == np.uint8
    for i in range(3):
        np.testing.assert_array_equal(corrupt(batch[i], name, 3, seed=7), together[i])
    np.testing.assert_array_equal(corrupt(batch[::-1], name, 3, seed=7), together[::-1])


def test_image_generators_are_philox_keyed_by_the_image_hash():
    import hashlib

    from shiftbench.corruptions import ImageGenerators

    batch = np.random.default_rng(2).integers(0, 256, (2, 32, 33, 3), dtype=np.uint8)
    for image, rng in zip(batch, ImageGenerators(batch, "fog", 5)):
        digest = hashlib.sha256(f"5|fog|{batch.shape[1:]}|".encode() + image.tobytes()).digest()
        expected = np.random.Generator(np.random.Philox(key=int.from_bytes(digest[:16], "little")))
        assert str(rng.bit_generator.state) == str(expected.bit_generator.state)
        np.testing.assert_array_equal(rng.random(50), expected.random(50))
        np.testing.assert_array_equal(rng.normal(size=50), expected.normal(size=50))


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "glass_blur", "motion_blur", "snow", "fog", "spatter"])
def test_seed_changes_random_corruptions(name):
    image = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert not np.array_equal(corrupt(image, name, 3, seed=0), corrupt(image, name, 3, seed=1))


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_grey_images_keep_their_shape(name):
    grey = np.random.default_rng(3).integers(0, 256, (2, 32, 36), dtype=np.uint8)
    assert corrupt(grey, name, 2).shape == grey.shape
    assert corrupt(grey[0], name, 2, preset="cifar").shape == grey[0].shape


def test_grey_channel_agrees_with_rgb_for_channelwise_corruptions():
    grey = photos()[0][..., 1]
    for name in ("contrast", "gaussian_blur", "defocus_blur", "zoom_blur", "brightness"):
        np.testing.assert_array_equal(corrupt(grey, name, 3), corrupt(np.stack([grey] * 3, -1), name, 3)[..., 0])


def test_cifar_preset_uses_make_cifar_c_constants():
    """Formulas of make_cifar_c.py with its published constants, computed here independently."""
    image = photos()[2]
    x = image / 255.0
    for severity, c in enumerate((0.75, 0.5, 0.4, 0.3, 0.15), start=1):
        means = x.mean(axis=(0, 1), keepdims=True)
        expected = (np.clip((x - means) * c + means, 0, 1) * 255).astype(np.uint8)
        assert np.abs(corrupt(image, "contrast", severity, preset="cifar").astype(int) - expected).max() <= 1
    for severity, factor in enumerate((0.95, 0.9, 0.85, 0.75, 0.65), start=1):
        pil = Image.fromarray(image).resize((int(32 * factor),) * 2, Image.BOX).resize((32, 32), Image.BOX)
        np.testing.assert_array_equal(corrupt(image, "pixelate", severity, preset="cifar"), np.asarray(pil))
    for severity, quality in enumerate((80, 65, 58, 50, 40), start=1):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        np.testing.assert_array_equal(corrupt(image, "jpeg_compression", severity, preset="cifar"),
                                      np.asarray(Image.open(buffer)))


def test_cifar_gaussian_blur_matches_skimage():
    skimage_filters = pytest.importorskip("skimage.filters")
    image = photos()[2]
    for severity, sigma in enumerate((0.4, 0.6, 0.7, 0.8, 1), start=1):
        expected = (np.clip(skimage_filters.gaussian(image / 255.0, sigma=sigma, channel_axis=-1), 0, 1) * 255).astype(np.uint8)
        assert np.abs(corrupt(image, "gaussian_blur", severity, preset="cifar").astype(int) - expected).max() <= 1


def test_frost_falls_back_to_a_procedural_texture(monkeypatch):
    from shiftbench.corruptions import weather

    monkeypatch.setattr(weather, "imagecorruptions_frost_folder", lambda: None)
    weather.frost_textures.cache_clear()
    weather.scaled_frost.cache_clear()
    try:
        image = photos()[1]
        frosted = corrupt(image, "frost", 3)
        assert frosted.shape == image.shape
        texture = weather.frost_textures()[0]
        assert texture.shape[0] == 3 and texture[2].mean() > texture[0].mean()  # pale blue ice
        # frost brightens the image, which keeps most of its structure
        assert frosted.mean() > image.mean()
        assert np.corrcoef(frosted[..., 1].ravel(), image[..., 1].ravel())[0, 1] > 0.3
    finally:
        weather.frost_textures.cache_clear()
        weather.scaled_frost.cache_clear()


def test_severity_increases_damage():
    image = photos()[0]
    for name in CORRUPTIONS:
        change = [np.abs(corrupt(image, name, s).astype(float) - image).mean() for s in (1, 5)]
        assert change[1] > change[0] or name == "saturate", name


def test_padding_helper_round_trips():
    images = np.random.default_rng(4).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    padded, (rows, cols) = pad_to_min_size(images)
    assert padded.shape == (2, 32, 32)
    np.testing.assert_array_equal(padded[:, rows, cols], images)


@pytest.mark.parametrize("kwargs,message", [
    ({"images": np.zeros((32, 32, 3), np.float32)}, "uint8"),
    ({"images": np.zeros((28, 28), np.uint8)}, "at least 32x32"),
    ({"images": np.zeros((2, 32, 32, 4), np.uint8)}, "1 or 3 channels"),
    ({"name": "blurry"}, "valid corruptions: gaussian_noise, shot_noise"),
    ({"severity": 6}, "severity must be an integer 1..5"),
    ({"severity": 0}, "severity must be an integer 1..5"),
    ({"preset": "svhn"}, "valid presets: imagenet, cifar"),
])
def test_bad_input_gives_clear_errors(kwargs, message):
    args = {"images": np.zeros((32, 32, 3), np.uint8), "name": "contrast", "severity": 1, **kwargs}
    with pytest.raises(ShiftbenchError, match=message):
        corrupt(**args)


@pytest.mark.parametrize("shape", [(2, 40, 36, 3), (2, 33, 32, 1)])
def test_level_conversions_round_trip_exactly(shape):
    from shiftbench.corruptions import ops

    levels = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    levels[0, 0, 0] = 0
    levels[0, 0, 1] = 255
    unit = ops.levels_to_unit(levels)
    assert unit.shape == (shape[0], shape[3], shape[1], shape[2]) and unit.dtype == torch.float32
    np.testing.assert_array_equal(unit.numpy(), levels.transpose(0, 3, 1, 2) / np.float32(255))
    back = np.empty_like(levels)
    ops.unit_to_levels(unit, back)
    np.testing.assert_array_equal(back, levels)
    ops.unit_to_levels(unit * 4 - 1.5, back)  # out of range: clipped, then truncated like np.uint8(x * 255)
    expected = np.floor(np.clip((levels.transpose(0, 3, 1, 2) / 255.0 * 4 - 1.5) * 255, 0, 255) + 1e-4)
    assert np.abs(back.astype(int) - expected.transpose(0, 2, 3, 1)).max() <= 1


@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_and_pixelate_are_pillows_exactly(channels):
    """Both reference generators run these through Pillow: RGB as it is, grey via RGB and back."""
    for image in photos():
        image = image if channels == 3 else image[..., 1]
        for severity, (quality, factor) in enumerate(zip((25, 18, 15, 10, 7), (0.6, 0.5, 0.4, 0.3, 0.25)), start=1):
            pil = Image.fromarray(image)
            buffer = io.BytesIO()
            (pil.convert("RGB") if channels == 1 else pil).save(buffer, "JPEG", quality=quality)
            decoded = Image.open(buffer)
            expected = np.asarray(decoded.convert("L") if channels == 1 else decoded)
            np.testing.assert_array_equal(corrupt(image, "jpeg_compression", severity), expected)
            h, w = image.shape[:2]
            small = pil.resize((int(w * factor), int(h * factor)), Image.BOX)
            np.testing.assert_array_equal(corrupt(image, "pixelate", severity), np.asarray(small.resize((w, h), Image.NEAREST)))


def test_jpeg_is_pillows_round_trip_on_many_crops_odd_sizes_and_every_quality():
    """Encoder and decoder come from two libraries; their trip must equal Pillow's on edge blocks too."""
    from sklearn.datasets import load_sample_images

    from shiftbench.corruptions import digital

    rng = np.random.default_rng(5)
    pictures = load_sample_images().images
    for i in range(24):
        h, w = (224, 224) if i < 4 else tuple(int(v) for v in rng.integers(9, 120, 2))
        photo = pictures[i % 2]
        top, left = int(rng.integers(0, photo.shape[0] - h)), int(rng.integers(0, photo.shape[1] - w))
        image = np.ascontiguousarray(photo[top:top + h, left:left + w])
        if i % 3 == 2:
            image = np.ascontiguousarray(image[..., :1])
        for quality in (25, 18, 15, 10, 7, 80):
            pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            buffer = io.BytesIO()
            pil.convert("RGB").save(buffer, "JPEG", quality=quality)
            decoded = Image.open(buffer)
            expected = np.asarray(decoded.convert("L") if image.shape[-1] == 1 else decoded).reshape(image.shape)
            np.testing.assert_array_equal(digital.jpeg_compression(image, (quality,)), expected,
                                          err_msg=f"{image.shape} q{quality}")


@pytest.mark.parametrize("shape", [(32, 32, 3), (37, 50, 3), (64, 33, 1), (63, 64, 3), (224, 224, 3), (150, 97, 1)])
def test_compiled_pixelate_is_pillows_exactly(shape):
    """The compiled copy of Pillow's BOX resampling: every factor of both presets, odd sizes, grey and RGB."""
    from shiftbench.corruptions import digital

    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    h, w = shape[:2]
    pil = Image.fromarray(image[..., 0] if shape[-1] == 1 else image)
    for factor in (0.6, 0.5, 0.4, 0.3, 0.25, 0.95, 0.9, 0.85, 0.75, 0.65):
        small = pil.resize((int(w * factor), int(h * factor)), Image.BOX)
        for upsample, pillow_filter in (("nearest", Image.NEAREST), ("box", Image.BOX)):
            expected = np.asarray(small.resize((w, h), pillow_filter)).reshape(shape)
            np.testing.assert_array_equal(digital.pixelate(image, (factor, upsample)), expected)


def test_plasma_fractal_is_the_diamond_square_recursion():
    """Every new point is the mean of its four wrapping neighbours plus wibble^2 * (2u - 1), with u
    the generator's uniforms in order; the maps are then scaled to [0, 1]."""
    from shiftbench.corruptions import ops

    size, decay = 16, 2.5
    maps = ops.plasma_fractal(size, decay, [np.random.default_rng(s) for s in (0, 1)]).numpy()
    for seed, ours in zip((0, 1), maps):
        u = iter(np.random.default_rng(seed).random(size * size, dtype=np.float32).astype(np.float64))
        grid = np.zeros((size, size))
        step, wibble = size, 100.0
        while step >= 2:
            half = step // 2
            noise = lambda: wibble ** 2 * (2 * next(u) - 1)  # noqa: E731
            for y in range(0, size, step):
                for x in range(0, size, step):
                    corners = grid[y, x] + grid[(y + step) % size, x] + grid[y, (x + step) % size] + grid[(y + step) % size, (x + step) % size]
                    grid[y + half, x + half] = corners / 4 + noise()
            for y in range(0, size, step):
                for x in range(0, size, step):
                    around = grid[y + half, x + half] + grid[y - half, x + half] + grid[y, x] + grid[y, (x + step) % size]
                    grid[y, x + half] = around / 4 + noise()
            for y in range(0, size, step):
                for x in range(0, size, step):
                    around = grid[y + half, x + half] + grid[y + half, x - half] + grid[y, x] + grid[(y + step) % size, x]
                    grid[y + half, x] = around / 4 + noise()
            step //= 2
            wibble /= decay
        grid -= grid.min()
        np.testing.assert_allclose(ours, grid / grid.max(), atol=1e-5)


def test_datasets_corruptions_is_an_alias_of_the_core_package_and_defines_no_dataset():
    import shiftbench.corruptions as core
    from shiftbench import datasets
    from shiftbench.datasets import corruptions as alias

    assert alias.corrupt is core.corrupt and alias.CORRUPTIONS is core.CORRUPTIONS
    assert not any(cls.__module__ == alias.__name__ for cls in datasets.registry.scan_all().values())
