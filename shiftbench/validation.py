"""Checks of hyperparameter values, for plugins to call in ``__init__``.

Each check returns the value unchanged (a plugin keeps its hyperparameters as given) or raises a
one-line :class:`ShiftbenchError` naming the owner, the hyperparameter, what it must be and what
it got, e.g. ``lame: k must be an integer >= 1; got 2.7 (float). Set k to an integer >= 1.``
Validating in ``__init__`` lets the runner reject a bad grid before it computes any cell.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from shiftbench.errors import ShiftbenchError


def _invalid(owner: str, name: str, value: Any, requirement: str) -> ShiftbenchError:
    return ShiftbenchError(f"{owner}: {name} must be {requirement}; got {value!r} ({type(value).__name__}). "
                           f"Set {name} to {requirement}.")


def check_int(value: Any, name: str, owner: str, at_least: int = 1, allow_none: bool = False) -> Any:
    """An integer (not a bool, not a float: 2.7 is refused rather than truncated) ``>= at_least``."""
    if value is None and allow_none:
        return value
    requirement = f"an integer >= {at_least}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < at_least:
        raise _invalid(owner, name, value, requirement)
    return value


def check_number(value: Any, name: str, owner: str, above: float | None = None, at_least: float | None = None,
                 at_most: float | None = None, allow_none: bool = False) -> Any:
    """A finite real number (not a bool) ``> above``, ``>= at_least`` and ``<= at_most`` (the bounds given)."""
    if value is None and allow_none:
        return value
    bounds = [f"{op} {bound:g}" for op, bound in ((">", above), (">=", at_least), ("<=", at_most)) if bound is not None]
    requirement = " ".join(["a finite number", " and ".join(bounds)]).strip() + (" or None" if allow_none else "")
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
          and (above is None or value > above) and (at_least is None or value >= at_least)
          and (at_most is None or value <= at_most))
    if not ok:
        raise _invalid(owner, name, value, requirement)
    return value


def check_bool(value: Any, name: str, owner: str) -> Any:
    """``True`` or ``False`` (a string such as ``"false"`` would silently be truthy)."""
    if not isinstance(value, bool):
        raise _invalid(owner, name, value, "true or false")
    return value


def check_choice(value: Any, name: str, owner: str, choices: Iterable[Any]) -> Any:
    """One of ``choices``, of the same type too (``1`` does not pass for ``True``, nor ``"1"`` for ``1``)."""
    choices = list(choices)
    if not any(type(value) is type(c) and value == c for c in choices):
        raise ShiftbenchError(f"{owner}: unknown {name} {value!r}; valid: {', '.join(map(str, choices))}. "
                              f"Set {name} to one of them.")
    return value
