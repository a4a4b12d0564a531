"""CIFAR-10/100-C and (Tiny-)ImageNet-C adapters on tiny fixtures in the real layouts; corrupted splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shiftbench.cache import ArrayCache
from shiftbench.corruptions.splits import corrupted_split
from shiftbench.dataset import Split
from shiftbench.datasets.cifar_c import Cifar100C, CifarC
from shiftbench.datasets.imagenet_c import ImageNetC, TinyImageNetC
from shiftbench.errors import MissingDataError, ShiftbenchError, UnknownNameError
from shiftbench.plugins import PluginRegistry


def make_cifar_c(root, folder="CIFAR-10-C", per_severity=4, corruptions=("gaussian_noise", "fog")):
    """<root>/<folder>/<corruption>.npy (5 severities x per_severity images) and labels.npy."""
    rng = np.random.default_rng(0)
    (root / folder).mkdir(parents=True)
    labels = np.tile(rng.integers(0, 10, per_severity), 5).astype(np.uint8)
    np.save(root / folder / "labels.npy", labels)
    stacks = {}
    for c in corruptions:
        stacks[c] = rng.integers(0, 256, (5 * per_severity, 32, 32, 3), dtype=np.uint8)
        np.save(root / folder / f"{c}.npy", stacks[c])
    return labels, stacks


def test_cifar10c_exposes_each_corruption_and_severity(tmp_path):
    labels, stacks = make_cifar_c(tmp_path)
    ds = CifarC(root_dir=str(tmp_path))
    assert sorted(ds.splits) == sorted(f"{c}/{s}" for c in ("gaussian_noise", "fog") for s in range(1, 6))
    split = ds.split("fog/3")
    np.testing.assert_array_equal(split.inputs(), stacks["fog"][8:12])
    np.testing.assert_array_equal(split.y, labels[8:12])
    assert (split.metadata["corruption"] == "fog").all() and (split.metadata["severity"] == 3).all()
    assert ds.n_classes == 10
    assert ds.evaluate("fog/3", split.y)["acc_avg"] == 1.0


def test_cifar100c_and_load_by_name(tmp_path):
    import shiftbench.datasets as datasets

    make_cifar_c(tmp_path, folder="CIFAR-100-C", corruptions=("contrast",))
    ds = datasets.load("cifar100-c", root_dir=str(tmp_path))
    assert isinstance(ds, Cifar100C) and ds.n_classes == 100 and "contrast/5" in ds.splits


@pytest.mark.parametrize("cls,url", [(CifarC, "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar"),
                                     (Cifar100C, "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar")])
def test_cifar_c_missing_data_names_path_command_and_size(tmp_path, cls, url):
    with pytest.raises(MissingDataError) as err:
        cls(root_dir=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / cls.folder / "labels.npy") in message and url in message and "GB" in message


def make_imagenet_c(root, corruptions=("snow", "pixelate"), severities=(1, 5), wnids=("n01440764", "n01443537"), size=32):
    rng = np.random.default_rng(1)
    for c in corruptions:
        for s in severities:
            for w in wnids:
                folder = root / c / str(s) / w
                folder.mkdir(parents=True)
                for i in range(2):
                    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"ILSVRC_{i}.JPEG")


@pytest.mark.parametrize("cls", [ImageNetC, TinyImageNetC])
def test_imagenet_c_folders(tmp_path, cls):
    make_imagenet_c(tmp_path)
    ds = cls(root_dir=str(tmp_path))
    assert sorted(ds.splits) == ["pixelate/1", "pixelate/5", "snow/1", "snow/5"]
    split = ds.split("snow/5")
    # examples in file-name order (ILSVRC_0 of each class, then ILSVRC_1), not grouped by class folder
    assert ds.class_names == ["n01440764", "n01443537"] and list(split.y) == [0, 1, 0, 1]
    assert list(split.metadata.columns[:2]) == ["corruption", "severity"] and (split.metadata["severity"] == 5).all()
    images = split.inputs(np.array([1, 2]))
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    only = cls(root_dir=str(tmp_path), corruptions=["pixelate"], severities=[5])
    assert list(only.splits) == ["pixelate/5"]


def test_imagenet_c_missing_data(tmp_path):
    with pytest.raises(MissingDataError, match=r"zenodo.org/record/2235448.*GB"):
        ImageNetC(root_dir=str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError, match=r"zenodo.org/record/2536630/files/Tiny-ImageNet-C.tar"):
        TinyImageNetC(root_dir=str(tmp_path))


def test_corrupted_split_pads_mnist_sized_images_and_crops_back(tmp_path):
    rng = np.random.default_rng(5)
    x = np.zeros((6, 28, 28), dtype=np.uint8)
    x[:, 8:20, 10:18] = rng.integers(100, 256, (6, 12, 8))
    split = Split("test", np.arange(6) % 3, pd.DataFrame({"y": np.arange(6) % 3}), x=x)
    cache = ArrayCache(tmp_path)
    out = corrupted_split(split, "gaussian_noise", 4, cache)
    assert out.x.shape == x.shape and out.x.dtype == np.uint8
    assert not np.array_equal(out.x, x)
    assert (out.metadata["corruption"] == "gaussian_noise").all() and (out.metadata["severity"] == 4).all()
    again = corrupted_split(split, "gaussian_noise", 4, cache)
    np.testing.assert_array_equal(again.x, out.x)
    assert cache.hits == 1


def test_any_image_dataset_as_base_c_corrupts_on_the_fly(tmp_path):
    from shiftbench import datasets
    from shiftbench.corruptions import corrupt, pad_to_min_size

    ds = datasets.load("digits-c", corruptions=["contrast", "gaussian_noise"], severities=[2],
                       base_options={"n_train": 500, "n_val": 200, "n_test": 200}, cache_dir=str(tmp_path))
    assert {"train", "id_test", "contrast/2", "gaussian_noise/2"} <= set(ds.splits)
    assert not list(tmp_path.rglob("*.npz"))  # nothing corrupted before it is used
    split = ds.split("contrast/2")
    clean = ds.split("id_test").inputs()
    padded, (rows, cols) = pad_to_min_size(clean)
    assert np.array_equal(split.inputs(), corrupt(padded, "contrast", 2)[:, rows, cols])
    assert np.array_equal(split.y, ds.split("id_test").y)
    assert set(split.metadata["corruption"]) == {"contrast"} and len(list(tmp_path.rglob("*.npz"))) == 1
    with pytest.raises(ShiftbenchError, match="valid corruptions"):
        datasets.load("digits-c", corruptions=["fisheye"])
    with pytest.raises(ShiftbenchError, match="valid datasets"):
        datasets.load("nosuchdata-c")


def test_the_corrupted_adapter_claims_base_c_names_of_registered_datasets_only():
    from shiftbench import datasets
    from shiftbench.datasets.corrupted import Corrupted

    assert datasets.registry.resolve("digits-c") == (Corrupted, {"base": "digits"})
    assert datasets.registry.resolve("cifar10-c") == (CifarC, {})  # a registered name is never claimed
    with pytest.raises(UnknownNameError, match="valid datasets"):
        datasets.registry.resolve("nosuchdata-c")


class _Thing:
    """Base class of the plugins of a throwaway registry."""


def test_a_name_claimed_by_two_plugins_is_refused_naming_both():
    class Evens(_Thing):
        name = "evens"

        @classmethod
        def claims(cls, name):
            return {"n": int(name)} if name.isdigit() and int(name) % 2 == 0 else None

    class Fours(Evens):
        name = "fours"

        @classmethod
        def claims(cls, name):
            return {"n": int(name)} if name.isdigit() and int(name) % 4 == 0 else None

    registry = PluginRegistry("thing", "json", "shiftbench.no-such-group", _Thing)  # json: a package without plugins
    registry.register(Evens)
    assert registry.resolve("6") == (Evens, {"n": 6})
    registry.register(Fours)
    with pytest.raises(ShiftbenchError, match="claimed by several plugins .*Evens.*Fours"):
        registry.resolve("8")
