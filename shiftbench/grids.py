"""Hyperparameter grids: what a plugin's ``grid`` may be and the settings it expands to.

A grid follows scikit-learn's ``ParameterGrid``: a dict ``{hyperparameter: [values]}`` whose
values are crossed, or a list of such dicts (*sub-grids*), each crossed separately and the
results concatenated. A list lets a grid leave out a hyperparameter where it has no effect,
e.g. LAME's ``linear`` affinity, which ignores ``k``::

    [{"affinity": ["knn", "rbf"], "k": [3, 5, 7]}, {"affinity": ["linear"]}]

A value that is not a list or tuple counts as the only value, so an explicit list of settings
(``[{"C": 0.1}, {"C": 1.0}]``) is a grid too. Settings repeated exactly are kept once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from shiftbench.errors import ShiftbenchError

#: a plugin's (or a selection's) grid: one sub-grid or a list of them
Grid = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def value_list(values: Any) -> list:
    """The values a grid entry sweeps: a list or tuple as a list, anything else as its only value."""
    return list(values) if isinstance(values, (list, tuple)) else [values]


def sub_grids(grid: Grid, owner: str = "grid") -> list[dict[str, Any]]:
    """The grid as a list of sub-grids (a dict is one); ``[]`` is one empty sub-grid, the defaults.

    Raises :class:`ShiftbenchError` naming ``owner`` when the grid is neither a dict nor a list of dicts.
    """
    if isinstance(grid, Mapping):
        return [dict(grid)]
    if isinstance(grid, (list, tuple)) and all(isinstance(g, Mapping) for g in grid):
        return [dict(g) for g in grid] or [{}]
    raise ShiftbenchError(f"{owner} must be a dict hyperparameter -> list of values, or a list of such dicts "
                          f"(each crossed separately); got {grid!r}")


def expand(grid: Grid, owner: str = "grid") -> list[dict[str, Any]]:
    """Every setting of a grid: each sub-grid crossed over its sorted keys, in sub-grid order, duplicates dropped."""
    points, seen = [], set()
    for sub in sub_grids(grid, owner):
        keys = sorted(sub)
        for combo in itertools.product(*(value_list(sub[k]) for k in keys)):
            point = dict(zip(keys, combo))
            ident = _ident(point)
            if ident not in seen:
                seen.add(ident)
                points.append(point)
    return points


def with_overrides(grid: Grid, overrides: Grid | None) -> list[dict[str, Any]]:
    """The sub-grids with config overrides applied: a list of settings or sub-grids replaces the grid (the
    run's own variants, e.g. ``[{calibration: bcts}, {calibration: none}]``); a dict ``{hyperparameter:
    values}`` edits it as follows.

    A key that no sub-grid has is added to all. For a key some sub-grids sweep, each override value
    goes to the sub-grids that already list it, and a value no sub-grid lists goes to all of them
    that sweep the key; a sub-grid left with no value for the key is dropped. So on a dict grid an
    override simply replaces the values, and on LAME's grid ``affinity=[knn]`` keeps only the knn
    sub-grid while ``k=[4]`` sets k wherever k is swept (not on ``linear``, which ignores it).
    """
    if isinstance(overrides, (list, tuple)):
        return sub_grids(overrides, "a grid override")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ShiftbenchError(f"a grid override must be a dict hyperparameter -> values or a list of settings; "
                              f"got {overrides!r}")
    subs = sub_grids(grid)
    for key, values in (overrides or {}).items():
        values = value_list(values)
        if not values:
            raise ShiftbenchError(f"the grid override of {key!r} lists no values; give at least one, e.g. {key}=[...]")
        holders = [s for s in subs if key in s]
        if not holders:
            for sub in subs:
                sub[key] = values
            continue
        listed = {_ident(v) for sub in holders for v in value_list(sub[key])}
        for sub in holders:
            own = {_ident(v) for v in value_list(sub[key])}
            sub[key] = [v for v in values if _ident(v) in own or _ident(v) not in listed]
        subs = [s for s in subs if key not in s or s[key]]
    return subs


def _ident(value: Any) -> str:
    """A value's identity for comparisons (``1``, ``1.0`` and ``True`` differ, as in a config)."""
    return json.dumps(value, sort_keys=True, default=repr)


def grid_points(cls: type, overrides: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Hyperparameter settings a runner evaluates for plugin ``cls``: its ``grid`` with config overrides
    applied (see :func:`with_overrides`), expanded, each as given (defaults not filled in).

    Every setting is validated against the plugin's declaration (``cls.check_setting``) without building
    the plugin, so a bad value in the grid or in a config override fails here, before any cell runs:
    names that are not declared raise a :class:`ShiftbenchError` listing the valid ones, and an invalid
    value one naming the setting, the hyperparameter and what it must be."""
    name = getattr(cls, "name", cls.__name__)
    subs = with_overrides(sub_grids(cls.grid, f"grid of method {name!r}"), overrides)
    valid = cls.default_hyperparameters()
    unknown = sorted({k for sub in subs for k in sub} - set(valid))
    if unknown:
        raise ShiftbenchError(f"grid for method {name!r} names unknown hyperparameters {unknown}; "
                              f"valid: {sorted(valid) or '(none)'}")
    points = expand(subs)
    for point in points:
        try:
            cls.check_setting(point)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"grid point {_ident(point)} of method {name!r} is invalid: {exc}") from exc
    return points
