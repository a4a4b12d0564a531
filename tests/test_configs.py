"""Every shipped config composes and expands to cells with registered names; a WILDS run end to end."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from shiftbench.errors import ShiftbenchError
from shiftbench.runner import expand_cells

CONFIGS = resources.files("shiftbench.configs")


def config_names(group: str) -> list[str]:
    root = CONFIGS.joinpath(group)
    names = []
    for path in sorted(str(p) for p in root.rglob("*.yaml")) if hasattr(root, "rglob") else []:
        names.append(path.split(f"/{group}/", 1)[1][:-5])
    return names


def composed(overrides: list[str]) -> dict:
    with initialize_config_module("shiftbench.configs", version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)


@pytest.mark.parametrize("name", config_names("dataset"))
def test_dataset_configs_expand(name):
    cfg = composed([f"dataset={name}", "method=[source_only]", "seed=[0]"])
    cells = expand_cells(cfg)
    assert cells and all(c.dataset == cfg["dataset"]["name"] for c in cells)


@pytest.mark.parametrize("name", config_names("experiment"))
def test_experiment_configs_expand(name):
    assert expand_cells(composed([f"experiment={name}"]))


def test_default_config_is_the_offline_digits_benchmark():
    cfg = composed([])
    assert cfg["dataset"]["name"] == "digits" and set(cfg["method"]) >= {"source_only", "bn_adapt"}


@pytest.mark.parametrize("override,says", [
    ("+grid.lame.k=[-1]", "of method 'lame' is invalid: lame: k must be an integer >= 1; got -1"),
    ("+grid.lame.affinity=[cosine]", "of method 'lame' is invalid: lame: unknown affinity 'cosine'"),
    ("+grid.lame.kk=[3]", "grid for method 'lame' names unknown hyperparameters ['kk']"),
])
def test_a_bad_grid_override_fails_in_one_line_when_cells_are_expanded(override, says):
    with pytest.raises(ShiftbenchError) as err:
        expand_cells(composed(["method=[source_only,lame]", override]))
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_shiftbench_run_on_a_wilds_fixture(tmp_path, cache_dir):
    from wilds_fixtures import camelyon17

    camelyon17(tmp_path / "data")
    cmd = [sys.executable, "-m", "shiftbench.cli", "run", "dataset=wilds/camelyon17",
           f"dataset.options.root_dir={tmp_path / 'data'}", "+dataset.options.image_size=32",
           "model=[small_cnn]", "method=[source_only,bn_adapt]", "seed=0", "dataset.stream.batch_size=4",
           f"store_dir={tmp_path}/store", f"results_dir={tmp_path}/results", "progress=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = pd.read_csv(tmp_path / "results" / "records.csv")
    assert (records["status"] == "ok").all() and len(records) == 2 * 3
    assert set(records["scenario"].str.split(":").str[0]) == {"id_val", "val", "test"}
    assert records["metric.acc_avg"].between(0, 1).all()
