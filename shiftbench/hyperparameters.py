"""Hyperparameter declarations: each method states once, next to its code, what it accepts.

A plugin declares ``hyperparameters = {"lr": Float(1e-3, above=0), "steps": Int(1), ...}``; that one
declaration gives the plugin's keyword arguments and their defaults (no hand-written ``__init__``),
validates values when the plugin is built, checks the values its ``grid`` sweeps, lets the command line
reject a bad override before any cell runs, and tells the contract and ``shiftbench list`` what each
hyperparameter is. Every check raises a one-line :class:`~shiftbench.errors.ShiftbenchError` naming the
owner, the hyperparameter, what it must be and what it got (:mod:`shiftbench.validation`).

Declarations of a subclass extend its bases' (a subclass may redeclare a name, e.g. to change a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shiftbench.validation import check_bool, check_choice, check_int, check_number


@dataclass(frozen=True)
class Hyperparameter:
    """A hyperparameter's default and what values it accepts; subclasses say which values."""

    default: Any
    doc: str = field(default="", kw_only=True)

    def check(self, value: Any, name: str, owner: str) -> Any:
        """``value`` unchanged if valid for hyperparameter ``name`` of ``owner``, else a ShiftbenchError."""
        return value

    def describe(self) -> str:
        """What the values may be, in words (``shiftbench list`` and the contract show it)."""
        return "any value"


@dataclass(frozen=True)
class Int(Hyperparameter):
    """An integer ``>= at_least`` (or ``None`` where allowed)."""

    at_least: int = 1
    allow_none: bool = False

    def check(self, value: Any, name: str, owner: str) -> Any:
        return check_int(value, name, owner, self.at_least, self.allow_none)

    def describe(self) -> str:
        return f"integer >= {self.at_least}" + (" or None" if self.allow_none else "")


@dataclass(frozen=True)
class Float(Hyperparameter):
    """A finite number within the bounds given, or one of the option ``words`` (e.g. ``"auto"``), or ``None``
    where allowed."""

    above: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    allow_none: bool = False
    words: tuple[str, ...] = ()

    def check(self, value: Any, name: str, owner: str) -> Any:
        if self.words and isinstance(value, str):
            return check_choice(value, name, owner, self.words)
        return check_number(value, name, owner, self.above, self.at_least, self.at_most, self.allow_none)

    def describe(self) -> str:
        bounds = [f"{op} {b:g}" for op, b in ((">", self.above), (">=", self.at_least), ("<=", self.at_most))
                  if b is not None]
        text = " ".join(["number", " and ".join(bounds)]).strip()
        extras = [*(repr(w) for w in self.words), *(["None"] if self.allow_none else [])]
        return " or ".join([text, *extras])


@dataclass(frozen=True)
class Bool(Hyperparameter):
    """``True`` or ``False``."""

    def check(self, value: Any, name: str, owner: str) -> Any:
        return check_bool(value, name, owner)

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Choice(Hyperparameter):
    """One of ``choices`` (same type too: ``1`` does not pass for ``True``)."""

    choices: tuple[Any, ...] = ()

    def check(self, value: Any, name: str, owner: str) -> Any:
        return check_choice(value, name, owner, self.choices)

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.choices))
