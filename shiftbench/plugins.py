"""Plugin discovery: one file per plugin in a package folder, plus installed entry points.

A plugin is a class with a ``name`` class attribute, defined in a module of the scanned
package (``shiftbench.methods`` or ``shiftbench.datasets``). A module may define several
(``datasets/wilds.py`` defines ``wilds/camelyon17``, ``wilds/iwildcam`` ...). Installed packages
add plugins through the entry-point group (``shiftbench.methods`` / ``shiftbench.datasets``),
whose entry name is the plugin name and whose value points at the class.

Nothing is listed centrally: dropping a file into ``methods/`` makes its classes available.
Modules are imported lazily; ``load("wilds/x")`` first tries module ``wilds`` before scanning.

A plugin class may also stand for a family of names: a classmethod ``claims(name)`` returning the
options that ``name`` implies (or ``None`` when the name is not one of its family).
:meth:`PluginRegistry.resolve` offers it every name that no plugin is registered as; the
``corrupted`` dataset claims ``<base>-c`` for any image dataset ``<base>``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterator

from shiftbench.errors import ShiftbenchError, UnknownNameError


@dataclass
class PluginRegistry:
    """Discovers plugin classes that subclass ``base`` in ``package`` and in ``entry_point_group``."""

    kind: str
    package: str
    entry_point_group: str
    base: type
    _plugins: dict[str, type] = field(default_factory=dict, init=False, repr=False)
    _scanned_modules: set[str] = field(default_factory=set, init=False, repr=False)
    _import_errors: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _complete: bool = field(default=False, init=False, repr=False)

    def _module_names(self) -> list[str]:
        pkg = importlib.import_module(self.package)
        return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))

    def _scan_module(self, short_name: str) -> None:
        if short_name in self._scanned_modules:
            return
        self._scanned_modules.add(short_name)
        qualified = f"{self.package}.{short_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                return
            self._import_errors[short_name] = traceback.format_exc()
            return
        except Exception:
            self._import_errors[short_name] = traceback.format_exc()
            return
        self._register_module(module)

    def _register_module(self, module: ModuleType) -> None:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and self._is_plugin(obj):
                self._add(obj.name, obj)

    def _is_plugin(self, obj: type) -> bool:
        return (
            issubclass(obj, self.base)
            and obj is not self.base
            and isinstance(getattr(obj, "name", None), str)
            and not inspect.isabstract(obj)
            and not obj.__dict__.get("abstract", False)
        )

    def _add(self, name: str, obj: type) -> None:
        existing = self._plugins.get(name)
        if existing is not None and existing is not obj:
            raise ShiftbenchError(
                f"two {self.kind} plugins are named {name!r}: {existing.__module__}.{existing.__qualname__} "
                f"and {obj.__module__}.{obj.__qualname__}; rename one"
            )
        self._plugins[name] = obj

    def _scan_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception:
                self._import_errors[f"entry point {ep.name}"] = traceback.format_exc()
                continue
            if not (inspect.isclass(obj) and issubclass(obj, self.base)):
                raise ShiftbenchError(
                    f"entry point {ep.name!r} in group {self.entry_point_group!r} points at {ep.value!r}, "
                    f"which is not a subclass of {self.base.__module__}.{self.base.__qualname__}"
                )
            self._add(ep.name, obj)

    def scan_all(self) -> dict[str, type]:
        """Import every plugin module and entry point; return name -> class."""
        if not self._complete:
            for short in self._module_names():
                self._scan_module(short)
            self._scan_entry_points()
            self._complete = True
        return dict(sorted(self._plugins.items()))

    def names(self) -> list[str]:
        return list(self.scan_all())

    def import_errors(self) -> dict[str, str]:
        """Modules that failed to import while scanning (module -> traceback)."""
        self.scan_all()
        return dict(self._import_errors)

    def get(self, name: str) -> type:
        """The plugin class registered as ``name``; an :class:`UnknownNameError` lists valid names."""
        if name in self._plugins:
            return self._plugins[name]
        guess = name.split("/")[0].replace("-", "_")
        self._scan_module(guess)
        if name not in self._plugins:
            self.scan_all()
        if name not in self._plugins:
            broken = [m for m in self._import_errors if m == guess]
            if broken:
                raise ShiftbenchError(
                    f"{self.kind} module {guess!r} failed to import, so {name!r} is unavailable:\n"
                    f"{self._import_errors[guess]}"
                )
            raise UnknownNameError(self.kind, name, list(self._plugins))
        return self._plugins[name]

    def resolve(self, name: str) -> tuple[type, dict[str, Any]]:
        """The plugin class behind ``name`` and the options the name implies: ``(get(name), {})`` for a
        registered name, else the one plugin whose ``claims(name)`` returns options (an
        :class:`UnknownNameError` when none does, a :class:`ShiftbenchError` when several do)."""
        try:
            return self.get(name), {}
        except UnknownNameError:
            claimed = {cls: options for cls in self.scan_all().values()
                       if (options := _claimed_options(cls, name)) is not None}
            if len(claimed) > 1:
                owners = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in claimed)
                raise ShiftbenchError(f"{self.kind} name {name!r} is claimed by several plugins ({owners}); "
                                      "make their claims disjoint") from None
            if not claimed:
                raise
            return next(iter(claimed.items()))

    def register(self, obj: type) -> type:
        """Register a class by hand (tests, notebooks); usable as a decorator."""
        self._add(obj.name, obj)
        return obj

    @contextmanager
    def temporarily(self, *classes: type) -> Iterator[None]:
        """Register ``classes`` for a ``with`` block (a test's plugins), then unregister the names they took,
        so that no other test sees them; a class already registered stays registered."""
        taken = [cls for cls in classes if cls.name not in self._plugins]
        try:
            for cls in classes:
                self.register(cls)
            yield
        finally:
            for cls in taken:
                if self._plugins.get(cls.name) is cls:
                    del self._plugins[cls.name]


def _claimed_options(cls: type, name: str) -> dict[str, Any] | None:
    """The options ``cls.claims(name)`` implies for ``name``; None when it has no ``claims`` or declines."""
    claims = getattr(cls, "claims", None)
    return None if claims is None else claims(name)


def describe(obj: Any) -> str:
    """First line of a plugin's docstring."""
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0] if doc else ""
