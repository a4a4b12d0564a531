"""Cross-scenario hyperparameter selection for online test-time adaptation (the LAME paper's protocol).

Each method's hyperparameters are chosen on *validation* scenarios (e.g. some corruptions) by
the mean of a metric over those scenarios and seeds, then applied unchanged to the *held-out*
scenarios, whose mean is what gets reported. No held-out result influences the choice.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from shiftbench.errors import ShiftbenchError

REQUIRED = ("method", "hparams", "scenario")


def select_across_scenarios(results: pd.DataFrame, validation: Iterable[str], metric: str = "acc_avg",
                            higher_is_better: bool = True) -> pd.DataFrame:
    """One row per method: hyperparameters picked on ``validation`` scenarios and their held-out score.

    ``results`` has one row per (method, hparams, scenario[, seed]) with columns ``method``,
    ``hparams`` (a hashable description, e.g. canonical JSON), ``scenario`` and ``metric``.
    Returns columns method, hparams, validation_<metric>, heldout_<metric>, heldout_scenarios.
    """
    missing = [c for c in (*REQUIRED, metric) if c not in results.columns]
    if missing:
        raise ShiftbenchError(f"results lack columns {missing}; needed: {[*REQUIRED, metric]}")
    validation = set(validation)
    is_val = results["scenario"].isin(validation)
    if not is_val.any() or is_val.all():
        raise ShiftbenchError("cross-scenario selection needs both validation and held-out scenarios; "
                              f"validation={sorted(validation)}, scenarios={sorted(results['scenario'].unique())}")
    val = results[is_val].groupby(["method", "hparams"])[metric].mean()
    held = results[~is_val].groupby(["method", "hparams"])[metric].mean()
    rows = []
    for method, scores in val.groupby(level="method"):
        best = scores.idxmax() if higher_is_better else scores.idxmin()
        rows.append({"method": method, "hparams": best[1], f"validation_{metric}": scores[best],
                     f"heldout_{metric}": held.get(best, float("nan")),
                     "heldout_scenarios": int(results.loc[~is_val, "scenario"].nunique())})
    return pd.DataFrame(rows)
