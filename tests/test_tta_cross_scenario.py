"""Cross-scenario selection: picks on validation scenarios only, reports held-out ones."""

from __future__ import annotations

import pandas as pd
import pytest

from shiftbench.cross_scenario import select_across_scenarios
from shiftbench.errors import ShiftbenchError


def results() -> pd.DataFrame:
    rows = []
    # lr=a is best on validation scenarios, lr=b on held-out ones: selection must not look there
    table = {("a", "v1"): 0.9, ("a", "v2"): 0.8, ("a", "h1"): 0.5,
             ("b", "v1"): 0.6, ("b", "v2"): 0.7, ("b", "h1"): 0.95}
    for (hp, scenario), acc in table.items():
        for seed, noise in ((0, -0.01), (1, 0.01)):
            rows.append({"method": "tent", "hparams": hp, "scenario": scenario, "seed": seed, "acc_avg": acc + noise})
    rows.append({"method": "source_only", "hparams": "{}", "scenario": "v1", "seed": 0, "acc_avg": 0.3})
    rows.append({"method": "source_only", "hparams": "{}", "scenario": "h1", "seed": 0, "acc_avg": 0.4})
    return pd.DataFrame(rows)


def test_selection_uses_validation_scenarios_only():
    out = select_across_scenarios(results(), ["v1", "v2"]).set_index("method")
    assert out.loc["tent", "hparams"] == "a"
    assert out.loc["tent", "validation_acc_avg"] == pytest.approx(0.85)
    assert out.loc["tent", "heldout_acc_avg"] == pytest.approx(0.5)
    assert out.loc["source_only", "heldout_acc_avg"] == pytest.approx(0.4)


def test_lower_is_better_metrics_and_errors():
    df = results().rename(columns={"acc_avg": "err"})
    assert select_across_scenarios(df, ["v1", "v2"], "err", higher_is_better=False).set_index("method").loc["tent", "hparams"] == "b"
    with pytest.raises(ShiftbenchError, match="held-out"):
        select_across_scenarios(results(), ["v1", "v2", "h1"])
    with pytest.raises(ShiftbenchError, match="lack columns"):
        select_across_scenarios(results().drop(columns="scenario"), ["v1"])
