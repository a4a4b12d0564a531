"""Backbone model plugins on a WILDS fixture: offline random-init fallback marked as such, weights
from the local torch-hub cache when present, the linear head, and cached outputs over a split."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from shiftbench.cache import ArrayCache
from shiftbench.datasets import load
from shiftbench.model import state_fingerprint
from shiftbench.models import build_model
from shiftbench.models.pretrained import RANDOM_INIT, fit_linear_head, stratified_subset

sys.path.insert(0, str(Path(__file__).parent))
import wilds_fixtures  # noqa: E402


@pytest.fixture(scope="module")
def camelyon(tmp_path_factory):
    root = tmp_path_factory.mktemp("wilds")
    wilds_fixtures.camelyon17(root)
    return load("wilds/camelyon17", root_dir=str(root), image_size=32)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_offline_backbone_is_marked_random_init_and_runs_outputs(camelyon, empty_hub, tmp_path):
    model = build_model("resnet18", camelyon, seed=0, cache_root=tmp_path, size=32)
    assert model.pretrained == RANDOM_INIT
    cache = ArrayCache(tmp_path)
    out = model.outputs(camelyon.split("test"), cache)
    assert out["feats"].shape == (6, 512) and out["logits"].shape == (6, 2)
    model.outputs(camelyon.split("test"), cache)
    assert (cache.misses, cache.hits, model.forward_passes) == (1, 1, 1)
    # the fixture's colour encodes the label: a linear probe on random features separates it
    assert camelyon.evaluate("test", out["logits"].argmax(1))["acc_avg"] >= 5 / 6
    again = build_model("resnet18", camelyon, seed=0, cache_root=tmp_path, size=32)
    assert again.fingerprint == model.fingerprint  # seeded init and cached head
    other = build_model("resnet18", camelyon, seed=1, cache_root=tmp_path, size=32)
    assert other.fingerprint != model.fingerprint


def test_weights_in_the_local_hub_cache_are_used(camelyon, empty_hub, tmp_path):
    from torchvision import models

    weights = models.ResNet18_Weights.DEFAULT
    torch.manual_seed(123)
    reference = models.resnet18()
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), empty_hub / "checkpoints" / Path(weights.url).name)
    model = build_model("resnet18", camelyon, seed=0, cache_root=tmp_path, size=32)
    assert model.pretrained == f"torchvision:resnet18:{weights.name}"
    reference.fc = torch.nn.Identity()
    assert state_fingerprint(model.backbone) == state_fingerprint(reference)


def test_binary_head_reproduces_logistic_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(int)
    head = fit_linear_head(x, y, 2, seed=0)
    probs = torch.softmax(head(torch.as_tensor(x, dtype=torch.float32)), 1).detach().numpy()
    expected = LogisticRegression(C=1.0, max_iter=2000).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_multiclass_head_with_an_absent_class_never_predicts_it():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 4))
    y = np.repeat([0, 1, 3], 30)
    x[:, 0] += y
    head = fit_linear_head(x, y, 4, seed=0)
    logits = head(torch.as_tensor(x, dtype=torch.float32)).detach().numpy()
    expected = LogisticRegression(C=1.0, max_iter=2000).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(torch.softmax(torch.as_tensor(logits), 1).numpy()[:, [0, 1, 3]], expected, atol=1e-5)
    assert not (logits.argmax(1) == 2).any()


def test_stratified_subset_keeps_class_shares():
    y = np.repeat([0, 1], [900, 100])
    index = stratified_subset(y, 200, seed=0)
    assert len(index) == 200 and len(np.unique(index)) == 200
    assert abs(np.mean(y[index] == 1) - 0.1) < 0.01
    np.testing.assert_array_equal(stratified_subset(y[:50], 200, seed=0), np.arange(50))


def test_text_dataset_is_refused_with_a_clear_error(tmp_path, empty_hub):
    from shiftbench.errors import ShiftbenchError

    wilds_fixtures.civilcomments(tmp_path)
    ds = load("wilds/civilcomments", root_dir=str(tmp_path))
    with pytest.raises(ShiftbenchError, match="takes images"):
        build_model("resnet18", ds, seed=0, cache_root=tmp_path)


def test_outputs_read_a_lazy_split_one_batch_at_a_time(camelyon, empty_hub, tmp_path):
    split = camelyon.split("val")
    reads = []
    lazy = type(split)(split.name, split.y, split.metadata, fingerprint=split.fingerprint + "-lazy",
                       load_inputs=lambda index: reads.append(index) or split.inputs(index))
    model = build_model("resnet18", camelyon, seed=0, cache_root=tmp_path, size=32)
    batched = model.outputs(lazy, ArrayCache(tmp_path), batch_size=4)
    assert [len(range(len(lazy))[i]) for i in reads] == [4, 2]
    whole = model.forward_arrays(split.inputs(), batch_size=64)
    np.testing.assert_allclose(batched["logits"], whole["logits"], rtol=1e-5, atol=1e-5)
