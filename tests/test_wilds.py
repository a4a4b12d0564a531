"""WILDS adapters on tiny on-disk copies read by the real ``wilds`` loaders; official metrics
checked against ``wilds``' own ``eval()`` (its ``torch_scatter`` group averaging replaced, for the
test only, by an equivalent written with plain torch)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from shiftbench.dataset import Split
from shiftbench.datasets import _wilds_eval as official
from shiftbench.datasets import load
from shiftbench.datasets import wilds as wilds_adapter
from shiftbench.errors import MissingDataError, ShiftbenchError

sys.path.insert(0, str(Path(__file__).parent))
import wilds_fixtures  # noqa: E402


def _scatter(src: torch.Tensor, index: torch.Tensor, dim_size: int, reduce: str) -> torch.Tensor:
    """torch_scatter.scatter(..., reduce='mean') on a 1-D tensor: per-index mean, 0 where empty."""
    assert reduce == "mean"
    sums = torch.zeros(dim_size, dtype=src.dtype).index_add_(0, index, src)
    counts = torch.zeros(dim_size, dtype=src.dtype).index_add_(0, index, torch.ones_like(src))
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums))


@pytest.fixture
def fake_torch_scatter(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_scatter", types.SimpleNamespace(scatter=_scatter))


@pytest.fixture(scope="module")
def wilds_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wilds")
    for build in wilds_fixtures.BUILDERS.values():
        build(root)
    return root


def _dataset(root: Path, name: str, **options):
    return load(f"wilds/{name}", root_dir=str(root), **options)


def _predictions(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
    """All correct, all wrong-ish, and two random predictions of a split."""
    return [y.copy(), (y + 1) % n_classes, rng.integers(0, n_classes, len(y)), np.where(rng.random(len(y)) < 0.5, y, 0)]


def _assert_same_results(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(float(value), rel=1e-6, abs=1e-7), key  # WILDS computes in float32


@pytest.mark.parametrize("name", wilds_fixtures.CLASSIFICATION)
def test_official_metrics_equal_wilds_eval(wilds_root, name, fake_torch_scatter):
    ds = _dataset(wilds_root, name)
    rng = np.random.default_rng(0)
    for split in ds.splits:
        subset = ds.wilds.get_subset(split)  # wilds' own labels and metadata, independent of our tables
        y_true, metadata = subset.y_array, subset.metadata_array
        for y_pred in _predictions(ds.split(split).y, ds.n_classes, rng):
            theirs, _ = ds.wilds.eval(torch.as_tensor(y_pred), y_true, metadata)
            _assert_same_results(ds.official_metrics(split, y_pred), theirs)


def _box_predictions(truth: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """Jittered true boxes, some dropped, plus spurious ones, with scores around the 0.5 threshold."""
    preds = []
    for t in truth:
        boxes = t["boxes"][rng.random(len(t["boxes"])) < 0.8] + rng.normal(0, 8, (1, 4))
        boxes = np.concatenate([boxes, rng.uniform(0, 900, (rng.integers(0, 3), 4)).cumsum(axis=1) % 1000])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 5)
        preds.append({"boxes": torch.as_tensor(boxes).float(), "scores": torch.as_tensor(rng.uniform(0.3, 1, len(boxes)))})
    return preds


def test_globalwheat_detection_metrics_equal_wilds_eval(wilds_root, fake_torch_scatter):
    ds = _dataset(wilds_root, "globalwheat", image_size=32)
    assert ds.task == "detection" and set(ds.splits) == {"train", "val", "test", "id_val", "id_test"}
    assert ds.grouper.columns == ["session"]
    rng = np.random.default_rng(0)
    for split in ds.splits:
        subset = ds.wilds.get_subset(split)
        preds = _box_predictions(ds.split(split).y, rng)
        theirs, _ = ds.wilds.eval(preds, [ds.wilds.y_array[i] for i in subset.indices], subset.metadata_array)
        ours = ds.official_metrics(split, preds)
        _assert_same_results(ours, theirs)
        assert 0 < ours["detection_acc_avg_dom"] < 1
    assert ds.split("test").inputs(np.array([0])).shape == (1, 32, 32, 3)


def test_poverty_regression_through_the_adapter_equals_wilds_eval(wilds_root, fake_torch_scatter):
    ds = _dataset(wilds_root, "poverty")
    assert ds.task == "regression" and ds.n_classes == 0 and ds.grouper.columns == ["urban"]
    assert {k: len(s) for k, s in ds.splits.items()} == {"train": 40, "id_val": 1000, "id_test": 1000, "val": 10, "test": 10}
    rng = np.random.default_rng(0)
    for split in ds.splits:
        subset = ds.wilds.get_subset(split)
        y_pred = ds.split(split).y + rng.normal(0, 0.5, len(subset))
        theirs, _ = ds.wilds.eval(torch.as_tensor(y_pred).float().unsqueeze(1), subset.y_array, subset.metadata_array)
        ours = ds.official_metrics(split, y_pred)
        assert set(ours) == set(theirs)
        for key in theirs:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), key
    tiles = ds.split("test").inputs(np.array([0, 1]))
    assert tiles.shape == (2, 4, 4, 8) and tiles.dtype == np.float32  # channel-last
    np.testing.assert_allclose(tiles[:, 0, 0, 0], ds.split("test").y[:2], rtol=1e-6)


def test_splits_metadata_and_grouper_follow_wilds(wilds_root):
    ds = _dataset(wilds_root, "camelyon17")
    assert ds.name == "wilds/camelyon17" and ds.n_classes == 2
    assert set(ds.splits) == {"train", "id_val", "val", "test"}  # camelyon17 has no id_test
    assert ds.grouper.columns == ["slide"]
    test = ds.split("test")
    assert list(test.metadata.columns) == ["hospital", "slide", "y", "from_source_domain"]
    assert (test.metadata["hospital"] == 2).all() and (ds.split("val").metadata["hospital"] == 1).all()
    np.testing.assert_array_equal(test.y, test.metadata["y"])
    fm = _dataset(wilds_root, "fmow")
    assert set(fm.splits) == {"train", "id_val", "id_test", "val", "test"}
    assert sum(len(s) for s in fm.splits.values()) == 22  # the 2 'seq' rows are dropped, as in WILDS
    assert "Other" in fm.metadata_maps["region"]


def test_headline_metrics_by_name(wilds_root):
    expected = {"camelyon17": "acc_avg", "waterbirds": "acc_wg", "iwildcam": "F1-macro_all",
                "fmow": "acc_worst_region", "civilcomments": "acc_wg", "amazon": "10th_percentile_acc"}
    for name, metric in expected.items():
        ds = _dataset(wilds_root, name)
        assert ds.headline_metric == metric
        s = ds.split("test")
        summary = ds.evaluate("test", s.y)
        assert summary[metric] == pytest.approx(1.0) and summary["acc_avg"] == pytest.approx(1.0)
        assert not any(":" in k for k in summary)  # per-group entries stay in official_metrics


def test_images_load_lazily_resized_uint8(wilds_root, tmp_path):
    ds = _dataset(wilds_root, "waterbirds", image_size=32)
    x = ds.split("train").inputs(np.array([0, 3]))
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    # colour encodes the label in the fixture: red for landbirds, blue for waterbirds
    y = ds.split("train").y[[0, 3]]
    assert all((img[..., 2].mean() > img[..., 0].mean()) == bool(label) for img, label in zip(x, y))
    a = _dataset(wilds_root, "waterbirds", image_size=32).split("train").fingerprint
    assert a != _dataset(wilds_root, "waterbirds", image_size=64).split("train").fingerprint


def test_text_inputs_are_raw_strings_and_unlabelled_pool(wilds_root):
    ds = _dataset(wilds_root, "civilcomments")
    text = ds.split("train").inputs(slice(0, 3))
    assert text.dtype == object and all(isinstance(t, str) for t in text)
    pool = ds.unlabelled["extra_unlabeled"]
    assert len(pool) == 10 and "y" not in pool.metadata.columns
    assert isinstance(pool.inputs(np.array([0]))[0], str)
    info = ds.info()
    assert list(info["split"]) == ["train", "val", "test", "extra_unlabeled"]
    assert list(info["labelled"]) == [True, True, True, False]


def test_missing_image_file_names_the_path(tmp_path):
    wilds_fixtures.camelyon17(tmp_path)
    ds = load("wilds/camelyon17", root_dir=str(tmp_path))  # inputs are not read here ...
    next((tmp_path / "camelyon17_v1.0" / "patches").rglob("*.png")).unlink()
    with pytest.raises(MissingDataError, match=r"\.png"):  # ... but when a model asks for them
        for split in ds.splits.values():
            split.inputs()


def test_missing_data_names_path_command_and_size(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load("wilds/camelyon17", root_dir=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / "camelyon17_v1.0" / "RELEASE_v1.0.txt") in message
    assert "shiftbench data download wilds/camelyon17" in message
    assert "10.7 GB" in message


def test_malformed_metadata_names_file_and_row(tmp_path):
    data_dir = wilds_fixtures.waterbirds(tmp_path)
    path = data_dir / "metadata.csv"
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "bird?"  # the y column of the third data row
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ShiftbenchError, match=r"metadata\.csv: row 3 .*column 'y' is 'bird\?'"):
        load("wilds/waterbirds", root_dir=str(tmp_path))


def test_missing_metadata_column_is_named(tmp_path):
    data_dir = wilds_fixtures.iwildcam(tmp_path)
    import pandas as pd

    pd.read_csv(data_dir / "metadata.csv").drop(columns=["location_remapped"]).to_csv(data_dir / "metadata.csv", index=False)
    with pytest.raises(ShiftbenchError, match=r"metadata\.csv: missing column\(s\) \['location_remapped'\]"):
        load("wilds/iwildcam", root_dir=str(tmp_path))


def test_every_wilds_dataset_is_registered():
    from shiftbench import datasets

    names = {"iwildcam", "camelyon17", "rxrx1", "ogb-molpcba", "globalwheat", "civilcomments", "fmow", "poverty",
             "amazon", "py150", "waterbirds", "celebA"}
    assert {f"wilds/{n}" for n in names} <= set(datasets.names())
    cls = datasets.registry.get("wilds/poverty")
    assert cls.download_command == "shiftbench data download wilds/poverty" and cls.task == "regression"


# ---- download: sizes, confirmation, delegation to the WILDS downloader ----

class _FakeDownloader:
    """Stands in for wilds.get_dataset(download=True): writes the fixture, as the real download would."""

    def __init__(self):
        self.calls = []

    def __call__(self, dataset, root_dir, download, unlabeled=False, **kwargs):
        self.calls.append(dataset)
        wilds_fixtures.BUILDERS[dataset](Path(root_dir))


def test_download_asks_before_a_multi_gb_archive(tmp_path, monkeypatch, capsys):
    fake = _FakeDownloader()
    monkeypatch.setattr(wilds_adapter.import_wilds(), "get_dataset", fake)
    with pytest.raises(ShiftbenchError, match="cancelled"):
        wilds_adapter.download("wilds/camelyon17", tmp_path, ask=lambda prompt: "n")
    assert fake.calls == [] and "10.7 GB" in capsys.readouterr().out
    path = wilds_adapter.download("camelyon17", tmp_path, ask=lambda prompt: "y")
    assert fake.calls == ["camelyon17"] and (path / "RELEASE_v1.0.txt").exists()
    monkeypatch.undo()
    assert load("wilds/camelyon17", root_dir=str(tmp_path)).split("train").y.shape == (12,)


def test_download_small_archive_without_asking_and_yes_flag(tmp_path, monkeypatch):
    fake = _FakeDownloader()
    monkeypatch.setattr(wilds_adapter.import_wilds(), "get_dataset", fake)

    def never(prompt):
        raise AssertionError("must not ask")

    wilds_adapter.download("civilcomments", tmp_path, ask=never)  # 91 MB: no question
    wilds_adapter.download("fmow", tmp_path, yes=True, ask=never)  # 53.9 GB but --yes
    assert fake.calls == ["civilcomments", "fmow"]
    wilds_adapter.download("fmow", tmp_path, ask=never)  # already there: nothing to do
    assert fake.calls == ["civilcomments", "fmow"]


def test_download_reports_an_incomplete_download(tmp_path, monkeypatch):
    monkeypatch.setattr(wilds_adapter.import_wilds(), "get_dataset", lambda **kw: None)
    with pytest.raises(ShiftbenchError, match="did not complete"):
        wilds_adapter.download("civilcomments", tmp_path)


# ---- official metrics of the datasets without a fixture, against wilds' metric classes ----

def _grouper(fields: list[str], metadata: np.ndarray, metadata_map=None):
    from wilds.common.grouper import CombinatorialGrouper

    stub = SimpleNamespace(metadata_fields=fields, metadata_map=metadata_map, metadata_array=torch.as_tensor(metadata))
    return CombinatorialGrouper(stub, [fields[0]])


def test_poverty_mse_and_r_equal_wilds(fake_torch_scatter):
    from wilds.common.metrics.all_metrics import MSE, PearsonCorrelation
    from wilds.datasets.wilds_dataset import WILDSDataset

    rng = np.random.default_rng(1)
    n = 40
    metadata = np.stack([rng.integers(0, 2, n), rng.normal(size=n), rng.integers(0, 5, n)], axis=1).astype(float)
    grouper = _grouper(["urban", "y", "country"], metadata)
    y = metadata[:, 1:2]
    y_pred = y + rng.normal(0, 0.5, (n, 1))
    theirs = {}
    for metric in (MSE(), PearsonCorrelation()):
        theirs.update(WILDSDataset.standard_group_eval(metric, grouper, torch.as_tensor(y_pred).float(),
                                                       torch.as_tensor(y).float(), torch.as_tensor(metadata))[0])
    ours = official.poverty(SimpleNamespace(_eval_grouper=grouper), y[:, 0], y_pred[:, 0], metadata)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), key


def test_globalwheat_detection_accuracy_equals_wilds():
    from wilds.common.metrics.all_metrics import DetectionAccuracy

    rng = np.random.default_rng(2)
    metric = DetectionAccuracy()
    truths, preds = [], []
    for n_true, n_pred in [(0, 0), (0, 2), (3, 0), (4, 4), (5, 7), (2, 6), (6, 3)]:
        centres = rng.uniform(0, 100, (n_true, 2))
        true = np.concatenate([centres, centres + rng.uniform(10, 30, (n_true, 2))], 1)
        picks = rng.integers(0, max(n_true, 1), n_pred)
        base = true[picks] if n_true else rng.uniform(0, 100, (n_pred, 4))
        pred = base + rng.normal(0, 4, (n_pred, 4))
        pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
        truths.append({"boxes": torch.as_tensor(true).float()})
        preds.append({"boxes": torch.as_tensor(pred).float(), "scores": torch.as_tensor(rng.uniform(0.3, 1, n_pred))})
    theirs = metric._compute_element_wise(preds, truths).numpy()
    ours = [official.detection_accuracy(t["boxes"].numpy(), p["boxes"].numpy()[p["scores"].numpy() > 0.5])
            for t, p in zip(truths, preds)]
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert 0 < np.mean(ours) < 1


def test_ogb_average_precision_equals_ogb_evaluator():
    with wilds_adapter._without_version_check():
        evaluate = pytest.importorskip("ogb.graphproppred").Evaluator("ogbg-molpcba")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (60, 128)).astype(float)
    y[rng.random(y.shape) < 0.3] = np.nan
    y[:, 5] = np.where(np.isnan(y[:, 5]), np.nan, 1.0)  # a task with one class only is skipped
    scores = y + rng.normal(0, 1, y.shape)
    scores = np.nan_to_num(scores)
    assert official.ogb_molpcba(None, y, scores, None)["ap"] == pytest.approx(evaluate.eval({"y_true": y, "y_pred": scores})["ap"])


def test_py150_accuracy_by_token_type():
    types = {"class": 0, "method": 1, "punctuation": 2, "keyword": 3, "builtin": 4, "literal": 5,
             "other_identifier": 6, "masked": -100}
    tok = np.array([[0, 1, 2, -100], [1, 6, 5, -100]])
    y = np.array([[10, 11, 12, np.nan], [20, 21, 22, np.nan]])
    pred = np.array([[10, 0, 12, 7], [20, 21, 0, 7]])
    metadata = np.concatenate([np.zeros((2, 1)), tok, np.ones((2, 1))], axis=1)  # repo, tok types, from_source_domain
    out = official.py150(SimpleNamespace(_TYPE2ID=types), y, pred, metadata)
    assert out["acc"] == pytest.approx(2 / 3)  # class/method tokens: 10 ok, 11 wrong, 20 ok
    assert out["Acc (Overall)"] == pytest.approx(4 / 6)
    assert out["Acc (literal)"] == 0.0 and out["Acc (keyword)"] == 0.0  # absent type -> 0, as in WILDS


def test_evaluate_rejects_bad_predictions(wilds_root):
    ds = _dataset(wilds_root, "camelyon17")
    with pytest.raises(ShiftbenchError, match="entries but"):
        ds.evaluate("test", np.zeros(3, dtype=int))
    with pytest.raises(ShiftbenchError, match="only 2 classes"):
        ds.evaluate("test", np.full(len(ds.split("test")), 5))


def test_split_subset_keeps_task_and_evaluates(wilds_root):
    ds = _dataset(wilds_root, "fmow")
    sub = ds.split("test").subset(np.array([0, 2]))
    assert isinstance(sub, Split) and len(sub) == 2
    assert ds.evaluate(sub, sub.y)["acc_avg"] == 1.0


def test_extra_packages_are_named_before_loading(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # as if not installed
    with pytest.raises(ShiftbenchError, match="pip install torch_geometric"):
        load("wilds/ogb-molpcba", root_dir=str(tmp_path))
    with pytest.raises(ShiftbenchError, match="pip install torch_geometric"):
        wilds_adapter.download("ogb-molpcba", tmp_path, yes=True)


def test_unlabelled_pools_can_be_switched_off_from_text_options(wilds_root):
    assert not _dataset(wilds_root, "civilcomments", unlabelled="false").unlabelled


def test_wilds_is_imported_without_its_pypi_version_check():
    import subprocess

    code = ("from shiftbench.datasets.wilds import import_wilds; import_wilds(); import sys, wilds.version as v; "
            "assert v.check_outdated is None and 'outdated' not in sys.modules; print('no check')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no check" in done.stdout, done.stderr
