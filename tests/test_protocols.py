"""Selection protocols on stored records: what each scorer picks, the oracle, incomplete grids, config errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import ORACLE, SELECTED, VALIDATION, CrossScenario, NestedCV, Protocol
from shiftbench.runner import Cell
from shiftbench.scenarios import Scenario

A, B = json.dumps({"lr": 0.1}), json.dumps({"lr": 1.0})


def record(method: str, hparams: str, corruption: str, seed: int, acc: float, entropy: float = np.nan,
           status: str = "ok") -> dict:
    scenario = Scenario(target="id_test", corruption=corruption, severity=3)
    return {"key": f"{method}{hparams}{corruption}{seed}", "status": status, "dataset": "digits", "model": "m",
            "method": method, "hparams": hparams, "scenario": scenario.name, "group": "id_test-c", "seed": seed,
            **{f"scenario.{k}": v for k, v in vars(scenario).items()}, "metric.acc_avg": acc,
            "score.prediction_entropy": entropy, "error": ""}


def tta_frame(held_acc: dict[str, float] | None = None) -> pd.DataFrame:
    """Setting A wins on the validation corruption by accuracy, B by entropy; B wins on both held-out ones."""
    held_acc = held_acc or {A: 0.5, B: 0.8}
    rows = []
    for seed in (0, 1):
        rows += [record("tent", A, "gaussian_noise", seed, 0.9, entropy=-2.0),
                 record("tent", B, "gaussian_noise", seed, 0.7, entropy=-1.0)]
        for corruption in ("shot_noise", "contrast"):
            rows += [record("tent", h, corruption, seed, held_acc[h], entropy=-1.5) for h in (A, B)]
        rows += [record("source_only", "{}", c, seed, 0.6) for c in ("gaussian_noise", "shot_noise", "contrast")]
    return pd.DataFrame(rows)


CROSS = CrossScenario(["prediction_entropy"], validation=[{"corruption": "gaussian_noise"}])


def choices(selected: pd.DataFrame, method: str = "tent") -> dict[str, set[str]]:
    rows = selected[selected["method"] == method]
    return {scorer: set(part["chosen"]) for scorer, part in rows.groupby("scorer")}


def test_cross_scenario_picks_on_validation_and_reports_held_out_scenarios():
    selected = CROSS.select(tta_frame(), "acc_avg").frame
    assert choices(selected) == {VALIDATION: {A}, "prediction_entropy": {B}, ORACLE: {B}}
    assert set(selected["scenario"]) == {Scenario(target="id_test", corruption=c, severity=3).name
                                         for c in ("shot_noise", "contrast")}  # validation scenarios never reported
    tent = selected[selected["method"] == "tent"]
    assert (tent["hparams"] == SELECTED).all()
    assert tent.groupby("scorer")["metric.acc_avg"].mean().to_dict() == {VALIDATION: 0.5, "prediction_entropy": 0.8,
                                                                         ORACLE: 0.8}
    single = selected[selected["method"] == "source_only"]
    assert (single["scorer"] == "").all() and (single["hparams"] == "{}").all() and len(single) == 4


def test_held_out_labels_cannot_move_a_non_oracle_choice():
    """Whatever the held-out scenarios' metric (their labels), the non-oracle choices stay; the oracle follows it."""
    base = choices(CROSS.select(tta_frame(), "acc_avg").frame)
    flipped = choices(CROSS.select(tta_frame({A: 0.95, B: 0.1}), "acc_avg").frame)
    assert {k: v for k, v in flipped.items() if k != ORACLE} == {k: v for k, v in base.items() if k != ORACLE}
    assert flipped[ORACLE] == {A} != base[ORACLE]


def test_lower_is_better_metrics_pick_the_smallest():
    frame = tta_frame().assign(**{"metric.ece": lambda f: f["metric.acc_avg"]})
    assert choices(CROSS.select(frame, "ece").frame)[VALIDATION] == {B}


def test_a_choice_over_an_incomplete_grid_is_not_made():
    frame = tta_frame()
    broken = (frame["method"] == "tent") & (frame["hparams"] == B) & (frame["scenario.corruption"] == "gaussian_noise") \
        & (frame["seed"] == 1)
    frame.loc[broken, "status"] = "failed"
    selected = CROSS.select(frame, "acc_avg").frame
    seed1 = selected[(selected["seed"] == 1) & selected["scorer"].isin([VALIDATION, "prediction_entropy"])]
    assert (seed1["status"] == "failed").all() and seed1["metric.acc_avg"].isna().all()
    assert seed1["error"].str.contains("incomplete grid").all()
    seed0 = selected[(selected["seed"] == 0) & (selected["scorer"] == VALIDATION)]
    assert (seed0["status"] == "ok").all()


