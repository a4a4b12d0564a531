"""The describing commands start without the heavy packages, and the plugin index they read is never stale.

End to end (subprocesses, a private cache dir): once the index is built, ``list``, ``reproduce --list``,
``check-method --list``, ``--help`` and ``data info`` of an offline dataset import none of torch,
scikit-learn, skada, wilds or timm, and print byte for byte what the live registries print. In process
(a throwaway package standing in for the plugin folders, a counting stand-in for the import of every
plugin): editing, adding or removing a file rebuilds the index, rewriting a file unchanged does not, a
damaged index is rebuilt, and concurrent writers never expose a partial file to a reader. No timing here:
the figures are in benchmarks/bench_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shiftbench import plugin_index
from shiftbench.cli import main
from shiftbench.plugin_index import Catalog

HEAVY = ("torch", "sklearn", "skada", "wilds", "timm")
#: the commands that must start light once the index is warm
COMMANDS = (["list"], ["list", "methods"], ["list", "methods", "-v"], ["list", "datasets"], ["list", "scorers"],
            ["reproduce", "--list"], ["check-method", "--list"], ["--help"], ["data", "info", "digits"])
#: runs each command given (JSON) in one interpreter: stdout, stderr and the heavy modules imported so far
RUNNER = """
import contextlib, io, json, sys
from shiftbench.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # --help
            code = exc.code
    results.append([code, out.getvalue(), err.getvalue(), [m for m in %r if m in sys.modules]])
