"""Issue 14's leaf repairs: unreadable cache files are rebuilt and named, files respect the umask,
check-method survives a plugin whose __init__ raises, hyperparameters are validated in __init__,
and grids may be lists of sub-grids (scikit-learn ParameterGrid semantics)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from shiftbench import methods
from shiftbench.cache import ArrayCache, CacheWarning, FileWriteError, atomic_write_text
from shiftbench.cli import main
from shiftbench.contract import CHECKS, check_method
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, OutputAdapter
from shiftbench.grids import expand, grid_points
from shiftbench.hyperparameters import Choice, Float, Int
from shiftbench.methods.lame import LAME, lame
from shiftbench.model import load_cached_weights
from shiftbench.store import RecordStore

# --- unreadable cache files ---------------------------------------------------------------------------------


def test_truncated_npz_is_set_aside_with_a_warning_and_recomputed(tmp_path):
    cache, calls = ArrayCache(tmp_path), []

    def compute():
        calls.append(1)
        return {"x": np.arange(500.0), "y": np.ones((3, 4))}

    first = cache.get_or_compute("ns", {"k": 1}, compute)
    path = next((tmp_path / "ns").glob("*.npz"))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(CacheWarning, match=str(path)):
        again = cache.get_or_compute("ns", {"k": 1}, compute)
    assert len(calls) == 2 and cache.misses == 2
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert path.with_name(path.name + ".corrupt").exists()
    assert cache.get_or_compute("ns", {"k": 1}, compute)["x"].shape == (500,) and len(calls) == 2  # a hit again


def test_a_write_that_fails_names_the_file(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    target = tmp_path / "blocker" / "out.csv"
    with pytest.raises(FileWriteError, match=str(target)) as err:
        atomic_write_text(target, "x")
    assert isinstance(err.value, OSError) and isinstance(err.value, ShiftbenchError)


class _TinyImages:
    """The little of a dataset that SmallCNN.build reads: 40 random 8x8 grey images in 2 classes."""

    n_classes = 2

    def __init__(self):
        rng = np.random.default_rng(0)
        self._train = SimpleNamespace(inputs=lambda: rng.integers(0, 255, (40, 8, 8), dtype=np.uint8).copy(),
                                      y=np.arange(40) % 2, fingerprint="tiny-images-v1")
        images = self._train.inputs()
        self._train.inputs = lambda: images

    def split(self, name):
        return self._train


def test_truncated_model_weights_are_retrained_with_a_warning_naming_the_file(tmp_path, monkeypatch):
    from shiftbench.models.small_cnn import SmallCNN

    trainings = []
    original = SmallCNN._train
    monkeypatch.setattr(SmallCNN, "_train", staticmethod(lambda *a: (trainings.append(1), original(*a))[1]))
    spec = SmallCNN(epochs=1, size=8, width=4, batch_size=16, augment=False)
    first = spec.build(_TinyImages(), 0, tmp_path)
    assert spec.build(_TinyImages(), 0, tmp_path).fingerprint == first.fingerprint and len(trainings) == 1
    (weights,) = (tmp_path / "models").glob("small_cnn-*.pt")
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.warns(CacheWarning, match=str(weights)):
        rebuilt = spec.build(_TinyImages(), 0, tmp_path)
    assert len(trainings) == 2 and rebuilt.fingerprint == first.fingerprint  # seeded: the same weights again
    assert load_cached_weights(weights) is not None  # the re-cached file reads


def test_weights_for_another_architecture_are_refused_before_loading(tmp_path):
    import torch

    path = tmp_path / "w.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.warns(CacheWarning, match="do not match"):
        assert load_cached_weights(path, torch.nn.Linear(4, 2)) is None
    assert not path.exists()


def test_damaged_shipped_weights_name_the_file_and_the_reinstall(tmp_path, monkeypatch):
    pytest.importorskip("ccexam")
    from shiftbench.models import ccexam

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "mnist.pth").write_bytes(b"PK\x03\x04 truncated")
    monkeypatch.setattr(ccexam.resources, "files", lambda package: tmp_path)
    with pytest.raises(ShiftbenchError, match=r"mnist\.pth.*pip install --force-reinstall"):
        ccexam.CCExamMNIST().build(None, 0, tmp_path)


# --- file modes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_records_cache_and_results_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        RecordStore(tmp_path / "store").write({"key": "abc", "status": "failed", "cell": {}})
        ArrayCache(tmp_path / "cache").get_or_compute("ns", [1], lambda: {"x": np.zeros(2)})
        atomic_write_text(tmp_path / "results" / "leaderboard.md", "# table\n")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o666 & ~umask)}


# --- check-method on a plugin whose __init__ raises -------------------------------------------------------


class RaisesInInit(OutputAdapter):
    name = "leaves_raises_in_init"
    hyperparameters = {"power": Float(1.0)}
    grid = {"power": [1.0]}

    @classmethod
    def check_together(cls, values):
        raise ValueError("power is not supported on this machine\nsecond line of detail")

    def process(self, batch):
        return batch.probs


def test_check_method_reports_a_failing_init_per_check(capsys):
    with methods.registry.temporarily(RaisesInInit):
        assert main(["check-method", RaisesInInit.name]) == 1
    out = capsys.readouterr().out
    building = [c for c in CHECKS if c != "interface"]  # the interface check reads the class; every other one builds it
    assert "PASS  interface" in out
    for check in building:
        assert f"FAIL  {check}" in out
    assert out.count("crashed with ValueError: power is not supported on this machine") == len(building)
    assert f"{Path(__file__).name}:" in out and "in check_together" in out
    assert "Traceback" not in out and "second line of detail" not in out


# --- hyperparameters validated in __init__ ----------------------------------------------------------------


@pytest.mark.parametrize("method,hparams,name", [
    ("lame", {"k": 2.7}, "k"), ("lame", {"k": "a"}, "k"), ("lame", {"k": 0}, "k"), ("lame", {"k": True}, "k"),
    ("lame", {"affinity": "cosine"}, "affinity"), ("lame", {"max_iter": 0}, "max_iter"),
    ("lame", {"affinity": "rbf", "k": 1}, "rbf"),
    ("tent", {"lr": -1}, "lr"), ("tent", {"lr": float("nan")}, "lr"), ("tent", {"steps": 1.5}, "steps"),
    ("bn_adapt", {"momentum": 0}, "momentum"), ("bn_adapt", {"momentum": 1.5}, "momentum"),
    ("bn_adapt", {"momentum": 0.1, "prior": 16}, "not both"),
    ("label_shift_adapter", {"base": "nope"}, "base"), ("em_correction", {"online": "false"}, "online"),
])
def test_bad_hyperparameters_raise_in_init_naming_them(method, hparams, name):
    with pytest.raises(ShiftbenchError, match=name) as err:
        methods.load(method, **hparams)
    assert "\n" not in str(err.value)


def test_valid_hyperparameters_are_kept_as_given():
    assert methods.load("lame", k=np.int64(4)).k == 4
    assert methods.load("bn_adapt", momentum=1.0).momentum == 1.0
    assert methods.load("tent", lr=0.5, steps=2).get_params()["lr"] == 0.5


def test_the_lame_function_refuses_a_fractional_k_instead_of_truncating():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=8)
    with pytest.raises(ShiftbenchError, match="k must be an integer"):
        lame(probs, rng.normal(size=(8, 4)), k=2.7)


# --- grids as lists of sub-grids --------------------------------------------------------------------------


def test_lame_grid_has_no_two_settings_with_the_same_effect():
    rng = np.random.default_rng(1)
    probs, feats = rng.dirichlet(np.ones(4), size=30), rng.normal(size=(30, 8))
    points = grid_points(LAME)
    outputs = [LAME(**p).process(Batch.from_arrays(probs=probs, feats=feats)) for p in points]
    same = [(points[i], points[j]) for i in range(len(points)) for j in range(i) if np.allclose(outputs[i], outputs[j])]
    assert not same
    assert {p["affinity"] for p in points} == {"knn", "rbf", "linear"}


class SubGrids(OutputAdapter):
    name = "leaves_sub_grids"
    hyperparameters = {"mode": Choice("a", ("a", "b", "c")), "width": Int(1), "scale": Float(1.0, above=0)}
    grid = [{"mode": ["a", "b"], "width": [1, 2]}, {"mode": ["c"]}]

    def process(self, batch):
        return batch.probs


def _settings(points):
    return sorted(json.dumps(p, sort_keys=True) for p in points)


def test_sub_grids_are_crossed_separately():
    assert _settings(grid_points(SubGrids)) == _settings(
        [{"mode": m, "width": w} for m in "ab" for w in (1, 2)] + [{"mode": "c"}])


def test_an_override_replaces_a_key_only_where_it_is_swept():
    assert _settings(grid_points(SubGrids, {"width": [5]})) == _settings([{"mode": "a", "width": 5},
                                                                         {"mode": "b", "width": 5}, {"mode": "c"}])


def test_an_override_value_a_sub_grid_lists_selects_that_sub_grid():
    assert grid_points(SubGrids, {"mode": ["c"]}) == [{"mode": "c"}]
    assert _settings(grid_points(SubGrids, {"mode": ["b", "c"]})) == _settings(
        [{"mode": "b", "width": 1}, {"mode": "b", "width": 2}, {"mode": "c"}])
    # the nightly suite's LAME overrides give one setting, not a knn one plus a k-less duplicate
    assert grid_points(LAME, {"affinity": ["knn"], "k": [5]}) == [{"affinity": "knn", "k": 5}]


def test_an_empty_override_is_refused():
    with pytest.raises(ShiftbenchError, match="lists no values"):
        grid_points(SubGrids, {"width": []})


def test_an_override_of_a_key_no_sub_grid_has_goes_into_every_sub_grid():
    points = grid_points(SubGrids, {"scale": [0.5, 2.0]})
    assert len(points) == 2 * len(grid_points(SubGrids)) and all(p["scale"] in (0.5, 2.0) for p in points)


def test_an_unknown_override_lists_the_valid_hyperparameters():
    with pytest.raises(ShiftbenchError, match=r"unknown hyperparameters \['wdith'\]; valid: \['mode', 'scale', 'width'\]"):
        grid_points(SubGrids, {"wdith": [3]})


def test_the_runner_and_selection_expand_grids_the_same_way():
    from shiftbench import runner

    with methods.registry.temporarily(SubGrids):
        assert runner.grid_points(SubGrids.name, {"width": 3}) == grid_points(SubGrids, {"width": [3]})
    assert expand([{"C": 0.1}, {"C": 1.0}, {"C": 0.1}]) == [{"C": 0.1}, {"C": 1.0}]  # explicit settings, once each


def test_the_contract_accepts_sub_grids_and_rejects_malformed_ones():
    assert all(r.status == "passed" for r in check_method(SubGrids, ["interface", "hyperparameters"]))

    class NotAGrid(SubGrids):
        name = "leaves_not_a_grid"
        grid = [{"mode": ["a"]}, "width"]

    class EmptyValues(SubGrids):
        name = "leaves_empty_values"
        grid = [{"mode": ["a"]}, {"width": []}]

    for bad in (NotAGrid, EmptyValues):
        result = check_method(bad, ["hyperparameters"])[0]
        assert result.status == "failed" and "grid" in result.message
