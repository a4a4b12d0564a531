"""The digits adapter and the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from shiftbench.cli import lists_for_single_run, main


def test_digits_splits_are_disjoint_stratified_and_seeded(digits_small):
    d = digits_small
    assert {k: len(s) for k, s in d.splits.items()} == {"train": 1000, "id_val": 300, "id_test": 300, "val": 898, "test": 899}
    seen = np.concatenate([d.split(k).inputs().reshape(len(d.split(k)), -1) for k in ("train", "id_val", "id_test")])
    assert len(np.unique(seen, axis=0)) == len(seen)  # no image in two source splits
    assert np.all(np.bincount(d.split("train").y) == 100)
    for key in ("train", "test"):
        x = d.split(key).inputs()
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28)
    from shiftbench import datasets

    other = datasets.load("digits", n_train=1000, n_val=300, n_test=300, split_seed=1)
    assert d.split("train").fingerprint != other.split("train").fingerprint


def test_sklearn_digits_look_like_mnist(digits_small):
    target = digits_small.split("test").inputs().astype(float)
    source = digits_small.split("train").inputs().astype(float)
    assert target[:, :3, :].max() == 0 and target[:, :, :3].max() == 0  # MNIST-style empty border
    assert 0.5 < target.mean() / source.mean() < 2.0


def test_sweep_syntax_becomes_a_list_outside_multirun():
    assert lists_for_single_run(["seed=0,1,2", "method=[a,b]", "dataset=digits", "x='a,b'"]) == \
        ["seed=[0,1,2]", "method=[a,b]", "dataset=digits", "x='a,b'"]


def test_list_shows_plugins_with_grids(capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "bn_adapt" in out and "[tta]" in out and '"momentum"' in out


def test_list_shows_scorers_and_marks_the_oracle(capsys):
    assert main(["list", "scorers"]) == 0
    out = capsys.readouterr().out
    assert "snd" in out and "mixval" in out
    oracle_lines = [line for line in out.splitlines() if "oracle: uses target labels" in line]
    assert len(oracle_lines) == 1 and "oracle" in oracle_lines[0].split()[0]


def test_unknown_dataset_in_data_info_is_a_clear_error(capsys):
    assert main(["data", "info", "no_such_dataset"]) == 2
    assert "valid datasets:" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_writes_tables_and_a_rerun_computes_nothing(tmp_path, cache_dir):
    cmd = [sys.executable, "-m", "shiftbench.cli", "run", "experiment=smoke", "seed=0,1",
           f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "0 cached" in first.stdout and "source_only" in first.stdout
    table = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert set(table["method"]) == {"source_only", "bn_adapt"}
    assert (table["n_seeds"] == 2).all()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert "0 computed" in second.stdout and "0 misses" in second.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / "leaderboard.csv"), table)


@pytest.mark.slow
def test_cli_unknown_method_lists_valid_ones(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "shiftbench.cli", "run", "method=[nope]", f"store_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown method 'nope'" in proc.stderr and "source_only" in proc.stderr


def test_unknown_override_key_lists_valid_keys(capsys):
    assert main(["run", "methd=[source_only]"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'methd'" in err and "method" in err and "seed" in err


def test_nan_logits_are_caught_at_the_model_boundary(digits_small, cache_dir):
    import torch

    from shiftbench.cache import ArrayCache
    from shiftbench.errors import InvalidArrayError
    from shiftbench.model import SourceModel, image_preprocess

    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4))
    head = torch.nn.Linear(4, 10)
    head.bias.data[3] = float("nan")
    model = SourceModel("nan_model", backbone, head, image_preprocess(28, 1, (0.1,), (0.3,)), "nan-model-test")
    with pytest.raises(InvalidArrayError, match="logits of model 'nan_model' on split 'test' contains NaN"):
        model.outputs(digits_small.split("test"), ArrayCache(cache_dir / "nan-test"))


def test_small_cnn_weights_do_not_depend_on_the_thread_count(tmp_path):
    """Same seed, same weights, whatever torch's thread count (the regression baselines rely on it)."""
    import torch

    from shiftbench import datasets
    from shiftbench.models import registry

    dataset = datasets.load("digits", n_train=300, n_val=50, n_test=50)
    spec = registry.get("small_cnn")(epochs=1)
    threads = torch.get_num_threads()
    fingerprints = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            fingerprints.append(spec.build(dataset, 0, tmp_path / f"cache{n}").fingerprint)
    finally:
        torch.set_num_threads(threads)
    assert fingerprints[0] == fingerprints[1]