print(json.dumps(results))
""" % (HEAVY,)


def run_commands(commands: list[list[str]], cache: Path) -> list[tuple[int, str, str, list[str]]]:
    """Exit code, stdout, stderr and heavy modules after each command, run one after another in a fresh
    interpreter whose cache dir is ``cache``."""
    env = {**os.environ, "SHIFTBENCH_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(commands)], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return [tuple(r) for r in json.loads(proc.stdout)]


def test_a_warm_index_spares_the_heavy_imports_and_prints_what_the_plugins_say(tmp_path):
    # Other work may edit plugin files meanwhile (then the index is rightly rebuilt): retry until the
    # checkout held still from the reference run to the last warm run.
    for attempt in range(3):
        before = plugin_index.fingerprint([])
        cache = tmp_path / f"cache{attempt}"
        # reference: the first command builds the index by importing the plugins; the rest of that process
        # reads the live registries (a plugin package is imported), and stores data info's output
        reference = run_commands(list(COMMANDS), cache)
        warm = [run_commands([args], cache)[0] for args in COMMANDS]
        if plugin_index.fingerprint([]) == before:
            break
    else:
        pytest.skip("the plugin files changed during each of 3 attempts (other work in this checkout)")
    assert "torch" in reference[0][3]  # cold: built by importing the plugins
    for args, live, fast in zip(COMMANDS, reference, warm):
        assert fast[3] == [], (args, fast[3])
        assert fast[:3] == live[:3], args  # exit code, stdout and stderr byte for byte
    assert warm[-1][1].startswith("digits: 10 classes") and " train 3000" in warm[-1][1]


def test_the_index_covers_every_folder_the_registries_scan():
    import importlib

    roots = plugin_index.hashed_roots()
    for package in plugin_index.PLUGIN_PACKAGES.values():
        registry = importlib.import_module(package).registry
        assert set(importlib.import_module(registry.package).__path__) <= set(roots), package
    assert set(importlib.import_module("shiftbench").__path__) <= set(roots)  # the harness the plugins inherit from


@pytest.fixture
def fake_plugins(tmp_path, monkeypatch):
    """A throwaway package standing in for the plugin folders; builds of the index are counted."""
    package = tmp_path / "src" / "h6_fake_plugins"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "alpha.py").write_text("class Alpha: name = 'alpha'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setattr(plugin_index, "HASHED_PACKAGES", ("h6_fake_plugins",))
    monkeypatch.setattr(plugin_index, "plugins_imported", lambda: False)
    monkeypatch.setenv("SHIFTBENCH_CACHE_DIR", str(tmp_path / "cache"))
    builds = []

    def live_catalog() -> Catalog:
        names = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
        builds.append(names)
        return Catalog({"methods": {n: {"summary": (package / f"{n}.py").read_text()} for n in names}}, {}, "", {})

    monkeypatch.setattr(plugin_index, "live_catalog", live_catalog)
    return package, builds


def test_editing_adding_or_removing_a_plugin_file_rebuilds_the_index(fake_plugins):
    package, builds = fake_plugins
    methods = lambda: plugin_index.catalog().section("methods")  # noqa: E731
    assert list(methods()) == ["alpha"] and len(builds) == 1
    assert list(methods()) == ["alpha"] and len(builds) == 1  # warm: read from the index
    (package / "alpha.py").write_text("class Alpha: name = 'alpha'  # edited\n")
    assert methods()["alpha"]["summary"].endswith("# edited\n") and len(builds) == 2
    (package / "beta.py").write_text("class Beta: name = 'beta'\n")
    assert list(methods()) == ["alpha", "beta"] and len(builds) == 3
    (package / "beta.py").write_text("class Beta: name = 'beta'\n")  # rewritten unchanged: same hashes
    assert list(methods()) == ["alpha", "beta"] and len(builds) == 3
    (package / "beta.py").unlink()
    assert list(methods()) == ["alpha"] and len(builds) == 4
    assert list(methods()) == ["alpha"] and len(builds) == 4


def test_a_damaged_or_foreign_index_is_rebuilt(fake_plugins):
    _, builds = fake_plugins
    plugin_index.catalog()
    path = plugin_index.index_path()
    for damaged in ('{"format": 1, "fingerprint": ', json.dumps({"format": 0}), "[]"):
        path.write_text(damaged)
        assert list(plugin_index.catalog().section("methods")) == ["alpha"]
        assert json.loads(path.read_text())["format"] == plugin_index.FORMAT
    assert len(builds) == 4


def test_a_catalog_with_a_failed_kind_raises_for_that_kind_and_is_not_stored(fake_plugins, monkeypatch):
    broken = Catalog({"models": {}}, {"models": {}}, "", {}, failures={"methods": ValueError("two plugins named x")})
    monkeypatch.setattr(plugin_index, "live_catalog", lambda: broken)
    found = plugin_index.catalog()
    assert found.section("models") == {}
    with pytest.raises(ValueError, match="two plugins named x"):
        found.section("methods")
    assert not plugin_index.index_path().exists()


def test_concurrent_writers_never_show_a_reader_part_of_a_file(tmp_path):
    path = tmp_path / "index.json"
    plugin_index.atomic_write(path, json.dumps({"writer": -1}))
    payloads = [json.dumps({"writer": i, "padding": "x" * 200_000}) for i in range(4)]
    stop, seen, errors = threading.Event(), set(), []

    def write(text: str) -> None:
        for _ in range(25):
            plugin_index.atomic_write(path, text)

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(json.loads(path.read_text())["writer"])
            except ValueError as exc:  # a partial file
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert not errors and seen <= {-1, 0, 1, 2, 3}
    assert json.loads(path.read_text())["writer"] in range(4)
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]  # no temporary file left behind


def test_check_method_needs_a_name_or_list(capsys):
    assert main(["check-method"]) == 2
    assert "needs a method name" in capsys.readouterr().err


def test_the_index_lives_in_the_cache_dir_of_shiftbench_cache(monkeypatch, tmp_path):
    from shiftbench.cache import default_cache_dir

    monkeypatch.delenv("SHIFTBENCH_CACHE_DIR", raising=False)
    assert plugin_index.index_dir() == default_cache_dir() / "cli"
    monkeypatch.setenv("SHIFTBENCH_CACHE_DIR", str(tmp_path))
    assert plugin_index.index_dir() == default_cache_dir() / "cli" == tmp_path / "cli"


def test_entry_point_plugins_packages_are_hashed_and_an_unlocatable_one_disables_the_index(monkeypatch, tmp_path):
    import importlib.metadata
    import types

    located = types.ModuleType("h6_located")
    located.__file__ = str(tmp_path / "h6_located" / "__init__.py")
    monkeypatch.setitem(sys.modules, "h6_located", located)
    monkeypatch.setitem(sys.modules, "h6_nowhere", types.ModuleType("h6_nowhere"))  # no __file__
    points = {"shiftbench.methods": [importlib.metadata.EntryPoint("m", "h6_located.sub:M", "shiftbench.methods")]}
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points.get(group, []))
    assert plugin_index.entry_point_roots() == [str(tmp_path / "h6_located")]
    points["shiftbench.scorers"] = [importlib.metadata.EntryPoint("s", "h6_nowhere:S", "shiftbench.scorers")]
    assert plugin_index.entry_point_roots() is None
