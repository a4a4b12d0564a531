"""Model-selection scorers agree with skada's definitions; target labels reach only the oracle;
nested CV selects the argmax of the inner scores, and its shared fits and predictions give exactly the
scores of unshared ones; cross-scenario selection on records."""

from __future__ import annotations

import json
from dataclasses import fields
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from shiftbench import methods, scorers
from shiftbench.errors import ShiftbenchError, UnknownNameError
from shiftbench.scorers import default_scorers
from shiftbench.scorers.circular import CircularValidation
from shiftbench.scorers.dev import DeepEmbeddedValidation
from shiftbench.scorers.importance_weighted import ImportanceWeighted
from shiftbench.scorers.mixval import MixVal
from shiftbench.scorers.oracle import Oracle
from shiftbench.scorers.prediction_entropy import PredictionEntropy
from shiftbench.scorers.snd import SoftNeighbourhoodDensity
from shiftbench.scorers.source_accuracy import SourceAccuracy
from shiftbench.scoring import (Candidate, LabelledTarget, Scorer, UnlabelledTarget, ValidationView, dev_risk,
                                prediction_entropy, soft_neighbourhood_density)
from shiftbench.grids import expand
from shiftbench.selection import (SharedCandidate, best_params, domain_shuffle_splits, grid_scores, nested_cv,
                                  selection_table)

skada = pytest.importorskip("skada")
from skada import metrics as skm  # noqa: E402

from shiftbench.reproductions.skada_bench_simulated import by_domain, method_factory, simulated  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    """A covariate-shift problem (80 points per domain) in skada's layout and ours."""
    Xs, ys, Xt, yt = by_domain(*simulated("covariate_shift", 0, scale=0.1))
    X = np.vstack([Xs, Xt])
    d = np.r_[np.ones(len(Xs), int), -2 * np.ones(len(Xt), int)]
    y_masked = np.r_[ys, -np.ones(len(Xt), int)]
    return Xs, ys, Xt, yt, X, d, y_masked


def fitted(method, problem):
    """The reproduction's plugin of paper method ``method`` fitted, as a candidate and as skada's pipeline."""
    Xs, ys, Xt, *_ = problem
    make = method_factory(method)
    model = make().fit(Xs, ys, Xt)
    return Candidate(model, make), model.estimator_


def view_of(problem):
    Xs, ys, Xt, *_ = problem
    return ValidationView(Xs, ys, Xs, ys, UnlabelledTarget(Xt))


@pytest.mark.parametrize("method", ["source_only", "CORAL", "KMM"])
def test_scorers_agree_with_skada(problem, method):
    Xs, ys, Xt, yt, X, d, ym = problem
    cand, pipe = fitted(method, problem)
    view = view_of(problem)
    K = 2
    assert SourceAccuracy().score(cand, view) == pytest.approx((pipe.predict(Xs, sample_domain=d[d > 0],
                                                                             allow_source=True) == ys).mean())
    assert ImportanceWeighted().score(cand, view) == pytest.approx(skm.ImportanceWeightedScorer()(pipe, X, ym, sample_domain=d),
                                                                   rel=1e-9)
    # skada averages -p log p over all N*K entries; the definition is the mean per-sample entropy
    assert PredictionEntropy().score(cand, view) == pytest.approx(K * skm.PredictionEntropyScorer()(pipe, X, ym, sample_domain=d),
                                                                  rel=1e-9)
    assert SoftNeighbourhoodDensity().score(cand, view) == pytest.approx(
        skm.SoftNeighborhoodDensity()(pipe, X, ym, sample_domain=d), rel=1e-9)
    assert MixVal(seed=3).score(cand, view) == pytest.approx(skm.MixValScorer(random_state=3)(pipe, X, ym, sample_domain=d))
    assert CircularValidation().score(cand, view) == pytest.approx(skm.CircularValidation()(pipe, X, ym, sample_domain=d))
    truth = LabelledTarget(Xt, yt)
    assert Oracle().score(cand, view, truth) == pytest.approx(
        skm.SupervisedScorer()(pipe, X, ym, sample_domain=d, target_labels=np.r_[ys, yt]))


