"""Submitting a method: the new-method scaffold for every family, and entry-point discovery of an
external plugin package."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shiftbench import methods
from shiftbench.cli import main
from shiftbench.contract import check_method
from shiftbench.errors import ShiftbenchError
from shiftbench.scaffold import class_name, new_method

FIXTURE = Path(__file__).parent / "fixtures" / "external_plugin"


def import_file(path: Path, module: str):
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("family", ["output", "tta", "domain", "estimator"])
def test_scaffolded_plugin_works_and_passes_the_contract(tmp_path, family):
    name = f"my_new_{family}"
    plugin, test = new_method(name, family, tmp_path / "methods", tmp_path / "tests")
    assert plugin.name == f"{name}.py" and test.name == f"test_method_{name}.py"
    cls = getattr(import_file(plugin, f"scaffolded_{name}"), class_name(name))
    assert cls.name == name and cls.family == family and cls.grid
    assert "shiftbench check-method" in plugin.read_text()  # documented: how to check and run it
    failed = [r for r in check_method(cls) if r.status != "passed"]
    assert not failed, failed
    compile(test.read_text(), str(test), "exec")


def test_scaffold_refuses_bad_or_taken_names_and_existing_files(tmp_path):
    with pytest.raises(ShiftbenchError, match="lower-case Python identifier"):
        new_method("My-Method", "output", tmp_path, tmp_path)
    with pytest.raises(ShiftbenchError, match="already exists"):
        new_method("lame", "output", tmp_path, tmp_path)
    with pytest.raises(ShiftbenchError, match="valid families: output, tta, domain, estimator"):
        new_method("fresh_one", "magic", tmp_path, tmp_path)
    new_method("fresh_one", "output", tmp_path, tmp_path)
    with pytest.raises(ShiftbenchError, match="--force"):
        new_method("fresh_one", "output", tmp_path, tmp_path)


def test_cli_new_method_writes_a_plugin_that_check_method_passes(tmp_path, capsys, monkeypatch):
    assert main(["new-method", "cli_made", "--family", "estimator", "--methods-dir", str(tmp_path / "m"),
                 "--tests-dir", str(tmp_path / "t")]) == 0
    assert (tmp_path / "m" / "cli_made.py").exists() and (tmp_path / "t" / "test_method_cli_made.py").exists()
    assert "shiftbench check-method cli_made" in capsys.readouterr().out
    registry = fresh_registry()  # as if the file had been written to methods/ and discovered there
    registry.register(import_file(tmp_path / "m" / "cli_made.py", "scaffolded_cli_made").CliMade)
    monkeypatch.setattr(methods, "registry", registry)
    assert main(["check-method", "cli_made"]) == 0
    assert "cli_made: 7/7 checks passed" in capsys.readouterr().out
    generated = import_file(tmp_path / "t" / "test_method_cli_made.py", "scaffolded_test_cli_made")
    generated.test_cli_made_is_discovered_with_a_valid_grid()


def test_the_templates_are_package_data_of_the_new_api():
    from shiftbench.scaffold import FAMILIES, template

    for family in FAMILIES:
        text = template(f"method_{family}.py.txt").template
        assert "hyperparameters = {" in text and "grid = " in text and "def __init__" not in text
        assert not any(old in text for old in ("def adapt(", "def setup(", "def step(", "estimate_accuracy", "uses_features"))


def test_list_methods_verbose_shows_each_declared_hyperparameter(capsys):
    assert main(["list", "methods"]) == 0
    short = capsys.readouterr().out
    assert main(["list", "methods", "-v"]) == 0
    verbose = capsys.readouterr().out
    assert "grid=" in short and "integer >= 1" not in short
    assert 'affinity="knn"  (one of knn, rbf, linear)  how features are compared' in verbose
    assert "k=5  (integer >= 1)" in verbose and "(no hyperparameters)" in verbose  # source_only declares none


def fresh_registry():
    """A registry configured like ``shiftbench.methods.registry`` but with nothing scanned yet."""
    return dataclasses.replace(methods.registry)


def entry_points_of(pyproject: Path) -> dict[str, dict[str, str]]:
    return tomllib.loads(pyproject.read_text())["project"]["entry-points"]


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    """Install the fixture the light way: its package plus a dist-info (METADATA, entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    shutil.copytree(FIXTURE / "shiftbench_demo_plugin", site / "shiftbench_demo_plugin")
    dist = site / "shiftbench_demo_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shiftbench-demo-plugin\nVersion: 0.1.0\n")
    groups = entry_points_of(FIXTURE / "pyproject.toml")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items()))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry = fresh_registry()
    cls = registry.get("demo_confidence_floor")
    assert cls.__module__ == "shiftbench_demo_plugin" and "lame" in registry.names()
    assert all(r.status == "passed" for r in check_method(cls))


@pytest.mark.slow
def test_pip_installed_plugin_is_discovered(tmp_path):
    """The real thing: pip builds and installs the fixture (offline, no dependencies) into a target folder."""
    target = tmp_path / "target"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(FIXTURE)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"pip could not build the fixture offline: {proc.stderr[-500:]}")
    code = ("import dataclasses, shiftbench.methods as m; r = dataclasses.replace(m.registry); "
            "c = r.get('demo_confidence_floor'); print(c.__module__, c.grid)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "shiftbench_demo_plugin {'floor': [0.0, 0.1]}"
