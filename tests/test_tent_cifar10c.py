"""``shiftbench reproduce tent-cifar10c``: the published figures as transcribed, the one-line refusal without
data or weights (before anything is computed), and the quick setting end to end offline, its ``ours`` column
checked against source / BN / Tent written out by hand on the same fixture files, network and batches."""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from shiftbench import cli, datasets, models
from shiftbench.corruptions import BENCHMARK_CORRUPTIONS
from shiftbench.reproduction_report import reproduce
from shiftbench.reproductions import tent_cifar10c as repro
from shiftbench.seeding import int_seed


def test_the_readme_means_are_the_means_of_its_corruption_columns():
    # the README rounds every entry to 0.1, so its mean and the mean of its rounded entries differ by < 0.05
    for method, row in repro.README_TABLE.items():
        assert len(row) == 16
        assert abs(row[0] - np.mean(row[1:])) < 0.05, method
    assert (repro.PAPER[("source", "mean")], repro.PAPER[("norm", "mean")], repro.PAPER[("tent", "mean")]) == (43.5, 20.4, 18.6)
    assert repro.PAPER[("tent", "gaussian_noise")] == 24.8 and repro.PAPER[("source", "jpeg_compression")] == 30.3


def test_the_fixture_has_cifar10c_layout(tmp_path):
    repro.write_fixture(tmp_path, per_severity=3)
    folder = tmp_path / "CIFAR-10-C"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{c}.npy" for c in BENCHMARK_CORRUPTIONS] + ["labels.npy"])
    labels = np.load(folder / "labels.npy")
    assert labels.shape == (15,) and (labels[:3] == labels[12:]).all()
    images = np.load(folder / "fog.npy")
    assert images.shape == (15, 32, 32, 3) and images.dtype == np.uint8
    ds = datasets.load("cifar10-c", root_dir=str(tmp_path))
    assert len(ds.splits) == 75 and np.array_equal(ds.split("fog/5").inputs(), images[12:])


def test_without_data_it_stops_in_one_line_before_computing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHIFTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SHIFTBENCH_OFFLINE", "1")
    assert cli.main(["reproduce", "tent-cifar10c", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path / "data" / "CIFAR-10-C") in err
    assert "zenodo.org/record/2535967/files/CIFAR-10-C.tar" in err and "about 2.9 GB" in err

    repro.write_fixture(tmp_path / "data", per_severity=2)  # the data, but no checkpoint and no network
    assert cli.main(["reproduce", "tent-cifar10c", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Standard.pt" in err and "about 146 MB" in err and "curl -L" in err
    assert not (tmp_path / "cache" / "runs").exists() and not (tmp_path / "out").exists()


def hand_errors(root, per_severity: int, batch_size: int, cache) -> dict[tuple[str, str], float]:
    """Error (%) of source, BN and Tent at severity 5 on the fixture files, written out from the definitions:
    the same network (wrn_tiny, the runner's model seed) and the file's stored order cut into batches."""
    ds = datasets.load("cifar10-c", root_dir=str(root))
    model = models.build_model("wrn_tiny", ds, int_seed(0, "model"), cache)
    labels = np.load(root / "CIFAR-10-C" / "labels.npy").astype(np.int64)[4 * per_severity:]
    out = {}
    for name in BENCHMARK_CORRUPTIONS:
        x = model.preprocess(np.load(root / "CIFAR-10-C" / f"{name}.npy")[4 * per_severity:])
        batches = [np.arange(i, min(i + batch_size, len(labels))) for i in range(0, len(labels), batch_size)]
        with torch.no_grad():
            out[("source", name)] = (model.network.eval()(x).argmax(1).numpy() != labels).mean()
        for method in ("norm", "tent"):
            net = copy.deepcopy(model.network).train()
            net.requires_grad_(False)
            bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
            for bn in bns:  # batch statistics only, as the authors' norm.py and tent.py
                bn.track_running_stats, bn.running_mean, bn.running_var = False, None, None
                bn.requires_grad_(method == "tent")
            opt = torch.optim.Adam([p for bn in bns for p in (bn.weight, bn.bias)], lr=1e-3, betas=(0.9, 0.999))
            wrong = 0
            for index in batches:
                with torch.enable_grad():
                    logits = net(x[index])
                    if method == "tent":  # predict, then one step on the batch's mean softmax entropy
                        (-(logits.softmax(1) * logits.log_softmax(1)).sum(1)).mean().backward()
                        opt.step()
                        opt.zero_grad()
                wrong += int((logits.argmax(1).numpy() != labels[index]).sum())
            out[(method, name)] = wrong / len(labels)
    return {k: round(100 * v, 2) for k, v in out.items()}


def test_quick_setting_end_to_end_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    began = time.perf_counter()
    table = reproduce("tent-cifar10c", tmp_path / "out", quick=True)
    assert time.perf_counter() - began < 60
    folder = tmp_path / "out" / "tent-cifar10c-quick"
    text = (folder / "table.md").read_text()
    assert "quick: not the paper's setting" in text and "DequanWang/tent" in text
    records = pd.read_csv(folder / "records.csv")
    assert len(records) == 45 and (records["status"] == "ok").all()
    assert (records["model_weights"] == models.registry.get("wrn_tiny").PROVENANCE).all()
    assert set(records["method"]) == {"source", "norm", "tent"}

    assert list(table.columns) == ["method", "corruption", "ours", "paper", "delta"] and len(table) == 48
    for row in table.itertuples():
        assert row.paper == repro.PAPER[(row.method, row.corruption)]
        assert row.delta == pytest.approx(row.ours - row.paper, abs=0.011)
    (root,) = (tmp_path / "cache" / "fixtures").iterdir()
    expected = hand_errors(root, repro.QUICK["per_severity"], repro.QUICK["batch_size"], tmp_path / "cache")
    ours = {(r.method, r.corruption): r.ours for r in table.itertuples() if r.corruption != "mean"}
    assert ours == expected
    for other in ("norm", "tent"):  # the methods differ on this fixture: each comparison has teeth
        assert any(ours[(other, c)] != ours[("source", c)] for c in BENCHMARK_CORRUPTIONS), other
    assert any(ours[("tent", c)] != ours[("norm", c)] for c in BENCHMARK_CORRUPTIONS)
    for method in repro.METHODS:
        mean = table[(table["method"] == method) & (table["corruption"] == "mean")]["ours"].item()
        assert mean == pytest.approx(np.mean([expected[(method, c)] for c in BENCHMARK_CORRUPTIONS]), abs=0.006)
