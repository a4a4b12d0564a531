"""What the harness knows about each metric: direction, range, display scale, whether it is a proportion.

Leaderboards rank and mark by :attr:`MetricFacts.lower_is_better`, clip intervals to
``[low, high]`` and show ``value * scale``; regression tolerances use a binomial standard error for
proportions.

A metric's facts are declared with :func:`register_metric` by the module that computes it
(:mod:`shiftbench.metrics` for the dataset metrics, :mod:`shiftbench.families` for the
performance-estimator metrics; a dataset adapter may declare its own). A name nobody declared (a
dataset's own, e.g. WILDS' per-group ``acc_<group>``) is taken as a higher-is-better score in
[0, 1] shown in %, or as an unbounded lower-is-better value shown as is when its name says loss,
error, mse or mae.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

from shiftbench.errors import ShiftbenchError


@dataclass(frozen=True)
class MetricFacts:
    """Direction, range and display of one metric."""

    lower_is_better: bool = False
    low: float = 0.0
    high: float = 1.0
    #: shown as ``value * scale`` (100: a percentage)
    scale: float = 100.0
    #: a fraction of examples, so its sampling error is binomial
    proportion: bool = False

    @property
    def sign(self) -> float:
        """+1 where higher values are better, -1 where lower ones are (multiply to make "better" larger)."""
        return -1.0 if self.lower_is_better else 1.0


#: the harness modules that declare the metrics they compute (imported before the first lookup)
DECLARING_MODULES = ("shiftbench.metrics", "shiftbench.families")
_DECLARED: dict[str, MetricFacts] = {}
_UNBOUNDED_LOSS = MetricFacts(lower_is_better=True, high=math.inf, scale=1.0)


def register_metric(name: str, facts: MetricFacts) -> None:
    """Declare the facts of the metric ``name`` (the module that computes it calls this once at import)."""
    known = _DECLARED.get(name)
    if known is not None and known != facts:
        raise ShiftbenchError(f"metric {name!r} is declared twice with different facts ({known} and {facts}); "
                              "declare it once, where it is computed")
    _DECLARED[name] = facts


def metric_facts(metric: str) -> MetricFacts:
    """The declared facts of ``metric``, or the fallback for undeclared names (see the module docstring)."""
    for module in DECLARING_MODULES:
        importlib.import_module(module)
    if metric in _DECLARED:
        return _DECLARED[metric]
    lowered = metric.lower()
    if any(word in lowered for word in ("loss", "error", "mse", "mae")):
        return _UNBOUNDED_LOSS
    return MetricFacts()
