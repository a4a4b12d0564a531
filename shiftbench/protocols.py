"""Selection protocols: the runner's selection stage, between the cells and the report.

An experiment's ``selection`` block names a protocol; the protocol says which cells compute label-free
scores (:mod:`shiftbench.cell_scoring`) and, applied to the stored records (as DomainBed's selection
methods are), which record stands for each method under each scorer:

- ``none``: every setting is its own leaderboard row (whoever reads off the best row selects on the
  target labels; tables say so).
- ``nested_cv`` (domain adapters; SKADA-Bench's protocol): per (dataset, model, method, scenario, seed),
  each scorer picks the setting with the best inner-split score (the cell's ``score.<scorer>``); the row
  reports that setting's result on the whole target.
- ``cross_scenario`` (test-time and output adapters; the LAME paper's protocol): per (dataset, model,
  method, seed), each scorer picks one setting on the *validation* scenarios and the row reports that
  setting on the *held-out* scenarios. ``validation`` is the labelled-validation scorer (the metric on
  the validation scenarios, never on a held-out one); the registry's label-free scorers use their mean
  ``score.<scorer>`` over the validation scenarios.

In both, the ``oracle`` picks with the labels of the very data it is scored on (per scenario and seed): an
upper reference, labelled and never ranked. A method with one setting needs no choice: its rows carry an
empty scorer. A choice over an incomplete grid (a setting failed or is missing) is not made: its rows are
marked failed with the reason, so the table shows the coverage. Ties go to the first setting in sorted
order of the hyperparameters' JSON.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.metric_facts import metric_facts
from shiftbench.scenarios import Scenario

if TYPE_CHECKING:  # the runner imports torch and every plugin registry; a table of records needs neither
    from shiftbench.runner import Cell

ORACLE = "oracle"
#: cross-scenario selection's scorer that reads the metric on the (labelled) validation scenarios
VALIDATION = "validation"
#: the ``hparams`` of a selected row: its settings vary over seeds and scenarios (see ``chosen``)
SELECTED = "(selected)"


@dataclass
class Selected:
    """The records that stand for each (method, scorer): a records frame with ``scorer``, ``chosen`` (the
    setting's hyperparameters) and ``hparams`` set to ``(selected)`` for methods with several settings."""

    frame: pd.DataFrame
    #: the columns over which one choice is made (``chosen`` counts choices per unit)
    unit: tuple[str, ...] = ("scenario", "seed")


def indexed(kind: str) -> dict[str, dict[str, Any]]:
    """The plugin index's fields of every plugin of ``kind`` (:func:`~shiftbench.plugin_index.plugin_metadata`)
    where this process has imported no plugin, so that a protocol applied to stored records (``shiftbench
    table``) imports none; ``{}`` where it has: then the registries are the truth."""
    from shiftbench.plugin_index import plugins_imported

    return {} if plugins_imported() else _index_section(kind)


@lru_cache(maxsize=None)
def _index_section(kind: str) -> dict[str, dict[str, Any]]:
    from shiftbench.plugin_index import catalog

    return catalog().section(kind)


def method_family(name: str) -> str:
    """The family of method plugin ``name``."""
    fields = indexed("methods").get(name)
    if fields is not None:
        return fields["family"]
    from shiftbench import methods

    return methods.registry.get(name).family


def scorer_traits() -> dict[str, dict[str, Any]]:
    """Every registered scorer -> its ``protocols``, ``families`` and ``oracle`` (whether it reads the target
    labels), in registry order."""
    found = indexed("scorers")
    if found:
        return found
    from shiftbench import scorers

    return {name: {"protocols": cls.protocols(), "families": cls.families(), "oracle": bool(cls.needs_target_labels)}
            for name, cls in scorers.registry.scan_all().items()}


def check_scorer_name(name: str) -> None:
    """Raise the registry's error for a scorer name that is not registered (listing the valid ones)."""
    if name not in scorer_traits():
        from shiftbench import scorers

        scorers.registry.get(name)


class Protocol(ABC):
    """How a run selects hyperparameters; built from the experiment's ``selection`` block."""

    name: ClassVar[str]
    #: families whose settings this protocol selects
    families: ClassVar[tuple[str, ...]] = ()
    #: options of the ``selection`` block besides ``protocol`` and ``scorers``, with defaults
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, scorers: list[str], **options: Any):
        self.scorers = scorers
        self.settings = {**self.options, **options}

    @classmethod
    def from_config(cls, block: dict[str, Any] | None) -> Protocol:
        """The protocol of a ``selection`` block (``None`` or no block: ``none``), every option checked."""
        block = {k: v for k, v in (block or {}).items() if v is not None}  # unset options take their defaults
        name = block.pop("protocol", "none")
        if name not in PROTOCOLS:
            raise ShiftbenchError(f"unknown selection.protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
        protocol = PROTOCOLS[name]
        scorers = block.pop("scorers", None)
        unknown = sorted(set(block) - set(protocol.options))
        if unknown:
            valid = ", ".join(["protocol", "scorers", *protocol.options]) if protocol.families else "protocol"
            raise ShiftbenchError(f"selection.protocol={name} has no options {unknown}; its options: {valid}")
        return protocol(protocol.check_scorers(scorers), **block)

    @classmethod
    def check_scorers(cls, names: list[str] | None) -> list[str]:
        """The label-free scorers to report (default: every registered one this protocol can use)."""
        if not cls.families:
            if names:
                raise ShiftbenchError("selection.scorers needs a selection protocol (selection.protocol=nested_cv "
                                      "or cross_scenario)")
            return []
        usable = [n for n, t in scorer_traits().items() if cls.name in t["protocols"] and not t["oracle"]]
        if names is None:
            return usable
        names = [n for n in names if n not in (ORACLE, VALIDATION)]  # always reported
        for name in names:
            check_scorer_name(name)  # unknown names fail here, listing valid ones
            if name not in usable:
                raise ShiftbenchError(f"scorer {name!r} cannot score under selection.protocol={cls.name}; "
                                      f"scorers that can: {', '.join(usable)}")
        return list(dict.fromkeys(names))

    def attach(self, cells: list[Cell]) -> list[Cell]:
        """``cells`` with the scoring the protocol needs on the cells of methods that have several settings;
        a method with several settings of a family this protocol does not select is a config error."""
        settings: dict[str, set[str]] = {}
        for cell in cells:
            settings.setdefault(cell.method, set()).add(cell.hparams)
        family = {m: method_family(m) for m, hps in settings.items() if len(hps) > 1}
        for method in sorted(family) if self.families else ():
            if family[method] not in self.families:
                raise ShiftbenchError(f"method {method!r} ({family[method]}) has {len(settings[method])} settings but "
                                      f"selection.protocol={self.name} selects {' and '.join(self.families)} methods; "
                                      "give it one setting (grid.<method>.<name>=[value]) or use another protocol")
        self.check(cells)
        scoring = {m: self.scoring(f) for m, f in family.items()}
        text = {m: json.dumps(spec, sort_keys=True) for m, spec in scoring.items() if spec}
        return [dataclasses.replace(c, scoring=text[c.method]) if c.method in text else c for c in cells]

    def scorers_for(self, family: str) -> list[str]:
        """The run's scorers that can judge settings of ``family``."""
        traits = scorer_traits()
        for name in self.scorers:
            check_scorer_name(name)
        return [n for n in self.scorers if family in traits[n]["families"]]

    def check(self, cells: list[Cell]) -> None:
        """Protocol-specific checks of the cells, before anything is computed."""

    def scoring(self, family: str) -> dict[str, Any] | None:
        """What a cell of a ``family`` method with several settings computes for this protocol (None: nothing)."""
        return None

    @abstractmethod
    def select(self, frame: pd.DataFrame, metric: str) -> Selected:
        """The rows that stand for each (method, scorer) among ``frame``'s records."""

    def describe(self) -> str:
        """One line for the table's legend: how settings were chosen."""
        return ""


class NoSelection(Protocol):
    """Every setting is a row of its own."""

    name = "none"

    def select(self, frame: pd.DataFrame, metric: str) -> Selected:
        return Selected(frame)

    def describe(self) -> str:
        return ("No hyperparameter selection: every setting is its own row; picking the best row reads the "
                "target labels (an unmarked oracle).")


class _Choosing(Protocol):
    """What the two selecting protocols share: picking a setting per group of records."""

    def _pick(self, rows: pd.DataFrame, column: str, sign: float) -> tuple[str | None, str]:
        """The setting with the best mean ``column`` over ``rows`` (``sign`` -1 when lower is better) and, when
        no choice can be made, why. Every setting's rows must be ok; NaN scores (a scorer that could not
        judge a setting) rank last."""
        bad = rows[rows["status"] != "ok"]
        if len(bad):
            first = bad.iloc[0]
            return None, (f"selection over an incomplete grid: {first['method']} {first['hparams']} is "
                          f"{first['status']} on {first['scenario']} (seed {first['seed']})")
        values = pd.to_numeric(rows[column], errors="coerce") if column in rows else pd.Series(np.nan, index=rows.index)
        means = (sign * values).groupby(rows["hparams"]).mean().sort_index()
        if means.isna().all():
            return None, f"{column} is missing or NaN for every setting"
        return str(means.fillna(-np.inf).idxmax()), ""

    @staticmethod
    def _rows(group: pd.DataFrame, choice: str | None, scorer: str, reason: str = "") -> pd.DataFrame:
        """The records of ``group`` with setting ``choice`` as the rows of ``scorer``; when no choice was made,
        those of the first setting, failed with ``reason`` (so the table shows the coverage)."""
        chosen = group[group["hparams"] == (choice or group["hparams"].min())]
        out = chosen.assign(scorer=scorer, chosen=chosen["hparams"], hparams=SELECTED)
        if reason:
            out = out.assign(status="failed", error=reason)
            out[[c for c in out.columns if c.startswith("metric.")]] = np.nan
        return out

    @staticmethod
    def _single(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.assign(scorer="", chosen=rows["hparams"])

    def _oracle(self, held: pd.DataFrame, column: str, sign: float) -> list[pd.DataFrame]:
        """Per scenario and seed, the setting with the best metric there (labels of the scored data)."""
        out = []
        for _, part in held.groupby(["scenario", "seed"], sort=False):
            choice, reason = self._pick(part, column, sign)
            out.append(self._rows(part, choice, ORACLE, reason))
        return out


class NestedCV(_Choosing):
    """Per scenario and seed, each scorer's best inner-split setting; reported on the whole target."""

    name = "nested_cv"
    families = ("domain", "estimator")
    #: the cell scoring of each family's inner splits (:mod:`shiftbench.cell_scoring`)
    kinds = {"domain": "inner_splits", "estimator": "reference_splits"}
    options = {"n_splits": 5, "test_size": 0.2}

    def __init__(self, scorers: list[str], **options: Any):
        super().__init__(scorers, **options)
        n, size = self.settings["n_splits"], self.settings["test_size"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ShiftbenchError(f"selection.n_splits must be an integer >= 1; got {n!r}")
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size < 1:
            raise ShiftbenchError(f"selection.test_size must be a fraction in (0, 1); got {size!r}")

    def scoring(self, family: str) -> dict[str, Any]:
        return {"kind": self.kinds[family], "scorers": self.scorers_for(family), **self.settings}

    def select(self, frame: pd.DataFrame, metric: str) -> Selected:
        sign = metric_facts(metric).sign
        parts = []
        for _, rows in frame.groupby(["dataset", "model", "method"], sort=False):
            if rows["hparams"].nunique() == 1:
                parts.append(self._single(rows))
                continue
            scorers = self.scorers_for(method_family(rows["method"].iloc[0]))
            for _, cell in rows.groupby(["scenario", "seed"], sort=False):
                for scorer in scorers:
                    choice, reason = self._pick(cell, f"score.{scorer}", 1.0)
                    parts.append(self._rows(cell, choice, scorer, reason))
                parts += self._oracle(cell, f"metric.{metric}", sign)
        return Selected(_concat(parts, frame))

    def describe(self) -> str:
        s = self.settings
        return (f"Nested cross-validation: in each cell, {s['n_splits']} inner splits (validation part "
                f"{s['test_size']:g}) score every setting: of the labelled source and the unlabelled target for a "
                "domain adapter, of the labelled reference for a performance estimator; each scorer's best setting "
                "is reported on the whole target. (oracle): the best setting by the target labels.")


class CrossScenario(_Choosing):
    """Per seed, each scorer's setting chosen on the validation scenarios, reported on the held-out ones."""

    name = "cross_scenario"
    families = ("output", "tta")
    #: ``by``: scenario fields whose values are separate selection problems (e.g. [order]: one choice for the
    #: i.i.d. streams, one for the class-sorted ones), each with its own validation and held-out scenarios
    options = {"validation": [], "by": []}

    def __init__(self, scorers: list[str], **options: Any):
        super().__init__(scorers, **options)
        filters = self.settings["validation"]
        fields = set(Scenario.__dataclass_fields__)
        if not filters or not isinstance(filters, list) or not all(isinstance(f, dict) and f for f in filters):
            raise ShiftbenchError("selection.protocol=cross_scenario needs selection.validation: a list of scenario "
                                  "filters, e.g. [{corruption: gaussian_noise}, {corruption: brightness}]")
        for f in filters:
            if set(f) - fields:
                raise ShiftbenchError(f"selection.validation filter {f} has unknown scenario fields "
                                      f"{sorted(set(f) - fields)}; scenario fields: {', '.join(sorted(fields))}")
        by = self.settings["by"]
        if not isinstance(by, list) or set(by) - fields:
            raise ShiftbenchError(f"selection.by must list scenario fields (e.g. [order]); got {by!r}; scenario "
                                  f"fields: {', '.join(sorted(fields))}")

    def scoring(self, family: str) -> dict[str, Any] | None:
        scorers = self.scorers_for(family)
        return {"kind": "outputs", "scorers": scorers} if scorers else None

    def is_validation(self, scenario: dict[str, Any]) -> bool:
        """Whether a scenario (its fields) matches one of the validation filters."""
        return any(_matches(scenario, f) for f in self.settings["validation"])

    def check(self, cells: list[Cell]) -> None:
        scenarios = {c.scenario for c in cells}
        fields = {s: dataclasses.asdict(s) for s in scenarios}
        validation = {s for s in scenarios if self.is_validation(fields[s])}
        for f in self.settings["validation"]:
            if not any(_matches(fields[s], f) for s in scenarios):
                raise ShiftbenchError(f"selection.validation filter {f} matches none of the run's scenarios: "
                                      f"{', '.join(sorted(s.name for s in scenarios))}")
        by = self.settings["by"]
        for value in sorted({tuple(getattr(s, f) for f in by) for s in scenarios}, key=str):
            part = {s for s in scenarios if tuple(getattr(s, f) for f in by) == value}
            where = f" with {dict(zip(by, value))}" if by else ""
            if not part & validation:
                raise ShiftbenchError(f"no validation scenario among the scenarios{where}; add one to "
                                      "selection.validation or drop the field from selection.by")
            if part <= validation:
                raise ShiftbenchError(f"every scenario{where} is a validation scenario; leave some out to report on")

    def _validation_mask(self, frame: pd.DataFrame) -> pd.Series:
        """Which records are of validation scenarios (decided once per scenario, from its field columns)."""
        fields = [c for c in frame.columns if c.startswith("scenario.")]
        scenario = pd.Series([repr(tuple(r)) for r in frame[fields].itertuples(index=False)], index=frame.index)
        first = frame.loc[~scenario.duplicated(), fields]
        decided = {scenario[i]: self.is_validation({c[len("scenario."):]: _plain(r[c]) for c in fields})
                   for i, r in first.iterrows()}
        return scenario.map(decided).astype(bool)

    def select(self, frame: pd.DataFrame, metric: str) -> Selected:
        sign = metric_facts(metric).sign
        metric_column = f"metric.{metric}"
        is_validation = self._validation_mask(frame) if not frame.empty else pd.Series(dtype=bool)
        unit = ["seed", *(f"scenario.{f}" for f in self.settings["by"])]  # one choice per value of these
        parts = []
        for _, rows in frame.groupby(["dataset", "model", "method"], sort=False):
            validation, held = rows[is_validation[rows.index]], rows[~is_validation[rows.index]]
            if rows["hparams"].nunique() == 1:
                parts.append(self._single(held))
                continue
            scorers = [VALIDATION, *self.scorers_for(method_family(rows["method"].iloc[0]))]
            for key, val in validation.groupby(unit, sort=False, dropna=False):
                key = key if isinstance(key, tuple) else (key,)
                held_seed = held[np.logical_and.reduce([_same(held[c], v) for c, v in zip(unit, key)])]
                for scorer in scorers:
                    column, s = (metric_column, sign) if scorer == VALIDATION else (f"score.{scorer}", 1.0)
                    choice, reason = self._pick(val, column, s)
                    parts.append(self._rows(held_seed, choice, scorer, reason))
                parts += self._oracle(held_seed, metric_column, sign)
        return Selected(_concat(parts, frame), tuple(unit))

    def describe(self) -> str:
        filters = "; ".join(", ".join(f"{k}={v}" for k, v in f.items()) for f in self.settings["validation"])
        by = f" and {', '.join(self.settings['by'])}" if self.settings["by"] else ""
        return (f"Cross-scenario selection: each scorer picks one setting per seed{by} on the validation scenarios "
                f"({filters}); the row reports it on the held-out scenarios. validation: the metric on the "
                "validation scenarios; label-free scorers: their mean score there. (oracle): the best setting per "
                "held-out scenario by its labels.")


def _matches(scenario: dict[str, Any], filter_: dict[str, Any]) -> bool:
    """Whether a scenario's fields have every value of a validation filter."""
    return all(scenario.get(k) == v for k, v in filter_.items())


def _same(column: pd.Series, value: Any) -> np.ndarray:
    """Where ``column`` equals ``value`` (NaN and None equal themselves)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return column.isna().to_numpy()
    return (column == value).to_numpy()


def _plain(value: Any) -> Any:
    """A frame value as the scenario field it came from (NaN back to None, 3.0 back to 3)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


def _concat(parts: list[pd.DataFrame], frame: pd.DataFrame) -> pd.DataFrame:
    if not parts:
        return frame.iloc[:0].assign(scorer=pd.Series(dtype=str), chosen=pd.Series(dtype=str))
    return pd.concat(parts, ignore_index=True)


def chosen_text(rows: pd.DataFrame, unit: tuple[str, ...], limit: int = 2) -> str:
    """How often each setting was chosen (once per ``unit``, e.g. per seed), most frequent first:
    ``lr=0.001 (2/3 seeds), lr=0.01 (1/3 seeds)``."""
    counts = Counter(rows.drop_duplicates(list(unit))["chosen"])
    total = sum(counts.values())
    what = {("seed",): "seeds", ("scenario", "seed"): "cells"}.get(tuple(unit), "choices")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))  # ties in a fixed order
    shown = [f"{setting_text(h)} ({n}/{total} {what})" for h, n in ranked[:limit]]
    return ", ".join(shown) + (", ..." if len(ranked) > limit else "")


def setting_text(hparams: str) -> str:
    """Hyperparameters as ``k=v, ...`` (``defaults`` for none)."""
    values = json.loads(hparams)
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "defaults"


PROTOCOLS: dict[str, type[Protocol]] = {cls.name: cls for cls in (NoSelection, NestedCV, CrossScenario)}
