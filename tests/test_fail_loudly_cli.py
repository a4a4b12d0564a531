"""Bad input fails before anything is computed, with one `shiftbench: error:` line and exit 2, through the
real command line; progress off a terminal is logged; Ctrl-C says how many cells are stored and exits 130."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from shiftbench.cli import main
from shiftbench.progress import LogProgress


def run(tmp_path: Path, *overrides: str) -> list[str]:
    return ["run", "experiment=smoke", "dataset.scenarios=[{target:test}]", "seed=[0]", "progress=false",
            f"store_dir={tmp_path / 'store'}", f"results_dir={tmp_path / 'results'}", *overrides]


@pytest.mark.parametrize("overrides, message", [
    (["method=[lame]", "+grid.lame.k=[0]"], "lame: k must be an integer >= 1"),
    (["method=[lame]", "+grid.lame.k=[2.7]"], "got 2.7"),
    (["+grid.bn_adpat.momentum=[0.1]"], "grid overrides name methods that are not in this run: ['bn_adpat']"),
    (["seed=[abc]"], "seed must be an integer"),
    (["++dataset.options.n_train=-5"], "n_train must be an integer >= 10"),
    (["++dataset.options.n_trian=500"], "dataset 'digits' has no options ['n_trian']"),
    (["++dataset.options.split_seed=3"], "follows the run's seed"),
    (["method=[no_such_method]"], "unknown method 'no_such_method'"),
    (["method=[tent]", "+grid.tent.lr=[-1]"], "tent: lr must be"),
    (["selection.protocl=none"], "unknown config key 'selection.protocl' in override 'selection.protocl=none'; "
                                 "valid keys of selection: n_splits, protocol"),
])
def test_config_errors_fail_before_computing(tmp_path, capsys, overrides, message):
    assert main(run(tmp_path, *overrides)) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftbench: error:") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "store" / "records").exists() or not list((tmp_path / "store" / "records").iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_gpu_is_a_config_error(tmp_path, capsys):
    assert main(run(tmp_path, "device=cuda")) == 2
    assert "torch sees no CUDA GPU" in capsys.readouterr().err


def test_an_unwritable_results_dir_fails_before_computing(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(run(tmp_path, f"results_dir={blocker / 'results'}")) == 2
    assert "cannot write the results dir" in capsys.readouterr().err
    assert not (tmp_path / "store" / "records").exists()


def test_unknown_metric_and_reference_name_what_exists(tmp_path, capsys, cache_dir):
    assert main(run(tmp_path, "method=[source_only]", "metric=nope")) == 2
    err = capsys.readouterr().err
    assert "dataset 'digits' does not report metric 'nope'" in err and "acc_avg" in err
    assert not (tmp_path / "store" / "records").exists()  # refused before computing
    assert main(run(tmp_path, "method=[source_only]")) == 0
    store = str(tmp_path / "store")
    assert main(["table", "--store", store, "--metric", "nope"]) == 2
    assert main(["table", "--store", store, "--reference", "nope"]) == 2
    assert "reference method 'nope' has no records here; methods: source_only" in capsys.readouterr().err


def test_progress_off_a_terminal_logs_done_total_and_eta():
    out = io.StringIO()
    with LogProgress(250, stream=out, every=100, interval=1e9) as bar:
        for _ in range(250):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0].split(",")[0] for line in lines] == ["cells 100/250", "cells 200/250", "cells 250/250"]
    assert "ETA" in lines[0] and "ETA" not in lines[-1]


SLOW = '''
import time
from shiftbench.families import OutputAdapter
from shiftbench.hyperparameters import Float


class Slow(OutputAdapter):
    """Test plugin: the source predictions, slowly."""

    name = "test_slow"
    hyperparameters = {"pause": Float(0.2, at_least=0)}
    grid = {"pause": [0.2, 0.3, 0.4, 0.5]}

    def process(self, batch):
        time.sleep(self.pause / 10)
        return batch.probs
'''


@pytest.mark.slow
def test_ctrl_c_says_how_many_cells_are_stored_and_that_the_command_resumes(tmp_path, cache_dir):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "test_slow.py").write_text(SLOW)
    code = ("import sys, shiftbench.methods as m; m.__path__.append(sys.argv.pop(1)); "
            "from shiftbench.cli import main; sys.exit(main(sys.argv[1:]))")
    args = run(tmp_path, "method=[test_slow]", "seed=[0,1]")
    env = {**os.environ, "SHIFTBENCH_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(plugins), *args], stderr=subprocess.PIPE, text=True, env=env)
    records = tmp_path / "store" / "records"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(records.glob("*.json")) if records.exists() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    stored = len(list(records.glob("*.json")))
    assert f"interrupted: {stored} of 8 cells are stored" in err
    assert "running the same command again resumes" in err and "Traceback" not in err


def test_a_bad_job_in_a_sweep_stops_the_sweep_before_any_job_runs(tmp_path, capsys):
    args = ["run", "-m", "experiment=smoke", "method=source_only,no_such_method", "seed=[0]",
            f"store_dir={tmp_path / 'store'}", f"results_dir={tmp_path / 'results'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftbench: error: sweep job") and "method=no_such_method" in err and err.count("\n") == 1
    assert not (tmp_path / "store").exists()


def test_an_unknown_key_in_a_sweep_lists_the_valid_keys_before_any_job_runs(tmp_path, capsys):
    assert main(["run", "-m", "experiment=smoke", "methd=source_only,lame", f"store_dir={tmp_path / 'store'}"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'methd' in override 'methd=source_only'" in err and err.count("\n") == 1
    assert "valid keys: " in err and "method" in err and "seed" in err
    assert not (tmp_path / "store").exists()


def test_unknown_name_errors_survive_pickling_across_worker_processes():
    import pickle

    from shiftbench.errors import MissingDataError, UnknownNameError

    for exc in (UnknownNameError("method", "x", ["a", "b"]), MissingDataError("data", "/p", "fetch it", "1 GB")):
        assert str(pickle.loads(pickle.dumps(exc))) == str(exc)


def test_a_missing_data_root_is_the_data_info_message_before_computing(tmp_path, capsys):
    args = ["run", "dataset=wilds/camelyon17", "dataset.options.root_dir=/nonexistent", "seed=[0]",
            f"store_dir={tmp_path / 'store'}", f"results_dir={tmp_path / 'results'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert main(["data", "info", "wilds/camelyon17", "-o", "root_dir=/nonexistent"]) == 2
    assert capsys.readouterr().err == err and "WILDS camelyon17 v1.0 not found at /nonexistent" in err
    assert not (tmp_path / "store" / "records").exists() or not list((tmp_path / "store" / "records").iterdir())