def test_dev_agrees_with_skada(problem):
    """skada's DEV splits the source 67/33 itself; we hand ours the same split. skada 0.6.0 multiplies
    an (n, 1) weight column by (n,) losses, an (n, n) outer product, so its final number is not the
    paper's formula: we check that our weights and losses give skada's number under that broadcasting,
    and that our score is the paper's formula on the same weights and losses."""
    Xs, ys, Xt, yt, X, d, ym = problem
    cand, pipe = fitted("source_only", problem)
    expected = skm.DeepEmbeddedValidation(random_state=0)(pipe, X, ym, sample_domain=d)
    X_tr, X_val, y_tr, y_val = train_test_split(Xs, ys, test_size=0.33, random_state=np.random.RandomState(0))
    view = ValidationView(X_tr, y_tr, X_val, y_val, UnlabelledTarget(Xt))
    dev = DeepEmbeddedValidation()
    w, losses = dev.weights_and_losses(cand, view)
    outer = w[:, None] * losses  # skada's broadcast
    cov = np.cov(np.c_[outer, w], rowvar=False)[0, 1]
    eta = -cov / np.var(w, ddof=1)
    assert -(outer.mean() + eta * w.mean() - eta) == pytest.approx(expected, rel=1e-9)
    assert dev.score(cand, view) == pytest.approx(-dev_risk(losses, w))
    wl = w * losses
    eta = -np.cov(wl, w)[0, 1] / np.var(w, ddof=1)
    assert dev_risk(losses, w) == pytest.approx(wl.mean() + eta * w.mean() - eta)


def test_array_definitions_by_hand():
    uniform = np.full((4, 4), 0.25)
    assert prediction_entropy(uniform) == pytest.approx(np.log(4))
    assert prediction_entropy(np.eye(3)) == 0.0
    # SND: identical rows -> each sample's similarity softmax is uniform over the n-1 others
    assert soft_neighbourhood_density(np.tile([0.7, 0.3], (5, 1))) == pytest.approx(np.log(4))
    # DEV with constant weights is the plain mean loss; the control variate removes a linear weight effect
    assert dev_risk([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]) == pytest.approx(2.0)
    w = np.array([0.5, 1.0, 1.5, 2.0])
    assert dev_risk(np.ones(4), w) == pytest.approx(1.0)  # w*l = w: eta = -1 cancels the weight noise exactly


def test_registry_and_errors():
    assert set(scorers.names()) >= {"source_accuracy", "importance_weighted", "prediction_entropy", "snd", "dev",
                                    "circular", "mixval", "oracle"}
    assert [n for n, s in default_scorers().items() if s.needs_target_labels] == ["oracle"]
    assert list(default_scorers())[-1] == "oracle"
    with pytest.raises(UnknownNameError, match="valid scorers: .*snd"):
        scorers.load("nope")
    with pytest.raises(ShiftbenchError, match="ice="):
        MixVal(ice="sideways")


# ------------------------------------------------------------- target labels reach only the oracle
class Spy(Scorer):
    name = "spy"

    def __init__(self):
        self.seen = []

    def score(self, candidate, view):
        self.seen.append(view)
        return 0.0


def lr(C=1.0):
    """A source-only logistic regression in the estimator protocol."""
    class LR:
        def fit(self, Xs, ys, Xt):
            self.m = LogisticRegression(C=C).fit(Xs, ys)
            return self

        def predict_proba(self, X):
            return self.m.predict_proba(X)
    return LR()


