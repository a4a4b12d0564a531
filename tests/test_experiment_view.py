"""How an experiment presents its records: columns from scenario fields, its reference, saved beside the store."""

from __future__ import annotations

import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.experiment_view import ExperimentView
from shiftbench.store import group_labels

CFG = {"method": ["reference_accuracy", "cbpe"], "metric": "mae_acc", "selection": {"protocol": "none"}}


def test_group_by_joins_scenario_fields_and_marks_unset_ones():
    frame = pd.DataFrame({"scenario.corruption": ["fog", None], "scenario.severity": [3.0, float("nan")],
                          "scenario.order": ["iid", "class_sorted"]})
    assert list(group_labels(frame, ["corruption", "severity", "order"])) == ["fog/3/iid", "-/-/class_sorted"]
    with pytest.raises(ShiftbenchError, match="not scenario fields"):
        group_labels(frame, ["colour"])


def test_the_view_round_trips_beside_the_store(tmp_path):
    view = ExperimentView.from_config({**CFG, "report": {"group_by": ["target"], "reference": "reference_accuracy"}})
    view.save(tmp_path)
    assert ExperimentView.load(tmp_path) == view
    assert ExperimentView.load(tmp_path / "elsewhere") is None


def test_the_reference_defaults_to_source_only_and_must_be_a_method_of_the_run():
    assert ExperimentView.from_config(CFG).reference == "source_only"
    with pytest.raises(ShiftbenchError, match="report.reference=bn_adapt is not a method of this run"):
        ExperimentView.from_config({**CFG, "report": {"reference": "bn_adapt"}})
    with pytest.raises(ShiftbenchError, match="report.group_by must be a list"):
        ExperimentView.from_config({**CFG, "report": {"group_by": "target"}})
