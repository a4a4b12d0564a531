"""Selection experiments end to end through the CLI, and the proof that no target label reaches a non-oracle
choice: the same experiment with scrambled target labels makes every non-oracle choice (and score) again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench.cli import main
from shiftbench.protocols import ORACLE
from shiftbench.scenarios import Scenario

NESTED = ["dataset=skada_shift", "method=[source_only,domain_classifier_iw]", "seed=[0,1]",
          "+grid.domain_classifier_iw.classifier=[logistic]", "selection.protocol=nested_cv", "selection.n_splits=2"]
CROSS = ["experiment=smoke", "method=[source_only,tent]", "seed=[0]", "+grid.tent.steps=[1]",
         "dataset.scenarios=[{target:id_test,corruption:[gaussian_noise,contrast,brightness],severity:[3]}]",
         "selection.protocol=cross_scenario", "selection.validation=[{corruption:gaussian_noise}]"]


def run(tmp_path: Path, name: str, overrides: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run through the CLI in this process (jobs=1: worker processes would not see :func:`scramble`'s patch);
    the leaderboard's rows and the records."""
    results = tmp_path / f"results-{name}"
    assert main(["run", *overrides, f"store_dir={tmp_path / name}", f"results_dir={results}", "progress=false",
                 "jobs=1"]) == 0
    return pd.read_csv(results / "leaderboard.csv", keep_default_na=False), pd.read_csv(results / "records.csv")


def scramble(monkeypatch: pytest.MonkeyPatch, only: callable = lambda scenario: True) -> None:
    """Every target split the runner builds (for scenarios ``only`` accepts) gets its labels permuted."""
    original = Scenario.target_split

    def scrambled(self, dataset, cache, seed):
        split = original(self, dataset, cache, seed)
        if not only(self):
            return split
        return dataclasses.replace(split, y=np.random.default_rng(7).permutation(split.y))

    monkeypatch.setattr(Scenario, "target_split", scrambled)


def chosen(board: pd.DataFrame) -> dict[tuple[str, str], str]:
    rows = board[board["group"] == "avg"]
    return {(m, s): c for m, s, c in zip(rows["method"], rows["scorer"], rows["chosen"])}


def scores(records: pd.DataFrame) -> pd.DataFrame:
    columns = sorted(c for c in records.columns if c.startswith("score."))
    return records.set_index(["method", "hparams", "scenario", "seed"])[columns].sort_index()


def metric(records: pd.DataFrame) -> pd.Series:
    return records.set_index(["method", "hparams", "scenario", "seed"])["metric.acc_avg"].sort_index()


@pytest.mark.slow
def test_nested_cv_choices_do_not_read_target_labels(tmp_path, monkeypatch):
    board, records = run(tmp_path, "plain", NESTED)
    realistic = {k: v for k, v in chosen(board).items() if k[1] not in ("", ORACLE)}
    assert {s for _, s in realistic} >= {"source_accuracy", "importance_weighted", "prediction_entropy", "snd", "dev",
                                          "circular", "mixval"}
    assert (board.loc[board["scorer"] == ORACLE, "method"] == "domain_classifier_iw").all()
    assert board["gap"].replace("", np.nan).astype(float).dropna().ge(-1e-12).all()  # nothing beats the oracle

    scramble(monkeypatch)
    board_s, records_s = run(tmp_path, "scrambled", NESTED)
    assert not np.allclose(metric(records), metric(records_s))  # the scrambled labels did reach the evaluation
    pd.testing.assert_frame_equal(scores(records), scores(records_s))  # ... and no score
    assert {k: v for k, v in chosen(board_s).items() if k[1] not in ("", ORACLE)} == realistic


@pytest.mark.slow
def test_cross_scenario_choices_do_not_read_held_out_labels(tmp_path, monkeypatch):
    board, records = run(tmp_path, "plain", CROSS)
    got = chosen(board)
    assert {s for m, s in got if m == "tent"} == {"validation", "prediction_entropy", "snd", ORACLE}
    assert set(board["group"]) == {"id_test-c", "avg"}
    table = (tmp_path / "results-plain" / "leaderboard.md").read_text()
    assert "tent (oracle)" in table and "selection: cross_scenario" in table

    scramble(monkeypatch, only=lambda scenario: scenario.corruption != "gaussian_noise")  # the held-out scenarios
    board_s, records_s = run(tmp_path, "scrambled", CROSS)
    assert not np.allclose(metric(records), metric(records_s))
    pd.testing.assert_frame_equal(scores(records), scores(records_s))
    assert {k: v for k, v in chosen(board_s).items() if k[1] != ORACLE} == {k: v for k, v in got.items()
                                                                             if k[1] != ORACLE}


def test_settings_of_a_selection_run_stay_available(tmp_path):
    run(tmp_path, "plain", NESTED[:2] + ["seed=[0]", *NESTED[3:]])
    settings = pd.read_csv(tmp_path / "results-plain" / "settings.csv", keep_default_na=False)
    per_setting = set(settings.loc[settings["method"] == "domain_classifier_iw", "hparams"])
    assert per_setting == {json.dumps({"C": c, "classifier": "logistic"}, sort_keys=True) for c in (0.1, 1.0, 10.0)}


def test_table_over_a_selection_store_shows_what_the_run_showed(tmp_path, capsys):
    overrides = NESTED[:2] + ["seed=[0]", *NESTED[3:]]
    run(tmp_path, "plain", overrides)
    capsys.readouterr()
    assert main(["table", "--store", str(tmp_path / "plain")]) == 0
    printed = capsys.readouterr().out
    written = (tmp_path / "results-plain" / "leaderboard.md").read_text()
    strip = lambda text: [line for line in text.splitlines() if line and not line.startswith("Regenerate:")]  # noqa: E731
    assert strip(printed) == strip(written) and "gap to oracle" in printed
    page = tmp_path / "board.html"
    assert main(["table", "--store", str(tmp_path / "plain"), "--format", "html", "-o", str(page)]) == 0
    html = page.read_text()
    assert "gap to oracle" in html and 'class="oracle"' in html and "Nested cross-validation" in html
    assert main(["table", "--store", str(tmp_path / "plain"), "--per-setting"]) == 0
    assert '{"C": 0.1, "classifier": "logistic"}' in capsys.readouterr().out