def test_non_oracle_scorers_never_receive_target_labels(problem):
    Xs, ys, Xt, yt, *_ = problem
    spy = Spy()
    scorers = {**{n: s for n, s in default_scorers().items()}, "spy": spy}
    splits = domain_shuffle_splits(ys, len(Xt), n_splits=2, seed=0)
    grid = {"C": [1e-4, 1.0]}
    scores = grid_scores(lr, grid, Xs, ys, Xt, splits, scorers, yt)
    # by construction: the view type has no field for target labels and its target is unlabelled
    assert {f.name for f in fields(ValidationView)} == {"X_train", "y_train", "X_val", "y_val", "target"}
    assert all(type(v.target) is UnlabelledTarget and not hasattr(v.target, "y") for v in spy.seen)
    assert len(spy.seen) == 2 * 2
    # and by effect: scrambling the target labels changes only the oracle's scores
    rng = np.random.default_rng(0)
    scrambled = grid_scores(lr, grid, Xs, ys, Xt, splits, scorers, rng.permutation(1 - yt))
    realistic = scores["oracle"] == False  # noqa: E712
    np.testing.assert_array_equal(scores.loc[realistic, "score"], scrambled.loc[realistic, "score"])
    assert not np.allclose(scores.loc[~realistic, "score"], scrambled.loc[~realistic, "score"])
    with pytest.raises(ShiftbenchError, match="oracle"):
        grid_scores(lr, grid, Xs, ys, Xt, splits, {"oracle": Oracle()})


def test_nested_cv_selects_the_inner_argmax_and_reports_outer_accuracy(problem):
    Xs, ys, Xt, yt, *_ = problem
    scorers = {"source_accuracy": SourceAccuracy(), "importance_weighted": ImportanceWeighted(), "oracle": Oracle()}
    outer = domain_shuffle_splits(ys, len(yt), n_splits=2, seed=0, y_target=yt)
    grid = {"C": [1e-6, 1.0]}  # C=1e-6 predicts a near-constant class: every labelled scorer must reject it
    res = nested_cv(lr, grid, Xs, ys, Xt, yt, scorers, outer, n_inner=3)
    assert len(res) == 2 * 3 and set(res["scorer"]) == set(scorers)
    assert (res["params"] == json.dumps({"C": 1.0})).all()
    # the reported number is the refitted selection's accuracy on the outer target-test part
    sp = outer[1]
    acc = (LogisticRegression(C=1.0).fit(Xs[sp.source_train], ys[sp.source_train]).predict(Xt[sp.target_test])
           == yt[sp.target_test]).mean()
    assert res[(res["outer"] == 1)]["target_accuracy"].tolist() == pytest.approx([acc] * 3)
    # best_params is the argmax of the mean over splits
    scores = pd.DataFrame({"scorer": ["a"] * 4, "point": [0, 0, 1, 1], "params": ['{"C": 1}'] * 2 + ['{"C": 2}'] * 2,
                           "split": [0, 1, 0, 1], "score": [0.9, 0.1, 0.6, 0.6]})
    assert best_params(scores) == {"a": {"C": 2}}
    table = selection_table(res.assign(method="lr"))
    assert list(table.columns) == ["method", "source_accuracy", "importance_weighted", "oracle (oracle)"]


# ------------------------------------------------------------- shared work, identical scores
def unshared_scores(make, grid, Xs, ys, Xt, yt, splits, chosen) -> list[float]:
    """The definition: every point fitted afresh on every split, a plain candidate handed to every scorer."""
    out = []
    for params in expand(grid):
        for sp in splits:
            view = sp.view(Xs, ys, Xt)
            model = make(**params)
            model.fit(view.X_train, view.y_train, Xt[sp.target_train])
            cand = Candidate(model, lambda: make(**params))
            out += [s.score(cand, view, LabelledTarget(Xt[sp.target_test], yt[sp.target_test]))
                    if s.needs_target_labels else s.score(cand, view) for s in chosen.values()]
    return out


def candidate_scorers() -> dict[str, Scorer]:
    """Every registered scorer that judges fitted domain adapters."""
    return {name: s for name, s in default_scorers().items() if "domain" in s.families()}


#: a skada plugin whose grid points share the fitted adapter (KMM) across the base estimator's C
KMM_SVC = partial(methods.load, "skada_kmm", base="svc", standardise=False)
KMM_BY_C = {"gamma": [0.1, 1.0], "C": [0.1, 1.0, 10.0]}


