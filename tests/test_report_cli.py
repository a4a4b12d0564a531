"""`shiftbench run` and `shiftbench table` print the same leaderboard for the same records."""

from __future__ import annotations

import pytest

from test_trust_cli import HALF_FAILING, shiftbench

pytestmark = pytest.mark.slow


def test_table_prints_the_markdown_the_run_printed_and_wrote(tmp_path, cache_dir):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "test_half_failing.py").write_text(HALF_FAILING)
    run = shiftbench(plugins, "run", "method=[source_only,bn_adapt,test_half_failing]", "model=[small_cnn]",
                     "seed=[0,1]", "progress=false", "+dataset.options.n_train=1000", "+dataset.options.n_val=300",
                     "+dataset.options.n_test=300",
                     "dataset.scenarios=[{target:test},{target:id_test,label_shift:0.5},"
                     "{target:test,corruption:gaussian_noise,severity:3}]",
                     f"store_dir={tmp_path / 'store'}", f"results_dir={tmp_path / 'results'}")
    assert run.returncode == 1, run.stderr  # the plugin fails on id_test: the tables are written all the same
    written = (tmp_path / "results" / "leaderboard.md").read_text()
    assert written in run.stdout
    assert "- 2 of 18 cells failed" in written and "Regenerate: `shiftbench run" in written
    assert (tmp_path / "results" / "acc_avg_vs_severity.png").exists()

    out = tmp_path / "table.md"
    table = shiftbench(plugins, "table", "--format", "md", "--store", str(tmp_path / "store"), "--output", str(out))
    assert table.returncode == 0, table.stderr
    lines = written.splitlines()
    regenerate = next(i for i, line in enumerate(lines) if line.startswith("Regenerate: "))
    assert out.read_text() == "\n".join(lines[:regenerate] + lines[regenerate + 2:]) + "\n"