def test_nested_cv_picks_by_inner_score_and_the_oracle_by_the_metric():
    rows = []
    for seed in (0, 1, 2):
        rows.append({**record("kmm_iw", A, "gaussian_noise", seed, 0.6), "score.source_accuracy": 0.9})
        rows.append({**record("kmm_iw", B, "gaussian_noise", seed, 0.8), "score.source_accuracy": 0.7})
    selected = NestedCV(["source_accuracy"]).select(pd.DataFrame(rows), "acc_avg").frame
    assert choices(selected, "kmm_iw") == {"source_accuracy": {A}, ORACLE: {B}}
    assert len(selected) == 6  # one row per scorer and (scenario, seed)


def test_nan_scores_rank_last():
    rows = [{**record("kmm_iw", A, "gaussian_noise", 0, 0.6), "score.source_accuracy": np.nan},
            {**record("kmm_iw", B, "gaussian_noise", 0, 0.8), "score.source_accuracy": 0.1}]
    assert choices(NestedCV(["source_accuracy"]).select(pd.DataFrame(rows), "acc_avg").frame, "kmm_iw")[
        "source_accuracy"] == {B}


def cells(method: str, settings: list[dict], corruption: str = "gaussian_noise") -> list[Cell]:
    scenario = Scenario(target="id_test", corruption=corruption, severity=3)
    return [Cell("digits", "{}", scenario, "small_cnn", method, json.dumps(hp, sort_keys=True), 0) for hp in settings]


def test_attach_scores_only_the_methods_that_have_a_choice():
    protocol = CrossScenario(["prediction_entropy"], validation=[{"corruption": "gaussian_noise"}])
    run = cells("tent", [{"lr": 0.1}, {"lr": 1.0}]) + cells("tent", [{"lr": 0.1}, {"lr": 1.0}], "contrast") + \
        cells("source_only", [{}]) + cells("source_only", [{}], "contrast")
    attached = protocol.attach(run)
    assert {c.method for c in attached if c.scoring} == {"tent"}
    assert json.loads(next(c.scoring for c in attached if c.scoring)) == {"kind": "outputs",
                                                                          "scorers": ["prediction_entropy"]}
    unscored = next(c for c in attached if c.method == "source_only")
    assert "scoring" not in unscored.as_dict() and unscored.key == run[4].key  # keys of unselected cells unchanged


@pytest.mark.parametrize("block, message", [
    ({"protocol": "best_of"}, "unknown selection.protocol"),
    ({"protocol": "nested_cv", "folds": 3}, "has no options ['folds']"),
    ({"protocol": "cross_scenario"}, "needs selection.validation"),
    ({"protocol": "cross_scenario", "validation": [{"noise": 1}]}, "unknown scenario fields"),
    ({"protocol": "nested_cv", "scorers": ["nonsense"]}, "nonsense"),
    ({"protocol": "nested_cv", "n_splits": 0}, "n_splits must be an integer >= 1"),
    ({"protocol": "none", "scorers": ["snd"]}, "needs a selection protocol"),
])
def test_bad_selection_blocks_fail_in_one_line(block, message):
    with pytest.raises(ShiftbenchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Protocol.from_config(block)


def test_a_scorer_must_support_the_protocol():
    with pytest.raises(ShiftbenchError, match="cannot score under selection.protocol=cross_scenario"):
        Protocol.from_config({"protocol": "cross_scenario", "scorers": ["circular"],
                              "validation": [{"corruption": "gaussian_noise"}]})


def test_a_method_of_another_family_with_several_settings_is_a_config_error():
    with pytest.raises(ShiftbenchError, match="'tent' \\(tta\\) has 2 settings but selection.protocol=nested_cv"):
        NestedCV(["source_accuracy"]).attach(cells("tent", [{"lr": 0.1}, {"lr": 1.0}]))


def test_validation_filters_must_match_and_leave_scenarios_out():
    run = cells("tent", [{"lr": 0.1}, {"lr": 1.0}])
    with pytest.raises(ShiftbenchError, match="matches none of the run's scenarios"):
        CrossScenario([], validation=[{"corruption": "fog"}]).attach(run)
    with pytest.raises(ShiftbenchError, match="every scenario is a validation scenario"):
        CrossScenario([], validation=[{"corruption": "gaussian_noise"}]).attach(run)


def test_reference_error_is_minus_the_mean_absolute_estimation_error():
    from shiftbench.scorers import load

    scorer = load("reference_error")
    assert scorer.score_estimate(np.array([0.8, 0.9]), np.array([0.7, 0.9])) == pytest.approx(-0.05)
    assert type(scorer).families() == {"estimator"} and type(scorer).protocols() == {"nested_cv"}
    with pytest.raises(ShiftbenchError, match="one estimate per realised accuracy"):
        scorer.score_estimate(np.array([0.8]), np.array([0.7, 0.9]))


@pytest.mark.parametrize("name", ["atc", "iw_estimator"])
def test_reference_splits_refit_the_estimator_and_judge_its_estimate_of_each_held_out_part(name):
    from types import SimpleNamespace

    from sklearn.model_selection import StratifiedShuffleSplit

    from shiftbench import methods
    from shiftbench.cell_scoring import cell_scores
    from shiftbench.families import Batch, Outputs

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(120, 3)).astype(np.float32)
    y = (feats[:, 0] + 0.5 * rng.normal(size=120) > feats[:, 1]).astype(int)
    reference = Outputs(feats, 2.0 * feats[:, :2], y)
    task = SimpleNamespace(random_state=3, source_outputs=lambda split: reference)
    scoring = {"kind": "reference_splits", "scorers": ["reference_error"], "n_splits": 3, "test_size": 0.25}
    errors = []
    for train, held in StratifiedShuffleSplit(3, test_size=0.25, random_state=3).split(np.zeros(120), y):
        estimator = methods.load(name).fit(Outputs(feats[train], 2.0 * feats[train, :2], y[train]))
        estimate = estimator.process(Batch.from_arrays(probs=reference.probs[held], feats=feats[held]))
        errors.append(abs(estimate - np.mean(reference.probs[held].argmax(1) == y[held])))
    assert cell_scores(scoring, methods.load(name), task, None) == {"scores": {"reference_error": -np.mean(errors)},
                                                                   "score_errors": {}}