def test_shared_fits_and_predictions_give_the_unshared_scores_exactly(problem):
    Xs, ys, Xt, yt, *_ = problem
    chosen = candidate_scorers()
    splits = domain_shuffle_splits(ys, len(Xt), n_splits=2, seed=0)
    expected = unshared_scores(KMM_SVC, KMM_BY_C, Xs, ys, Xt, yt, splits, chosen)
    for n_jobs in (1, 2):
        scores = grid_scores(KMM_SVC, KMM_BY_C, Xs, ys, Xt, splits, chosen, yt, n_jobs=n_jobs)
        np.testing.assert_array_equal(scores["score"].to_numpy(), expected)
        assert scores[["point", "split", "scorer"]].values.tolist() == [
            [i, k, name] for i in range(6) for k in range(2) for name in chosen]


def test_grid_points_that_differ_in_the_final_estimator_share_the_fitted_adapter(problem, monkeypatch):
    from skada._reweight import KMMReweightAdapter

    Xs, ys, Xt, yt, *_ = problem
    fits = []
    fit = KMMReweightAdapter.fit
    monkeypatch.setattr(KMMReweightAdapter, "fit", lambda self, *a, **k: fits.append(self.gamma) or fit(self, *a, **k))
    chosen = {"oracle": Oracle(), "snd": SoftNeighbourhoodDensity(), "importance_weighted": ImportanceWeighted()}
    splits = domain_shuffle_splits(ys, len(Xt), n_splits=2, seed=0)
    grid_scores(KMM_SVC, KMM_BY_C, Xs, ys, Xt, splits, chosen, yt)
    assert sorted(fits) == [0.1] * 2 + [1.0] * 2  # once per gamma and split, not once per (gamma, C) and split


class CountingLR:
    """A source-only logistic regression that counts its predictions per input."""

    def __init__(self, calls: list):
        self.calls = calls

    def fit(self, Xs, ys, Xt):
        self.m = LogisticRegression().fit(Xs, ys)
        return self

    def predict_proba(self, X):
        self.calls.append((self, np.asarray(X).tobytes()))
        return self.m.predict_proba(X)


def test_scorers_share_one_prediction_per_input(problem):
    Xs, ys, Xt, yt, *_ = problem
    shared, unshared = [], []
    chosen = candidate_scorers()
    splits = domain_shuffle_splits(ys, len(Xt), n_splits=2, seed=0)
    scores = grid_scores(lambda: CountingLR(shared), {}, Xs, ys, Xt, splits, chosen, yt)
    expected = unshared_scores(lambda: CountingLR(unshared), {}, Xs, ys, Xt, yt, splits, chosen)
    np.testing.assert_array_equal(scores["score"].to_numpy(), expected)
    assert np.isfinite(expected).all()
    # oracle, circular validation, MixVal, entropy and SND all predict the target part, source accuracy, IW and
    # DEV the source validation part: unshared, a model predicts an input many times; shared, once
    assert len(set(unshared)) < len(unshared) and len(set(shared)) == len(shared)
    assert {x for _, x in shared} == {x for _, x in unshared}
    # a scorer that writes into the arrays it gets cannot change what the next one sees
    cand = SharedCandidate(CountingLR([]).fit(Xs, ys, Xt), lambda: CountingLR([]))
    first = cand.predict_proba(Xt)
    kept = first.copy()
    first[:] = 0
    np.testing.assert_array_equal(cand.predict_proba(Xt), kept)


def test_cell_inner_split_scores_are_the_unshared_scores(problem):
    """A cell's ``inner_splits`` scores (shared predictions) are the means of the definition's, split for split."""
    from types import SimpleNamespace

    from shiftbench.cell_scoring import _fresh, cell_scores
    from shiftbench.families import Outputs

    Xs, ys, Xt, yt, *_ = problem
    task = SimpleNamespace(random_state=3, source_outputs=lambda split: Outputs(Xs, np.zeros((len(Xs), 2)), ys),
                           target_outputs=lambda: Outputs(Xt, np.zeros((len(Xt), 2)), None))
    chosen = {n: s for n, s in candidate_scorers().items() if not s.needs_target_labels}
    scoring = {"kind": "inner_splits", "scorers": list(chosen), "n_splits": 3, "test_size": 0.2}
    method = KMM_SVC(C=0.1)
    splits = domain_shuffle_splits(ys, len(Xt), 3, 0.2, task.random_state)
    expected = np.reshape(unshared_scores(lambda: _fresh(method), {}, Xs.astype(np.float64), ys, Xt.astype(np.float64),
                                          None, splits, chosen), (len(splits), len(chosen))).mean(0)
    assert cell_scores(scoring, method, task, None) == {"scores": dict(zip(chosen, expected)), "score_errors": {}}


