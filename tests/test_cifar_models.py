"""The corruption-benchmark model plugins: the WRN against RobustBench's own definition, RobustBench checkpoints
(key layout, strict loading, the recorded sha256), torchvision's ImageNet ResNets with their own classifier, and
the one-line errors when weights are missing offline. Everything offline, on tiny networks and fixtures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shiftbench import datasets, models
from shiftbench.errors import MissingDataError, ShiftbenchError
from shiftbench.models import imagenet_resnet
from shiftbench.models.wide_resnet import CHECKPOINTS, WideResNet, file_sha256
from shiftbench.reproductions.tent_cifar10c import write_fixture

#: logits of RobustBench's WideResNet(depth=16, widen_factor=2, num_classes=10) with the weights of :func:`fill`
#: on ``torch.rand(3, 3, 32, 32)`` from a generator seeded 1 (float64 draws cast to float32), in eval mode (running
#: statistics) and train mode (batch statistics): robustbench at 78fcc9e, model_zoo/architectures/wide_resnet.py,
#: run on CPU with torch 2.14, one thread, rounded to 5 decimals
ROBUSTBENCH_EVAL = [
    [-0.74492, -0.64084, 0.6216, 1.72587, -0.95197, 1.52792, -0.57694, -0.21742, 1.14252, -0.56436],
    [-0.74363, -0.63494, 0.61669, 1.7241, -0.94774, 1.5219, -0.57517, -0.20916, 1.14707, -0.56502],
    [-0.74451, -0.63733, 0.6207, 1.74216, -0.95628, 1.53581, -0.57679, -0.20903, 1.14476, -0.56298]]
ROBUSTBENCH_TRAIN = [
    [-0.32026, -0.51891, 0.32344, -0.13068, 0.0994, 0.26098, -0.07586, 0.41105, 0.3696, 0.15844],
    [-0.34008, -0.53098, 0.32122, -0.14674, 0.0945, 0.2184, -0.08082, 0.4582, 0.36484, 0.13796],
    [-0.31112, -0.51994, 0.28045, -0.18855, 0.10289, 0.25041, -0.04132, 0.43613, 0.36039, 0.14569]]
#: RobustBench's WideResNet(depth=28, widen_factor=10) (the Standard model): its state_dict's key count and the
#: sha256 of its lines "<key> <shape tuple>" in state_dict order (same robustbench commit)
ROBUSTBENCH_WRN28_10_KEYS = (155, "5dcb7163345fc9b30c9aaf924bd0554bbb8e950cb554bd6dcfa881b6ae40c8d8")


def fill(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Deterministic weights by key name (sorted): N(0, 0.2^2) floats, |.| + 0.5 running variances, 7 for
    counters; loaded into ``net`` and returned."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, value in sorted(net.state_dict().items()):
        if value.dtype.is_floating_point:
            t = torch.randn(value.shape, generator=g, dtype=torch.float64).float() * 0.2
            state[key] = t.abs() + 0.5 if key.endswith("running_var") else t
        else:
            state[key] = torch.full_like(value, 7)
    net.load_state_dict(state)
    return state


def probe_inputs() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64).float()


def test_wide_resnet_computes_what_robustbench_computes():
    net = WideResNet(16, 2, 10)
    fill(net)
    x = probe_inputs()
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(x).numpy(), ROBUSTBENCH_EVAL, atol=2e-5)
        np.testing.assert_allclose(net.train()(x).numpy(), ROBUSTBENCH_TRAIN, atol=2e-5)


def test_wrn28_10_has_robustbench_standard_keys_and_shapes():
    with torch.device("meta"):
        net = WideResNet(28, 10, 10)
    lines = "\n".join(f"{k} {tuple(v.shape)}" for k, v in net.state_dict().items())
    assert (len(net.state_dict()), hashlib.sha256(lines.encode()).hexdigest()) == ROBUSTBENCH_WRN28_10_KEYS
    assert sum(p.numel() for p in net.parameters()) == 36_479_194  # WRN-28-10's 36.5M parameters


@pytest.mark.parametrize("depth", [9, 12, 4])
def test_a_depth_that_is_not_6n_plus_4_is_refused(depth):
    with pytest.raises(ShiftbenchError, match="6n \\+ 4"):
        WideResNet(depth, 1)


@pytest.mark.parametrize("key", list(CHECKPOINTS))
def test_shown_checkpoint_sizes_are_the_architectures_tensors(key):
    ckpt = CHECKPOINTS[key]
    with torch.device("meta"):
        net = WideResNet(ckpt.depth, ckpt.widen_factor, ckpt.num_classes)
    megabytes = sum(v.numel() * v.element_size() for v in net.state_dict().values()) / 1e6
    assert ckpt.size == f"about {megabytes:.0f} MB"


@pytest.fixture
def cifar10c(tmp_path):
    return datasets.load("cifar10-c", root_dir=str(write_fixture(tmp_path / "data", per_severity=4)))


def save_robustbench_checkpoint(path: Path, net: WideResNet) -> None:
    """A checkpoint as RobustBench stores its WRNs: ``{"state_dict": {"module.<key>": tensor}}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)


