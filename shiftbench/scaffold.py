"""``shiftbench new-method NAME --family F``: write a working, documented plugin and its test.

The texts are package data (``shiftbench/templates/``): ``method_header.py.txt`` (the module docstring
stating the contract) followed by ``method_<family>.py.txt`` (one per family), and ``method_test.py.txt``;
placeholders (``string.Template``): ``$name`` (registry name), ``$cls`` (class name), ``$family``.
"""

from __future__ import annotations

import importlib.util
import keyword
from importlib import resources
from pathlib import Path
from string import Template

from shiftbench.errors import ShiftbenchError

#: the families ``new-method`` has a template for (``templates/method_<family>.py.txt``)
FAMILIES = ("output", "tta", "domain", "estimator")


def template(name: str) -> Template:
    """The package-data template ``shiftbench/templates/<name>``."""
    return Template(resources.files("shiftbench").joinpath("templates", name).read_text())


def class_name(name: str) -> str:
    """``my_method`` -> ``MyMethod``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def default_methods_dir() -> Path:
    """The folder plugins are discovered in (``methods/`` of the checkout in an editable install), found
    without importing the plugin package (which imports torch)."""
    return Path(list(importlib.util.find_spec("shiftbench.methods").submodule_search_locations)[0])


def validate_name(name: str) -> None:
    """A plugin name must be a lower-case Python identifier not taken by another plugin (looked up in the
    plugin index, :func:`shiftbench.plugin_index.catalog`, so no plugin is imported once it is current)."""
    from shiftbench.plugin_index import catalog

    if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower() or name.startswith("_"):
        raise ShiftbenchError(f"method name {name!r} must be a lower-case Python identifier not starting with _ "
                              "(it becomes the module shiftbench.methods.<name>)")
    existing = catalog().section("methods")
    if name in existing:
        raise ShiftbenchError(f"a method named {name!r} already exists ({existing[name]['module']}); pick another name")


def new_method(name: str, family: str, methods_dir: Path | None = None, tests_dir: Path | None = None,
               force: bool = False) -> list[Path]:
    """Write ``<methods_dir>/<name>.py`` from the family's template and ``<tests_dir>/test_method_<name>.py``."""
    if family not in FAMILIES:
        raise ShiftbenchError(f"unknown family {family!r}; valid families: {', '.join(FAMILIES)}")
    validate_name(name)
    methods_dir = Path(methods_dir or default_methods_dir())
    tests_dir = Path(tests_dir or methods_dir.parent / "tests")
    values = {"name": name, "cls": class_name(name), "family": family}
    plugin = template("method_header.py.txt").substitute(values) + template(f"method_{family}.py.txt").substitute(values)
    files = {methods_dir / f"{name}.py": plugin,
             tests_dir / f"test_method_{name}.py": template("method_test.py.txt").substitute(values)}
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise ShiftbenchError(f"{', '.join(existing)} already exist; pass --force to overwrite")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