def test_reproduction_quick_run(monkeypatch):
    from shiftbench.reproductions import registry, skada_bench_simulated

    # three of the reproduction's methods keep this test to seconds; the quick setting runs all of them
    monkeypatch.setattr(skada_bench_simulated, "METHODS",
                        {k: skada_bench_simulated.METHODS[k] for k in ("source_only", "KMM", "CORAL")})
    result = registry.get("skada-bench-simulated")().run(quick=True)
    table = result.table
    assert list(table.columns[:6]) == ["method", "shift", "scorer", "ours", "paper", "delta"]
    known = table.dropna(subset=["paper"])
    np.testing.assert_allclose(known["delta"], known["ours"] - known["paper"], atol=0.051)
    assert {"source_only", "KMM", "target_only"} <= set(table["method"])
    assert set(table["scorer"]) == {"oracle", "importance_weighted"}
    # the table is the mean of the records, in %
    means = result.records.groupby(["method", "shift", "scorer"])["target_accuracy"].mean()
    for r in table.itertuples():
        assert r.ours == pytest.approx(100 * means[(r.method, r.shift, r.scorer)], abs=0.051)


def test_cross_scenario_selection_on_runner_records(tmp_path, cache_dir):
    """LAME's k chosen on one digits scenario and applied unchanged to the others, from real records."""
    from shiftbench.hydra_app import run_experiment
    from shiftbench.protocols import VALIDATION, CrossScenario
    from shiftbench.store import RecordStore, records_frame

    selection = {"protocol": "cross_scenario", "validation": [{"target": "test"}], "scorers": ["snd"]}
    cfg = {"dataset": {"name": "digits", "options": {"n_train": 1000, "n_val": 300, "n_test": 300},
                       "models": ["small_cnn"], "stream": {"batch_size": 50, "order": "iid"},
                       "scenarios": [{"target": "test"}, {"target": "id_test", "label_shift": [0.5, 5.0]}]},
           "method": ["lame"], "model": None, "seed": [0], "grid": {"lame": {"affinity": ["knn"], "k": [1, 7]}},
           "metric": "acc_avg", "device": "cpu", "progress": False, "dry_run": False, "cache_dir": str(cache_dir),
           "store_dir": str(tmp_path / "store"), "results_dir": str(tmp_path / "results"), "selection": selection}
    run_experiment(cfg)
    frame = records_frame(RecordStore(cfg["store_dir"]).records())
    assert frame["score.snd"].notna().all()  # each cell scored its own predictions
    selected = CrossScenario(["snd"], validation=[{"target": "test"}]).select(frame, "acc_avg").frame
    val = frame[frame["scenario.target"] == "test"].set_index("hparams")
    held = frame[frame["scenario.target"] != "test"]
    assert set(selected["scenario"]) == set(held["scenario"])
    by_scorer = {s: part for s, part in selected.groupby("scorer")}
    assert set(by_scorer[VALIDATION]["chosen"]) == {val["metric.acc_avg"].idxmax()}
    assert set(by_scorer["snd"]["chosen"]) == {val["score.snd"].idxmax()}
    for scorer in (VALIDATION, "snd"):
        chosen = by_scorer[scorer]["chosen"].iloc[0]
        assert by_scorer[scorer]["metric.acc_avg"].mean() == pytest.approx(
            held[held["hparams"] == chosen]["metric.acc_avg"].mean())
    best = held.groupby("scenario")["metric.acc_avg"].max().mean()
    assert by_scorer["oracle"]["metric.acc_avg"].mean() == pytest.approx(best)
    assert (tmp_path / "results" / "settings.md").is_file() and "lame (oracle)" in (
        tmp_path / "results" / "leaderboard.md").read_text()

