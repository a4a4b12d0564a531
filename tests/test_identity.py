"""Cell identity: a plugin's code hash covers every module of its package that it imports, transitively."""

from __future__ import annotations

import importlib
import sys

import pytest

from shiftbench import identity


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package ``idpkg``: ``a`` imports ``b`` inside a function, ``b`` imports ``c`` relatively, ``d`` is alone."""
    root = tmp_path / "idpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from idpkg import b\n    return b\n")
    (root / "b.py").write_text("from .c import VALUE\nimport json\n")
    (root / "c.py").write_text("VALUE = 1\n")
    (root / "d.py").write_text("import os\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield root
    for cache in (identity._source_path, identity.module_closure, identity.code_hash):
        cache.cache_clear()
    for name in [m for m in sys.modules if m.startswith("idpkg")]:
        del sys.modules[name]


def clear() -> None:
    for cache in (identity._source_path, identity.module_closure, identity.code_hash):
        cache.cache_clear()


def test_closure_follows_lazy_and_relative_imports_within_the_package(package):
    assert identity.module_closure("idpkg.a") == ("idpkg", "idpkg.a", "idpkg.b", "idpkg.c")
    assert identity.module_closure("idpkg.d") == ("idpkg", "idpkg.d")


def test_editing_an_imported_module_changes_the_importers_hash_only(package):
    a, d = identity.code_hash(("idpkg.a",)), identity.code_hash(("idpkg.d",))
    (package / "c.py").write_text("VALUE = 2\n")
    clear()
    assert identity.code_hash(("idpkg.a",)) != a
    assert identity.code_hash(("idpkg.d",)) == d


def test_real_plugins_cover_the_shiftbench_modules_they_import():
    tent = identity.module_closure("shiftbench.methods.tent")
    assert "shiftbench.methods._batchnorm" in tent and "shiftbench.families" in tent
    assert "shiftbench.methods.bn_adapt" not in tent  # shared helpers live in the room's common module
    assert "shiftbench.methods._batchnorm" not in identity.module_closure("shiftbench.methods.source_only")
    assert "shiftbench.methods._monitoring" in identity.module_closure("shiftbench.methods.cbpe")
    assert "shiftbench.scenarios" in identity.module_closure(identity.HARNESS_MODULES[1])
    harness = set().union(*(identity.module_closure(m) for m in identity.HARNESS_MODULES))
    assert "shiftbench.chunks" in harness  # calendar chunks are part of the stream
    assert not {"shiftbench.chunk_figure", "shiftbench.plots", "shiftbench.methods._monitoring"} & harness  # figures are not


def test_the_corruptions_are_their_own_identity_part_outside_the_harness():
    harness = set().union(*(identity.module_closure(m, identity.CORRUPTIONS_PACKAGE) for m in identity.HARNESS_MODULES))
    corruptions = set(identity.module_closure(identity.CORRUPTION_MODULES[0]))
    assert "shiftbench.scenarios" in harness and not any(m.startswith("shiftbench.corruptions") for m in harness)
    assert {f"shiftbench.corruptions.{m}" for m in ("noise", "blur", "digital", "weather", "ops", "params")} < corruptions
    # only the corrupting branch of the streams reaches them: nothing else in the harness imports them
    full = set().union(*(identity.module_closure(m) for m in identity.HARNESS_MODULES))
    assert full == harness | corruptions


def test_editing_a_corruption_changes_the_keys_of_the_corrupting_cells_only(monkeypatch):
    from shiftbench import runner

    cfg = {"dataset": {"name": "digits", "options": {}, "models": ["small_cnn"],
                       "scenarios": [{"target": "test"}, {"target": "id_test", "corruption": "fog", "severity": 3}]},
           "method": ["source_only"], "model": None, "seed": [0], "grid": {}}
    plain, corrupted = runner.expand_cells(cfg)
    assert "corruption_code" not in plain.identity() and "corruption_code" in corrupted.identity()
    before = plain.key, corrupted.key
    runner._identity.cache_clear()
    monkeypatch.setattr(identity, "corruption_code", lambda: "edited")
    try:
        assert plain.key == before[0] and corrupted.key != before[1]
    finally:
        runner._identity.cache_clear()


@pytest.mark.parametrize("part", ["method_code", "model_code", "dataset_code", "harness_code", "corruption_code"])
def test_a_change_in_any_identity_part_changes_every_cell_key(part, monkeypatch, tmp_path):
    from shiftbench import runner

    cfg = {"dataset": {"name": "digits", "options": {}, "models": ["small_cnn"],
                       "scenarios": [{"target": "id_test", "corruption": "fog", "severity": 3}]},
           "method": ["source_only"], "model": None, "seed": [0, 1], "grid": {}}
    cells = runner.expand_cells(cfg)
    before = {c.key for c in cells}
    real = runner._identity(cells[0].method, cells[0].model, cells[0].dataset, True)
    monkeypatch.setattr(runner, "_identity", lambda *names: {**real, part: real[part] + "x"})
    assert not before & {c.key for c in cells}
    assert cells[0].identity()[part].endswith("x")


def test_records_of_other_code_are_stale_with_the_reason(tmp_path):
    from shiftbench.collect import stale_reason
    from shiftbench.runner import Cell, Scenario

    cell = Cell("digits", "{}", Scenario(target="test"), "small_cnn", "source_only", "{}", 0)
    record = {"key": cell.key, "status": "ok", "cell": cell.as_dict(), "identity": cell.identity(), "metrics": {}}
    assert stale_reason(record) is None
    old = {**record, "key": "0" * 20, "identity": {**cell.identity(), "method_code": "old"}}
    assert stale_reason(old) == "method_code changed since it was recorded"
    assert "before code identities" in stale_reason({**old, "identity": None})
    assert "cannot be rebuilt" in stale_reason({**record, "cell": {**record["cell"], "method": "gone_method"}})
