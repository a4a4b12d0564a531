"""The code a cell's result depends on, as hashes: part of every cell key and stored in its record.

A cell's number is computed by four pieces of code: the method plugin, the model plugin (whose
recipe decides the weights), the dataset adapter, and the harness that streams, runs and scores a
cell (:data:`HARNESS_MODULES`). Each piece is hashed over its module *and every module of the same
package it imports, transitively* (found by reading the import statements, so lazy imports inside
functions count too and nothing depends on what happens to be imported already). Editing
``methods/bn_adapt.py`` therefore changes the identity of ``bn_adapt``, ``tent`` and the label
shift adapter (which import it) and of nothing else. The image corruptions are a fifth piece, of the cells
whose scenario corrupts its target only (:data:`CORRUPTION_MODULES`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

#: modules that turn a (dataset, model, method) into a cell's metrics: scenarios and streams, the
#: families' ``run``/``evaluate``, the metric code and the split types (with what they import)
HARNESS_MODULES = ("shiftbench.families", "shiftbench.scenarios", "shiftbench.metrics", "shiftbench.dataset")
#: the image corruptions: the harness reaches them only when a scenario corrupts its target (a lazy import
#: in :mod:`shiftbench.scenarios`), so they are their own identity part, ``corruption_code``, of exactly those
#: cells; editing a corruption leaves every other cell's key alone
CORRUPTIONS_PACKAGE = "shiftbench.corruptions"
CORRUPTION_MODULES = ("shiftbench.corruptions.splits",)


@lru_cache(maxsize=None)
def _source_path(module: str) -> Path | None:
    """The ``.py`` file of ``module``, or None for a module that does not exist or has no source."""
    spec = _find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _find_spec(module: str) -> importlib.machinery.ModuleSpec | None:
    """The spec importing ``module`` would find, located without importing its parent packages when they
    are not imported yet (``importlib.util.find_spec`` imports them: for a plugin module, its plugin
    package and with it torch or scikit-learn). The finders of :data:`sys.meta_path` are asked within the
    parent's search locations, as the import system asks them once the parent is imported."""
    parent = module.rpartition(".")[0]
    if not parent or parent in sys.modules or module in sys.modules:
        try:
            return importlib.util.find_spec(module)
        except (ImportError, ValueError, AttributeError):
            return None
    parent_spec = _find_spec(parent)
    if parent_spec is None or parent_spec.submodule_search_locations is None:
        return None  # no such parent, or not a package (``from pkg.module import name`` reads ``pkg.module.name``)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find(module, list(parent_spec.submodule_search_locations), None) if find is not None else None
        if spec is not None:
            return spec
    return None


def _is_package(module: str) -> bool:
    path = _source_path(module)
    return path is not None and path.name == "__init__.py"


@lru_cache(maxsize=None)
def _imported_modules(module: str, path: Path) -> frozenset[str]:
    """Absolute names of the modules (and ``from X import name`` submodules) ``path`` imports."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(found)


@lru_cache(maxsize=None)
def module_closure(module: str, outside: str | None = None) -> tuple[str, ...]:
    """``module`` and every module of its top-level package that it imports, transitively (sorted); with
    ``outside`` (a package), leaving that package's modules and what only they import out."""
    root = module.split(".")[0]
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or (outside is not None and (name == outside or name.startswith(outside + "."))):
            continue
        path = _source_path(name)
        if path is None:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo.extend(p for p in parents if p not in seen)  # importing a.b.c runs a/__init__ and a/b/__init__
        todo.extend(m for m in _imported_modules(name, path) if m.split(".")[0] == root and m not in seen)
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def code_hash(modules: tuple[str, ...], outside: str | None = None) -> str:
    """Hash of the sources of ``modules`` and everything they import within their packages (with ``outside``,
    as :func:`module_closure` leaves it out)."""
    names = sorted({m for module in modules for m in module_closure(module, outside)})
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}\n".encode())
        h.update(_source_path(name).read_bytes())
    return h.hexdigest()[:12]


def module_code(module: str) -> str | None:
    """Code hash of the plugins defined in module ``module`` (:func:`plugin_code` of each), from the module's
    name alone: nothing is imported. None for a module without a source file."""
    return code_hash((module,)) if _source_path(module) is not None else None


def plugin_code(cls: type) -> str:
    """Code hash of a plugin class: its module and what it imports (:func:`module_code`). Classes without a
    source file (defined in a notebook or a test by hand) hash their qualified name and source if available."""
    module = inspect.getmodule(cls)
    code = module_code(module.__name__) if module is not None else None
    if code is not None:
        return code
    try:
        text = inspect.getsource(cls)
    except (OSError, TypeError):
        text = f"{cls.__module__}.{cls.__qualname__}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def harness_code() -> str:
    """Code hash of the harness that runs and scores every cell (:data:`HARNESS_MODULES`), corruptions aside."""
    return code_hash(HARNESS_MODULES, CORRUPTIONS_PACKAGE)


def corruption_code() -> str:
    """Code hash of the image corruptions (:data:`CORRUPTION_MODULES`): part of the cells that corrupt."""
    return code_hash(CORRUPTION_MODULES)


def cell_identity(method: type, model: type, dataset: type, corrupts: bool) -> dict[str, Any]:
    """The code identity of a cell (``corrupts``: its scenario corrupts the target): one hash per piece of
    code its result depends on."""
    return identity_of_codes(plugin_code(method), plugin_code(model), plugin_code(dataset), corrupts)


def identity_of_codes(method_code: str, model_code: str, dataset_code: str, corrupts: bool) -> dict[str, Any]:
    """:func:`cell_identity` from the plugins' code hashes (:func:`plugin_code` or :func:`module_code`)."""
    identity = {"method_code": method_code, "model_code": model_code, "dataset_code": dataset_code,
                "harness_code": harness_code()}
    return {**identity, "corruption_code": corruption_code()} if corrupts else identity


def scoring_identity(scorers: tuple[type, ...]) -> str:
    """Code hash of what computes a cell's selection scores: :mod:`shiftbench.cell_scoring` (and what it
    imports, corruptions aside: a corrupting cell's ``corruption_code`` covers them) and the scorer plugins
    ``scorers``."""
    return scoring_of_codes(tuple(plugin_code(cls) for cls in scorers))


def scoring_of_codes(scorer_codes: tuple[str, ...]) -> str:
    """:func:`scoring_identity` from the scorers' code hashes."""
    parts = [code_hash(("shiftbench.cell_scoring",), CORRUPTIONS_PACKAGE), *scorer_codes]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def cell_key(cell: dict[str, Any], identity: dict[str, str]) -> str:
    """A cell's key: the hash of what it computes (``Cell.as_dict()``) and of the code it depends on."""
    from shiftbench.cache import stable_hash  # numpy: not for the plugin index, which hashes code only

    return stable_hash({**cell, **identity}, length=20)
