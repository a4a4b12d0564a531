"""The describing commands start without the heavy packages, and the plugin index they read is never stale.

End to end (subprocesses, a private cache dir): once the index is built, ``list``, ``reproduce --list``,
``check-method --list``, ``--help``, ``data info`` of an offline dataset and ``new-method`` import none of
torch, scikit-learn, skada, wilds or timm, and print byte for byte what the live registries print;
``table`` over a store of current records prints what it prints with the plugins imported and imports
none of them but torch (which :mod:`shiftbench.families`, imported for the metrics it declares, still
imports at the top: an expected failure until it imports torch lazily). The code hashes computed from the plugins'
module names without importing them equal :func:`~shiftbench.identity.plugin_code` of every registered
plugin, and the key of a record recomputed from them equals the runner's cell key. In process
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
            ["list", "models"], ["list", "experiments"], ["list", "suites"],
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


def reference_and_warm(commands: list[list[str]], tmp_path: Path) -> tuple[list, list]:
    """Each command's result in the process that builds the index (``list`` first: it imports the plugins,
    so the commands after it read the live registries) and, each in a fresh interpreter, on the warm index.
    Other work may edit plugin files meanwhile (then the index is rightly rebuilt): retried until the
    checkout held still from the reference run to the last warm run."""
    for attempt in range(3):
        before = plugin_index.fingerprint([])
        cache = tmp_path / f"cache{attempt}"
        reference = run_commands([["list"], *commands], cache)
        warm = [run_commands([args], cache)[0] for args in commands]
        if plugin_index.fingerprint([]) == before:
            assert "torch" in reference[0][3]  # cold: built by importing the plugins
            return reference[1:], warm
    pytest.skip("the plugin files changed during each of 3 attempts (other work in this checkout)")


def test_a_warm_index_spares_the_heavy_imports_and_prints_what_the_plugins_say(tmp_path):
    # the reference process stores data info's output
    reference, warm = reference_and_warm(list(COMMANDS), tmp_path)
    for args, live, fast in zip(COMMANDS, reference, warm):
        assert fast[3] == [], (args, fast[3])
        assert fast[:3] == live[:3], args  # exit code, stdout and stderr byte for byte
    assert warm[-1][1].startswith("digits: 10 classes") and " train 3000" in warm[-1][1]


def test_new_method_checks_the_name_against_the_index_and_writes_the_plugin(tmp_path):
    fresh = ["new-method", "h19_fresh", "--family", "output", "--methods-dir", str(tmp_path / "m"),
             "--tests-dir", str(tmp_path / "t"), "--force"]  # --force: the warm run rewrites the reference's files
    taken = ["new-method", "tent", "--family", "tta", "--methods-dir", str(tmp_path / "m")]
    reference, warm = reference_and_warm([fresh, taken], tmp_path)
    for args, live, fast in zip([fresh, taken], reference, warm):
        assert fast[3] == [], (args, fast[3])
        assert fast[:3] == live[:3], args
    assert warm[0][0] == 0 and warm[0][1].startswith(f"wrote {tmp_path / 'm' / 'h19_fresh.py'}, ")
    assert (tmp_path / "m" / "h19_fresh.py").is_file() and (tmp_path / "t" / "test_method_h19_fresh.py").is_file()
    assert warm[1][0] == 2 and "a method named 'tent' already exists (shiftbench.methods.tent)" in warm[1][2]
    assert not (tmp_path / "m" / "tent.py").exists()


def run_store(root: Path, *overrides: str) -> Path:
    """The record store of a CLI run with ``overrides`` under ``root`` (models from the test cache)."""
    proc = subprocess.run([sys.executable, "-m", "shiftbench.cli", "run", *overrides, "progress=false",
                           f"store_dir={root / 'store'}", f"results_dir={root / 'results'}"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    return root / "store"


def small_store(root: Path) -> Path:
    """A tiny run without selection: two methods, one seed, two scenarios."""
    return run_store(root, "method=[source_only,bn_adapt]", "model=[small_cnn]", "seed=[0]",
                     "+dataset.options.n_train=1000", "+dataset.options.n_val=300", "+dataset.options.n_test=300",
                     "dataset.scenarios=[{target:test},{target:id_test,label_shift:0.5}]")


def selection_store(root: Path) -> Path:
    """A tiny nested_cv run: its table asks for the methods' families and the scorers' traits."""
    return run_store(root, "dataset=skada_shift", "method=[source_only,domain_classifier_iw]", "seed=[0]",
                     "+grid.domain_classifier_iw.classifier=[logistic]", "selection.protocol=nested_cv",
                     "selection.n_splits=2")


def tables_of_fresh_stores(tmp_path: Path, *formats: list[str]) -> tuple[list, list]:
    """:func:`reference_and_warm` of ``table`` in each of ``formats`` over a fresh small store, then over a
    fresh selection store, retried (as there) until no file changed from the runs to the last table."""
    for attempt in range(3):
        before = plugin_index.fingerprint([])
        stores = [small_store(tmp_path / f"small{attempt}"), selection_store(tmp_path / f"selection{attempt}")]
        found = reference_and_warm([["table", "--store", str(s), *f] for s in stores for f in formats],
                                   tmp_path / f"tables{attempt}")
        if plugin_index.fingerprint([]) == before:
            return found
    pytest.skip("the plugin files changed during each of 3 attempts (other work in this checkout)")


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[list, list]:
    """The markdown and CSV tables of a small store, then of a selection store: reference and warm."""
    return tables_of_fresh_stores(tmp_path_factory.mktemp("tables"), [], ["--format", "csv"])


def test_table_on_current_records_reads_the_index_and_prints_what_the_registries_decide(tables):
    reference, warm = tables
    for live, fast in zip(reference, warm):
        assert fast[:3] == live[:3]  # the same records judged current: the same table, byte for byte
        assert [m for m in fast[3] if m != "torch"] == [], fast[3]
    assert "| source_only " in warm[0][1] and "| bn_adapt " in warm[0][1] and warm[0][2] == ""
    assert "gap to oracle" in warm[2][1] and "| domain_classifier_iw " in warm[2][1]


def test_table_does_not_import_torch(tables):
    assert [fast[3] for fast in tables[1]] == [[]] * 4


def test_protocols_read_the_same_plugin_facts_from_the_index_as_from_the_registries(monkeypatch, tmp_path):
    from shiftbench import methods, protocols

    def facts() -> tuple:
        traits = {n: {k: set(v) if k != "oracle" else v for k, v in t.items() if k in ("protocols", "families", "oracle")}
                  for n, t in protocols.scorer_traits().items()}
        usable = {name: cls.check_scorers(None) for name, cls in protocols.PROTOCOLS.items()}
        return traits, usable, {m: protocols.method_family(m) for m in methods.names()}

    live = facts()
    assert protocols.indexed("scorers") == {}  # plugins imported: the registries answer
    monkeypatch.setenv("SHIFTBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(plugin_index, "plugins_imported", lambda: False)
    protocols._index_section.cache_clear()
    try:
        assert protocols.indexed("scorers") and protocols.indexed("methods")
        assert facts() == live
        assert list(protocols.scorer_traits()) == list(live[0])  # the same order: the scorers' column order
    finally:
        protocols._index_section.cache_clear()
    assert live[1]["nested_cv"] and live[1]["none"] == []


#: prints, per module name given (JSON), its code hash from the name alone, and the plugin packages imported
LIGHT_HASHES = """
import json, sys
from shiftbench.identity import harness_code, module_code
codes = {m: module_code(m) for m in json.loads(sys.argv[1])}
print(json.dumps([codes, harness_code(), sorted(m for m in sys.modules if m.startswith(%r))]))
""" % (tuple(plugin_index.PLUGIN_PACKAGES.values()),)


def registered() -> dict[tuple[str, str], type]:
    """Every registered method, model, dataset and scorer: (kind, name) -> class."""
    import importlib

    return {(kind, name): cls for kind in ("methods", "models", "datasets", "scorers")
            for name, cls in importlib.import_module(plugin_index.PLUGIN_PACKAGES[kind]).registry.scan_all().items()}


def test_code_hashes_from_module_names_equal_the_plugins_code_without_importing_them():
    from shiftbench.identity import harness_code, plugin_code

    plugins = registered()
    modules = sorted({cls.__module__ for cls in plugins.values()})
    proc = subprocess.run([sys.executable, "-c", LIGHT_HASHES, json.dumps(modules)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    codes, harness, imported = json.loads(proc.stdout)
    assert imported == []  # located and hashed from the sources: no plugin package was imported
    assert len(plugins) > 50 and harness == harness_code()
    for (kind, name), cls in plugins.items():
        assert codes[cls.__module__] == plugin_code(cls), (kind, name)
    assert plugin_index.live_catalog().section("methods")["tent"]["module"] == "shiftbench.methods.tent"


def test_the_key_recomputed_from_the_index_is_the_runners_cell_key(tmp_path):
    import dataclasses

    from shiftbench.collect import indexed_key, stale_reason
    from shiftbench.runner import Cell
    from shiftbench.store import RecordStore

    index = plugin_index.live_catalog()
    records = RecordStore(small_store(tmp_path)).scan().records
    assert len(records) == 4
    cells = [Cell.from_dict(r["cell"]) for r in records]
    scored = [dataclasses.replace(c, scoring=json.dumps({"kind": "k", "scorers": ["snd", "circular"]})) for c in cells]
    for cell in cells + scored:
        assert indexed_key(cell.as_dict(), index) == cell.key
    for record in records:  # current, unless other work edited the code since the run
        assert stale_reason(record, index) == stale_reason(record)
    # a record the index cannot vouch for is judged by the registries, with the same reason as without it
    record = records[0]
    variants = [{**record, "cell": {**record["cell"], "method": "gone_method"}},
                {**record, "cell": {**record["cell"], "dataset": "digits_claimed_nowhere"}},
                {**record, "identity": {**record["identity"], "method_code": "0" * 12}, "key": "0" * 20},
                {**record, "identity": None, "key": "0" * 20}]
    for variant in variants:
        assert indexed_key(variant["cell"], index) != variant["key"]
        assert stale_reason(variant, index) == stale_reason(variant) is not None


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
