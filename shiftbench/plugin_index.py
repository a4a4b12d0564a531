"""A cached index of what the plugins say about themselves, so that ``shiftbench list`` starts in a blink.

Importing the plugins imports torch, scikit-learn, skada, wilds and timm (seconds). The commands that
only *describe* plugins (``list``, ``reproduce --list``, ``check-method --list``) and ``data info`` on an
offline dataset read what they print from a JSON file in the user cache dir instead
(``<cache>/cli/plugin-index-<context>.json``, :func:`index_dir`).

Never stale: the index is keyed by a fingerprint of every file of the ``shiftbench`` package and of the
plugin folders (``methods/``, ``models/``, ``datasets/``, ``scorers/``, ``reproductions/``, ``configs/``),
content-hashed; of the entry-point plugins' own package folders; of the installed distributions (each
``*.dist-info`` / ``*.egg-info`` / ``.pth`` entry on ``sys.path`` with its modification time, so installing,
upgrading or re-installing any package changes it, the installed shiftbench version included); and of the
Python. When the fingerprint differs (a plugin file edited or added, a package installed), the index is
rebuilt by importing the plugins through their registries (:mod:`shiftbench.plugins`), exactly as the
commands did before. Safe under concurrent use: files are written to a temporary name and moved into
place (``os.replace``), a reader that finds a missing or unreadable file rebuilds.

The index is only consulted in a process that has not imported any plugin package yet: in a process that
has (a test that registers a plugin by hand, a notebook), the live registries are the truth and are used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: plugin kind -> the package its registry scans
PLUGIN_PACKAGES = {
    "datasets": "shiftbench.datasets",
    "models": "shiftbench.models",
    "methods": "shiftbench.methods",
    "scorers": "shiftbench.scorers",
    "reproductions": "shiftbench.reproductions",
}
#: packages whose files the fingerprint hashes: the harness (plugins inherit docstrings and defaults from
#: it), the plugin folders and the configs
HASHED_PACKAGES = ("shiftbench", *PLUGIN_PACKAGES.values(), "shiftbench.configs")
#: bump when the index's layout changes
FORMAT = 1
#: how many remembered outputs (``data info``) are kept
KEEP_OUTPUTS = 64


@dataclass
class Catalog:
    """What the describing commands print: per kind, each plugin's metadata (name -> fields, sorted by name)
    and the modules that failed to import; the text of ``reproduce --list``; the contract checks (name ->
    rule). ``failures``: the kinds whose plugins could not be described (the error :meth:`section` raises)."""

    plugins: dict[str, dict[str, dict[str, Any]]]
    import_errors: dict[str, dict[str, str]]
    reproductions_text: str
    checks: dict[str, str]
    failures: dict[str, Exception] = field(default_factory=dict)

    def section(self, kind: str) -> dict[str, dict[str, Any]]:
        """Name -> metadata of every plugin of ``kind``; the error met while describing them, if any."""
        if kind in self.failures:
            raise self.failures[kind]
        return self.plugins[kind]

    def to_json(self) -> dict[str, Any]:
        """The catalog as stored in the index (a catalog with failures is never stored)."""
        return {"plugins": self.plugins, "import_errors": self.import_errors,
                "reproductions_text": self.reproductions_text, "checks": self.checks}


def hyperparameter_lines(cls: type) -> list[str]:
    """One line per hyperparameter a method declares: ``name=default``, the values it accepts, its doc."""
    return [f"{name}={json.dumps(h.default)}  ({h.describe()})" + (f"  {h.doc}" if h.doc else "")
            for name, h in cls.declared().items()] or ["(no hyperparameters)"]


def is_offline(cls: type) -> bool:
    """Whether a dataset adapter's splits are a function of the installed code alone (no download, no data
    folder option), so that what ``data info`` prints for it may be remembered."""
    return (getattr(cls, "download", None) is None and getattr(cls, "download_command", None) is None
            and "root_dir" not in inspect.signature(cls).parameters)


def plugin_metadata(kind: str, cls: type) -> dict[str, Any]:
    """The fields of plugin class ``cls`` (of ``kind``) that the describing commands print."""
    from shiftbench.plugins import describe

    fields: dict[str, Any] = {"summary": describe(cls), "module": cls.__module__}
    if kind == "datasets":
        fields["experimental"] = str(cls.experimental) if cls.experimental else ""
        fields["offline"] = is_offline(cls)
    elif kind == "methods":
        fields.update(family=cls.family, grid=json.dumps(cls.grid), hyperparameters=hyperparameter_lines(cls))
    elif kind == "scorers":
        fields.update(oracle=bool(cls.needs_target_labels), protocols=sorted(cls.protocols()),
                      families=sorted(cls.families()))
    return fields


def _registry(kind: str) -> Any:
    return importlib.import_module(PLUGIN_PACKAGES[kind]).registry


def live_catalog() -> Catalog:
    """The catalog read from the plugins themselves (imports every plugin)."""
    from shiftbench.contract import CHECKS
    from shiftbench.reproduction_report import list_reproductions

    plugins, errors, failures = {}, {}, {}
    for kind in PLUGIN_PACKAGES:
        try:
            registry = _registry(kind)
            plugins[kind] = {name: plugin_metadata(kind, cls) for name, cls in registry.scan_all().items()}
            errors[kind] = registry.import_errors()
        except Exception as exc:  # noqa: BLE001 - raised again by Catalog.section, for the command that lists it
            failures[kind] = exc
    try:
        reproductions_text = list_reproductions()
    except Exception as exc:  # noqa: BLE001 - as above
        failures["reproductions"], reproductions_text = exc, ""
    return Catalog(plugins, errors, reproductions_text, {name: first_line(check.__doc__) for name, check in CHECKS.items()},
                   failures)


def first_line(doc: str | None) -> str:
    """The first line of a docstring ("" for none)."""
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def index_dir() -> Path:
    """Where the index and the remembered outputs live: ``<cache>/cli``, the cache dir being
    :func:`shiftbench.cache.default_cache_dir`'s (read here without importing that module, which imports
    numpy: a quarter of a second of a warm ``list``)."""
    return Path(os.environ.get("SHIFTBENCH_CACHE_DIR", Path.home() / ".cache" / "shiftbench")) / "cli"


def plugins_imported() -> bool:
    """Whether this process has imported a plugin package (then its live registries are the truth)."""
    return any(package in sys.modules for package in PLUGIN_PACKAGES.values())


def catalog() -> Catalog:
    """The catalog: from the index when it is current, else from the plugins (and the index rewritten)."""
    if plugins_imported():
        return live_catalog()
    path = index_path()
    try:
        stored = json.loads(path.read_text())
        if stored["format"] == FORMAT and stored["fingerprint"] == fingerprint(stored["extra_roots"]):
            return Catalog(**stored["catalog"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, half-read or of another layout: rebuilt below
    before = fingerprint([])  # taken before importing, so a file edited meanwhile makes the next run rebuild
    found = live_catalog()
    extra = entry_point_roots()
    if before is not None and extra is not None and not found.failures:
        atomic_write(path, json.dumps({"format": FORMAT, "fingerprint": fingerprint(extra) if extra else before,
                                       "extra_roots": extra, "catalog": found.to_json()}))
    return found


def index_path() -> Path:
    """The index file of this interpreter and import path (one per context, so that two contexts, e.g. two
    working directories on ``sys.path``, do not rebuild each other's index in turn)."""
    context = hashlib.blake2b(json.dumps([sys.executable, [os.path.abspath(p or ".") for p in sys.path]]).encode(),
                              digest_size=8).hexdigest()
    return index_dir() / f"plugin-index-{context}.json"


def entry_point_roots() -> list[str] | None:
    """The folders (or files) of the packages that add plugins through entry points, for the fingerprint;
    ``None`` when one cannot be located (then no index is written and every run imports the plugins)."""
    import importlib.metadata

    roots = set()
    for kind in PLUGIN_PACKAGES:
        for ep in importlib.metadata.entry_points(group=_registry(kind).entry_point_group):
            top = sys.modules.get(ep.value.split(":")[0].split(".")[0])
            location = getattr(top, "__file__", None)
            if location is None:
                return None
            roots.add(str(Path(location).parent if Path(location).name == "__init__.py" else Path(location)))
    return sorted(roots)


def fingerprint(extra_roots: list[str]) -> str | None:
    """A hash of every file the plugins' metadata can depend on (see the module docstring); ``None`` when a
    package of :data:`HASHED_PACKAGES` cannot be located without importing it."""
    roots = hashed_roots()
    if roots is None:
        return None
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{FORMAT}\0{sys.version}\0{sys.executable}\0".encode())
    for root in [*roots, *extra_roots]:
        digest.update(f"root\0{root}\0".encode())
        for path in _files(Path(root)):
            try:
                digest.update(f"{path}\0".encode() + hashlib.blake2b(path.read_bytes(), digest_size=20).digest())
            except OSError:
                digest.update(f"{path}\0unreadable".encode())
    for entry in _installed():
        digest.update(f"{entry}\0".encode())
    return digest.hexdigest()


def hashed_roots() -> list[str] | None:
    """The folders of :data:`HASHED_PACKAGES`, located without importing them (``None`` if one is missing)."""
    roots = []
    for package in HASHED_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        roots += list(spec.submodule_search_locations)
    return roots


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` (or ``root`` itself), sorted, without bytecode caches."""
    if root.is_file():
        return [root]
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        found += [Path(folder) / f for f in sorted(files) if not f.endswith((".pyc", ".tmp"))]
    return found


def _installed() -> list[str]:
    """Each installed distribution's metadata entry and ``.pth`` file on ``sys.path``, with its modification
    time (installing, upgrading or re-installing a package changes this list)."""
    entries = []
    for folder in sys.path:
        try:
            with os.scandir(folder or ".") as it:
                for entry in it:
                    if entry.name.endswith((".dist-info", ".egg-info", ".pth", ".egg-link")):
                        entries.append(f"{folder}/{entry.name}@{entry.stat().st_mtime_ns}")
        except OSError:
            continue
    return sorted(entries)


def remembered(key: Any) -> str | None:
    """The output stored under ``key`` (a JSON-able value) for the current code, or ``None``."""
    if plugins_imported():
        return None
    digest = fingerprint([])
    if digest is None:
        return None
    try:
        return json.loads(_remembered_path(digest, key).read_text())["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(key: Any, output: str) -> None:
    """Store ``output`` under ``key`` for the current code (the :data:`KEEP_OUTPUTS` most recent are kept)."""
    digest = fingerprint([])
    if digest is None:
        return
    atomic_write(_remembered_path(digest, key), json.dumps({"key": key, "output": output}))
    stored = sorted(index_dir().glob("output-*.json"), key=_mtime, reverse=True)
    for old in stored[KEEP_OUTPUTS:]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _remembered_path(digest: str, key: Any) -> Path:
    name = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=12).hexdigest()
    return index_dir() / f"output-{digest}-{name}.json"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file moved into place, so that a concurrent reader sees
    the old file or the new one, never a part; a cache folder that cannot be written is skipped (the
    index only saves time)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