def test_a_robustbench_checkpoint_loads_and_its_sha256_is_kept(cifar10c, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    cache = tmp_path / "cache"
    reference = WideResNet(40, 2, 10)
    fill(reference)
    path = cache / "weights" / "robustbench" / "cifar10" / "corruptions" / "Hendrycks2020AugMix_WRN.pt"
    save_robustbench_checkpoint(path, reference)
    model = models.build_model("wrn40_2_augmix", cifar10c, 0, cache)
    digest = file_sha256(path)
    assert model.pretrained == f"robustbench:cifar10/corruptions/Hendrycks2020AugMix_WRN sha256:{digest[:16]}"
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == digest
    images = cifar10c.split("fog/5").inputs()
    x = torch.as_tensor(np.array(images), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    with torch.no_grad():  # AugMix's normalisation (x - 0.5) / 0.5, then RobustBench's network
        expected = reference.eval()((x - 0.5) / 0.5).numpy()
    np.testing.assert_allclose(model.forward_arrays(images)["logits"], expected, atol=1e-5)

    changed = WideResNet(40, 2, 10)  # another file of the right architecture: refused by the recorded hash
    save_robustbench_checkpoint(path, changed)
    with pytest.raises(ShiftbenchError, match="not the .* recorded at its first use"):
        models.build_model("wrn40_2_augmix", cifar10c, 0, cache)


def test_a_file_that_is_not_the_checkpoint_is_refused_and_no_hash_recorded(cifar10c, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    path = tmp_path / "weights" / "robustbench" / "cifar10" / "corruptions" / "Standard.pt"
    path.parent.mkdir(parents=True)
    path.write_text("<html>Google Drive can't scan this file for viruses</html>")
    with pytest.raises(ShiftbenchError, match="is not a usable checkpoint"):
        models.build_model("wrn28_10_standard", cifar10c, 0, tmp_path)
    save_robustbench_checkpoint(path, WideResNet(16, 2, 10))  # a WRN, but not WRN-28-10
    with pytest.raises(ShiftbenchError, match="not those of WideResNet-28-10"):
        models.build_model("wrn28_10_standard", cifar10c, 0, tmp_path)
    assert not path.with_name("Standard.pt.sha256").exists()


def test_a_download_is_announced_with_its_size_and_a_web_page_download_is_deleted(cifar10c, tmp_path, monkeypatch,
                                                                                    capsys):
    from shiftbench.models import wide_resnet

    reference = WideResNet(40, 2, 10)
    fill(reference)
    served = {"page": True}

    def fake_download(url, dst, progress=True):  # stands in for torch.hub's downloader: no network in tests
        assert url == wide_resnet.GDRIVE_URL.format(id="1wy7gSRsUZzCzj8QhmTbcnwmES_2kkNph")
        if served["page"]:
            Path(dst).write_text("<html>Google Drive</html>")
        else:
            save_robustbench_checkpoint(Path(dst), reference)

    monkeypatch.setattr(wide_resnet, "host_reachable", lambda url: True)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = tmp_path / "weights" / "robustbench" / "cifar10" / "corruptions" / "Hendrycks2020AugMix_WRN.pt"
    with pytest.raises(ShiftbenchError, match="is not the checkpoint .*web page.* fetch it by hand \\(about 9 MB\\): mkdir -p") as err:
        models.build_model("wrn40_2_augmix", cifar10c, 0, tmp_path)
    assert "\n" not in str(err.value)
    assert not path.exists() and not path.with_name(path.name + ".sha256").exists()
    assert "downloading RobustBench checkpoint cifar10/Hendrycks2020AugMix_WRN (WRN-40-2), about 9 MB" in capsys.readouterr().err
    served["page"] = False
    model = models.build_model("wrn40_2_augmix", cifar10c, 0, tmp_path)
    assert model.pretrained.endswith(file_sha256(path)[:16])


def test_missing_weights_offline_is_one_line_with_size_and_command(cifar10c, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    with pytest.raises(MissingDataError) as err:
        models.build_model("wrn28_10_standard", cifar10c, 0, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "about 146 MB" in message and "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC" in message
    assert str(tmp_path / "weights" / "robustbench" / "cifar10" / "corruptions" / "Standard.pt") in message


def test_standard_is_cifar10_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    folder = tmp_path / "CIFAR-100-C"
    folder.mkdir()
    np.save(folder / "labels.npy", np.zeros(10, dtype=np.uint8))
    np.save(folder / "fog.npy", np.zeros((10, 32, 32, 3), dtype=np.uint8))
    ds = datasets.load("cifar100-c", root_dir=str(tmp_path))
    with pytest.raises(ShiftbenchError, match="10-class CIFAR only; dataset 'cifar100-c' has 100 classes"):
        models.build_model("wrn28_10_standard", ds, 0, tmp_path)


def test_wrn_tiny_is_seeded_random_and_says_so(cifar10c, tmp_path):
    a, b, c = (models.build_model("wrn_tiny", cifar10c, s, tmp_path) for s in (0, 0, 1))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.pretrained.startswith("random-init") and a.has_batchnorm()
    assert torch.allclose(a.head.weight.sum(1), torch.zeros(10), atol=1e-5)  # centred classifier rows
    preds = a.forward_arrays(cifar10c.split("fog/1").inputs())["logits"].argmax(1)
    assert preds.shape == (4,)


def imagenet_c_fixture(root: Path, with_images: dict[int, int]) -> list[str]:
    """``<root>/fog/5/<wnid>/`` for 1000 class folders (``n00000000``..), images only in the folders of
    ``with_images`` (class index -> count); returns the wnids."""
    wnids = [f"n{i:08d}" for i in range(1000)]
    rng = np.random.default_rng(0)
    for i, wnid in enumerate(wnids):
        folder = root / "fog" / "5" / wnid
        folder.mkdir(parents=True)
        for k in range(with_images.get(i, 0)):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"ILSVRC2012_val_{i:05d}{k}.JPEG")
    return wnids


@pytest.fixture
def hub(tmp_path, monkeypatch):
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    yield tmp_path / "hub"
    torch.hub.set_dir(saved)


def test_imagenet_resnet_keeps_its_own_classifier_and_imagenet_labels(tmp_path, hub, monkeypatch):
    from torchvision.models import resnet18

    imagenet_c_fixture(tmp_path / "ImageNet-C", {3: 2, 998: 1})
    ds = datasets.load("imagenet-c", root_dir=str(tmp_path / "ImageNet-C"))
    split = ds.split("fog/5")
    assert ds.n_classes == 1000 and sorted(split.y.tolist()) == [3, 3, 998]
    torch.manual_seed(0)
    reference = resnet18().eval()
    path = hub / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    with pytest.raises(ShiftbenchError, match="not torchvision's published f37072fd"):
        models.build_model("resnet18_imagenet", ds, 0, tmp_path)
    # the success path, for a file whose hash is what the name says (a real file's name carries its own)
    monkeypatch.setattr(imagenet_resnet, "published_hash_prefix", lambda url: file_sha256(path)[:8])
    model = models.build_model("resnet18_imagenet", ds, 0, tmp_path)
    assert model.pretrained == "torchvision:resnet18:IMAGENET1K_V1"
    images = split.inputs()
    out = model.forward_arrays(images)
    assert out["logits"].shape == (3, 1000) and out["feats"].shape == (3, 512)
    with torch.no_grad():
        expected = reference(model.preprocess(images)).numpy()  # torchvision's network with its own fc
    np.testing.assert_allclose(out["logits"], expected, atol=1e-4)


def test_imagenet_resnet_refuses_a_dataset_without_the_1000_classes(tmp_path, hub):
    from test_corruption_datasets import make_imagenet_c

    make_imagenet_c(tmp_path / "ImageNet-C")
    ds = datasets.load("imagenet-c", root_dir=str(tmp_path / "ImageNet-C"))
    with pytest.raises(ShiftbenchError, match="1000 ImageNet classes .* has 2 classes"):
        models.build_model("resnet50_imagenet", ds, 0, tmp_path)


def test_imagenet_resnet_missing_weights_offline(tmp_path, hub):
    imagenet_c_fixture(tmp_path / "ImageNet-C", {0: 1})
    ds = datasets.load("imagenet-c", root_dir=str(tmp_path / "ImageNet-C"))
    with pytest.raises(MissingDataError) as err:
        models.build_model("resnet50_imagenet", ds, 0, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "resnet50-0676ba61.pth" in message and "97.8 MB" in message
    assert "check_hash=True" in message