def test_nested_cv_scores_each_family_with_the_scorers_that_can_judge_it():
    protocol = NestedCV(["source_accuracy", "reference_error"])
    assert protocol.scoring("domain")["scorers"] == ["source_accuracy"]
    assert protocol.scoring("estimator") == {"kind": "reference_splits", "scorers": ["reference_error"],
                                             "n_splits": 5, "test_size": 0.2}


def test_the_code_that_scores_a_cell_is_part_of_its_identity():
    plain = cells("tent", [{"lr": 0.1}])[0]
    scored = dataclasses.replace(plain, scoring=json.dumps({"kind": "outputs", "scorers": ["snd"]}))
    assert "scoring_code" not in plain.identity() and "scoring_code" in scored.identity()
    other = dataclasses.replace(plain, scoring=json.dumps({"kind": "outputs", "scorers": ["prediction_entropy"]}))
    assert scored.identity()["scoring_code"] != other.identity()["scoring_code"]
    assert len({plain.key, scored.key, other.key}) == 3


def test_a_list_of_settings_as_grid_override_is_the_runs_own_variants():
    from shiftbench.grids import grid_points
    from shiftbench.methods import registry

    em = registry.get("em_correction")
    variants = [{"calibration": "bcts"}, {"calibration": "none"}, {"calibration": "bcts", "online": False}]
    assert grid_points(em, variants) == variants
    with pytest.raises(ShiftbenchError, match="grid override must be a dict"):
        grid_points(em, "bcts")
    with pytest.raises(ShiftbenchError, match="unknown hyperparameters"):
        grid_points(em, [{"temperature": 2}])


def test_selection_by_a_scenario_field_makes_one_choice_per_value():
    """With by=[order], the i.i.d. and the class-sorted streams each get their own choice."""
    iid = tta_frame()
    ordered = tta_frame({A: 0.9, B: 0.2}).assign(**{"scenario.order": "class_sorted"})
    on_validation = ordered["scenario.corruption"] == "gaussian_noise"
    ordered.loc[on_validation, "metric.acc_avg"] = np.where(ordered.loc[on_validation, "hparams"] == A, 0.1, 0.8)
    ordered["scenario"] = ordered["scenario"] + ":class_sorted"
    frame = pd.concat([iid, ordered], ignore_index=True)
    protocol = CrossScenario([], validation=[{"corruption": "gaussian_noise"}], by=["order"])
    selected = protocol.select(frame, "acc_avg")
    val = selected.frame[(selected.frame["scorer"] == VALIDATION) & (selected.frame["method"] == "tent")]
    assert dict(val.groupby("scenario.order")["chosen"].agg(set)) == {"iid": {A}, "class_sorted": {B}}
    assert selected.unit == ("seed", "scenario.order")
    pooled = CrossScenario([], validation=[{"corruption": "gaussian_noise"}]).select(frame, "acc_avg").frame
    assert pooled.loc[(pooled["scorer"] == VALIDATION) & (pooled["method"] == "tent"), "chosen"].nunique() == 1
    with pytest.raises(ShiftbenchError, match="selection.by must list scenario fields"):
        CrossScenario([], validation=[{"corruption": "gaussian_noise"}], by=["colour"])
