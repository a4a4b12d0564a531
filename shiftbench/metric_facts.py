"""What the harness knows about each metric: direction, range, display scale, whether it is a proportion.

Leaderboards rank and mark by :attr:`MetricFacts.lower_is_better`, clip intervals to
``[low, high]`` and show ``value * scale``; regression tolerances use a binomial standard error for
proportions. Metrics not listed (a dataset's own, e.g. WILDS' ``F1-macro_all`` variants) are taken
as higher-is-better scores in [0, 1] shown in %, unless their name says loss or error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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


_PROPORTION = MetricFacts(proportion=True)
_LOWER_UNIT = MetricFacts(lower_is_better=True)
KNOWN: dict[str, MetricFacts] = {
    "acc_avg": _PROPORTION, "acc_wg": _PROPORTION, "balanced_acc": _PROPORTION,
    "F1-macro_all": MetricFacts(),
    "ece": _LOWER_UNIT, "mae_acc": _LOWER_UNIT, "max_ae_acc": _LOWER_UNIT,
    "est_acc": MetricFacts(), "real_acc": _PROPORTION,
    "nll": MetricFacts(lower_is_better=True, high=math.inf, scale=1.0),
    "mse": MetricFacts(lower_is_better=True, high=math.inf, scale=1.0),
}


def metric_facts(metric: str) -> MetricFacts:
    """The facts of ``metric`` (see the module docstring for names not listed in :data:`KNOWN`)."""
    if metric in KNOWN:
        return KNOWN[metric]
    lowered = metric.lower()
    if any(word in lowered for word in ("loss", "error", "mse", "mae")):
        return MetricFacts(lower_is_better=True, high=math.inf, scale=1.0)
    return MetricFacts()
