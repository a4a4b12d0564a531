"""Label-free performance estimation: CBPE against NannyML, M-CBPE under covariate shift,
ATC / DoC / importance weighting by their definitions, chunked monitoring and the plugins."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from shiftbench import methods
from shiftbench.chunks import chunk_by_period, make_chunks
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, Outputs
from shiftbench.methods import cbpe as cbpe_module
from shiftbench.methods._density_ratio import clipped_ratios, density_ratios, paper_ratios
from shiftbench.methods.cbpe import CBPE, MCBPE, needs_calibration
from shiftbench.methods._monitoring import plot_estimates, realised_metrics
from shiftbench.report import sampling_error_notes

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def binary_data(n: int, seed: int, power: float = 1.5, ties: bool = False):
    """Scores miscalibrated by a power law (true P(y=1|p) = p**power); optional tied scores."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    if ties:
        p = np.round(p, 2)
    y = (rng.random(n) < p ** power).astype(int)
    return p, y


def multiclass_data(n: int, k: int, seed: int, scale: float = 2.0):
    """Softmax scores whose true class probabilities are a sharpened version of them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    truth = p ** 1.5 / (p ** 1.5).sum(1, keepdims=True)
    y = (truth.cumsum(1) > rng.random((n, 1))).argmax(1)
    return p, y


# ----------------------------------------------------------------------------- CBPE vs NannyML


@pytest.fixture(scope="module")
def nml():
    os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
    pytest.importorskip("statsmodels")  # nannyml's plotting imports it at import time
    return pytest.importorskip("nannyml")


def nannyml_binary(nml, p_ref, y_ref, p_an, chunk_size):
    ref = pd.DataFrame({"p": p_ref, "y": y_ref, "pred": (p_ref > 0.5).astype(int)})
    an = pd.DataFrame({"p": p_an, "pred": (p_an > 0.5).astype(int)})
    est = nml.CBPE(metrics=METRICS, y_pred_proba="p", y_pred="pred", y_true="y",
                   problem_type="classification_binary", chunk_size=chunk_size)
    return est.fit(ref).estimate(an).filter(period="analysis").to_df(), est


def nannyml_multiclass(nml, p_ref, y_ref, p_an, chunk_size):
    k = p_ref.shape[1]
    cols = {c: f"p{c}" for c in range(k)}
    ref = pd.DataFrame({f"p{c}": p_ref[:, c] for c in range(k)}).assign(y=y_ref, pred=p_ref.argmax(1))
    an = pd.DataFrame({f"p{c}": p_an[:, c] for c in range(k)}).assign(pred=p_an.argmax(1))
    est = nml.CBPE(metrics=METRICS, y_pred_proba=cols, y_pred="pred", y_true="y",
                   problem_type="classification_multiclass", chunk_size=chunk_size)
    return est.fit(ref).estimate(an).filter(period="analysis").to_df()


def assert_same_as_nannyml(theirs: pd.DataFrame, ours: pd.DataFrame) -> None:
    assert len(theirs) == len(ours)
    for m in METRICS:
        np.testing.assert_allclose(ours[m], theirs[(m, "value")].astype(float), rtol=0, atol=1e-12, err_msg=m)
        np.testing.assert_allclose(ours[f"{m}_lower"], theirs[(m, "lower_threshold")].astype(float), atol=1e-12)
        np.testing.assert_allclose(ours[f"{m}_upper"], theirs[(m, "upper_threshold")].astype(float), atol=1e-12)
        np.testing.assert_array_equal(ours[f"{m}_alert"], theirs[(m, "alert")].astype(bool))


@pytest.mark.parametrize("ties", [False, True])
def test_cbpe_binary_matches_nannyml(nml, ties):
    p_ref, y_ref = binary_data(3000, 0, ties=ties)
    p_an, _ = binary_data(2300, 1, power=1.0, ties=ties)  # last chunk incomplete (300 rows)
    p_an = p_an ** 0.7
    theirs, est = nannyml_binary(nml, p_ref, y_ref, p_an, chunk_size=500)
    cbpe = CBPE(metrics=METRICS).fit(p_ref, y_ref)
    assert (cbpe.calibrators_[1] is not None) == est.needs_calibration
    assert_same_as_nannyml(theirs, cbpe.estimate(p_an, chunk_size=500))
    # a (N, 2) probability matrix is the same binary problem
    two_col = np.column_stack([1 - p_an, p_an])
    ours2 = CBPE(metrics=METRICS).fit(np.column_stack([1 - p_ref, p_ref]), y_ref).estimate(two_col, chunk_size=500)
    assert_same_as_nannyml(theirs, ours2)


def test_cbpe_matches_nannyml_on_census_like_period_chunks(nml):
    """Like the census check: 30 period chunks of unequal sizes, chunked by NannyML from a daily timestamp
    (its period chunker) and by shiftbench from the period labels; the estimates are identical."""
    rng = np.random.default_rng(3)
    p_ref, y_ref = binary_data(6000, 2, power=0.6)
    periods = np.sort(rng.integers(0, 30, 9000))
    p_an = np.clip(binary_data(9000, 4)[0] + 0.02 * periods / 30, 0, 1)
    ref = pd.DataFrame({"p": p_ref, "y": y_ref, "pred": (p_ref > 0.5).astype(int), "t": pd.Timestamp("2019-01-01")})
    an = pd.DataFrame({"p": p_an, "pred": (p_an > 0.5).astype(int),
                       "t": pd.Timestamp("2020-01-01") + pd.to_timedelta(periods, "D")})
    est = nml.CBPE(metrics=METRICS, y_pred_proba="p", y_pred="pred", y_true="y", problem_type="classification_binary",
                   timestamp_column_name="t", chunk_period="D").fit(ref)
    theirs = est.estimate(an).filter(period="analysis").to_df()
    cbpe = CBPE(metrics=METRICS).fit(p_ref, y_ref)
    assert (cbpe.calibrators_[1] is not None) == est.needs_calibration
    ours = cbpe.estimate(p_an, periods=periods)
    assert len(theirs) == len(ours) == 30 and len(np.unique(ours["n"])) > 10
    for m in METRICS:  # estimates only: NannyML's alert band here comes from its one reference period
        np.testing.assert_allclose(ours[m], theirs[(m, "value")].astype(float), rtol=0, atol=1e-12, err_msg=m)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cbpe_binary_calibration_decision_matches_nannyml(nml, seed):
    """Calibrated scores on a grid: the ECE comparison goes either way depending on the sample."""
    rng = np.random.default_rng(seed)
    p_ref = np.round(rng.random(3000) * 0.8 + 0.1, 1)
    y_ref = (rng.random(3000) < p_ref).astype(int)
    theirs, est = nannyml_binary(nml, p_ref, y_ref, p_ref[:1000], chunk_size=250)
    cbpe = CBPE(metrics=METRICS).fit(p_ref, y_ref)
    assert (cbpe.calibrators_[1] is not None) == est.needs_calibration
    assert_same_as_nannyml(theirs, cbpe.estimate(p_ref[:1000], chunk_size=250))


def test_cbpe_multiclass_separable_class_skips_calibration(nml):
    p_ref, y_ref = multiclass_data(2000, 3, 30)
    p_ref[:, 0] = np.where(y_ref == 0, 0.9, 0.01)  # class 0 perfectly ranked: AUC 1, no calibration
    p_ref /= p_ref.sum(1, keepdims=True)
    cbpe = CBPE(metrics=METRICS).fit(p_ref, y_ref)
    assert cbpe.calibrators_[0] is None and cbpe.calibrators_[1] is not None
    assert_same_as_nannyml(nannyml_multiclass(nml, p_ref, y_ref, p_ref[:900], chunk_size=300),
                           cbpe.estimate(p_ref[:900], chunk_size=300))


def test_cbpe_multiclass_matches_nannyml(nml):
    p_ref, y_ref = multiclass_data(3000, 4, 3)
    p_an, _ = multiclass_data(2100, 4, 4, scale=2.5)
    theirs = nannyml_multiclass(nml, p_ref, y_ref, p_an, chunk_size=400)
    assert_same_as_nannyml(theirs, CBPE(metrics=METRICS).fit(p_ref, y_ref).estimate(p_an, chunk_size=400))


# ----------------------------------------------------------------------------- CBPE by the definition


def test_needs_calibration_rule():
    p, y = binary_data(4000, 5, power=3.0)
    assert needs_calibration(y, p)
    assert not needs_calibration(np.ones(100, int), np.linspace(0, 1, 100))  # one class
    assert not needs_calibration((np.arange(100) >= 50).astype(int), np.linspace(0, 1, 100))  # AUC 1


def test_cbpe_estimates_track_realised_metrics_on_miscalibrated_scores():
    p_ref, y_ref = binary_data(20000, 6, power=2.0)
    p_an, y_an = binary_data(20000, 7, power=2.0)
    p_an, y_an = p_an[p_an > 0.3], y_an[p_an > 0.3]  # a prior shift in score space: calibration still holds
    est = CBPE(metrics=METRICS).fit(p_ref, y_ref).estimate(p_an, chunk_size=5000)
    scores = np.column_stack([1 - p_an, p_an])
    realised = realised_metrics(y_an, scores, (p_an > 0.5).astype(int), make_chunks(len(p_an), 5000), tuple(METRICS))
    for m in METRICS:
        assert np.abs(est[m] - realised[m]).max() < 0.03, m
    naive_acc = np.mean(np.where(p_an > 0.5, p_an, 1 - p_an))  # uncalibrated confidence is far off
    assert abs(naive_acc - realised["accuracy"].mean()) > 0.05


@pytest.mark.parametrize("k", [2, 4])
def test_realised_metrics_equal_sklearn_per_chunk(k):
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(23)
    z = rng.integers(0, 4, size=(1000, k)).astype(float)  # few distinct scores: many ties
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = rng.integers(0, k, 1000)
    y[:100] = 0  # a first chunk with one class: NaN where sklearn is undefined
    pred = p.argmax(1)
    chunks = make_chunks(len(y), chunk_size=100)
    ours = realised_metrics(y, p, pred, chunks, tuple(METRICS))
    avg = {"average": "binary"} if k == 2 else {"average": "macro", "labels": np.arange(k)}
    for c, idx in enumerate(chunks.members()[1:], start=1):
        yc, pc, sc = y[idx], pred[idx], p[idx]
        assert ours["accuracy"][c] == pytest.approx(np.mean(yc == pc))
        for name, fn in [("precision", precision_score), ("recall", recall_score), ("f1", f1_score)]:
            assert ours[name][c] == pytest.approx(fn(yc, pc, zero_division=0, **avg)), name
        auc = roc_auc_score(yc, sc[:, 1]) if k == 2 else roc_auc_score(yc, sc, multi_class="ovr", labels=np.arange(k))
        assert ours["roc_auc"][c] == pytest.approx(auc)
    assert ours.loc[0, ["precision", "recall", "f1", "roc_auc"]].isna().all()


# ----------------------------------------------------------------------------- M-CBPE


def covariate_shift_data(n: int, seed: int, shift: float):
    """y depends on x1 and x2; the model's score uses x1 only, so shifting x2 breaks its calibration."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(size=n), rng.normal(loc=shift, size=n)])
    y = (rng.random(n) < sigmoid(2 * x[:, 0] + 2 * x[:, 1])).astype(int)
    return x, sigmoid(1.5 * x[:, 0]), y


def test_mcbpe_corrects_cbpe_under_covariate_shift():
    x_ref, p_ref, y_ref = covariate_shift_data(4000, 8, 0.0)
    x_an, p_an, y_an = covariate_shift_data(3000, 9, 1.5)
    realised = np.mean((p_an > 0.5) == y_an)
    cbpe = CBPE(metrics=("accuracy",)).fit(p_ref, y_ref).estimate(p_an, chunk_size=1000)["accuracy"]
    mcbpe = MCBPE(metrics=("accuracy",)).fit(x_ref, p_ref, y_ref).estimate(x_an, p_an, chunk_size=1000)["accuracy"]
    assert np.abs(cbpe - realised).mean() > 0.05
    assert np.abs(mcbpe - realised).mean() < 0.5 * np.abs(cbpe - realised).mean()


def test_mcbpe_without_shift_agrees_with_reference_accuracy():
    x_ref, p_ref, y_ref = covariate_shift_data(2000, 10, 0.0)
    x_an, p_an, y_an = covariate_shift_data(1000, 11, 0.0)
    est = MCBPE(metrics=("accuracy", "f1"), classifier="gbm", n_folds=3).fit(x_ref, p_ref, y_ref).estimate(x_an, p_an)
    assert abs(est["accuracy"].iloc[0] - np.mean((p_an > 0.5) == y_an)) < 0.03


def test_mcbpe_multiclass_without_shift_is_close_to_cbpe():
    p_ref, y_ref = multiclass_data(3000, 4, 26)
    p_an, _ = multiclass_data(1000, 4, 27)
    noise = np.random.default_rng(28).normal(size=p_ref.shape) * 0.1
    metrics = ("accuracy", "f1", "roc_auc")
    m = MCBPE(metrics=metrics).fit(np.log(p_ref) + noise, p_ref, y_ref).estimate(np.log(p_an), p_an, chunk_size=500)
    c = CBPE(metrics=metrics).fit(p_ref, y_ref).estimate(p_an, chunk_size=500)
    np.testing.assert_allclose(m[list(metrics)], c[list(metrics)], atol=0.01)


def test_paper_ratio_recipe_on_a_hand_example():
    """n_ref / n_chunk * p / max(0.05, 1 - p), floored at 0.001, with n_ref / n_chunk = 2."""
    p = np.array([0.5, 0.99, 1e-5, 0.9])
    expected = [2 * 0.5 / 0.5, 2 * 0.99 / 0.05, 0.001, 2 * 0.9 / 0.1]  # 1 - 0.99 < 0.05; 2e-5 < 0.001
    np.testing.assert_allclose(paper_ratios(p, n_ref=200, n_target=100, max_ratio=1.0), expected, rtol=1e-12)
    clipped = clipped_ratios(np.array([0.5, 0.5, 0.5, 0.9999]), n_ref=4, n_target=4, max_ratio=2.0)
    # ratios 1, 1, 1, 9999: the last capped at 2 x their mean 2500.5 = 5001, then divided by the new mean 1251
    np.testing.assert_allclose(clipped, np.array([1, 1, 1, 5001]) / 1251)


@pytest.mark.parametrize("classifier, ratio", [("gbm", "paper"), ("logistic", "clip")])
def test_the_classifier_and_ratio_choice_reach_the_density_ratios(monkeypatch, classifier, ratio):
    seen = []

    def spy(*args):
        seen.append(args)
        return density_ratios(*args)

    monkeypatch.setattr(cbpe_module, "density_ratios", spy)
    x_ref, p_ref, y_ref = covariate_shift_data(600, 30, 0.0)
    x_an, p_an, _ = covariate_shift_data(200, 31, 1.0)
    plugin = methods.load("mcbpe", classifier=classifier, ratio=ratio)
    plugin.run(fake_task(x_ref, p_ref, y_ref, x_an, p_an, [np.arange(200)]))
    (X_ref, X_chunk, used_classifier, max_ratio, n_folds, random_state, used_ratio), = seen
    assert (used_classifier, used_ratio, max_ratio, len(X_chunk)) == (classifier, ratio, 20.0, 200)
    w = density_ratios(X_ref, X_chunk, classifier, max_ratio, n_folds, random_state, ratio)
    other = density_ratios(X_ref, X_chunk, "logistic" if classifier == "gbm" else "gbm", max_ratio, n_folds,
                           random_state, ratio)
    assert not np.allclose(w, other)  # the classifier changes the weights


def test_single_example_class_in_reference_is_a_clear_error():
    p, y = multiclass_data(500, 3, 29)
    y[:] = 0
    y[0], y[1:3] = 1, 2
    with pytest.raises(ShiftbenchError, match="single reference example"):
        CBPE().fit(p, y)


# ----------------------------------------------------------------------------- ATC, DoC, IW




def test_atc_reproduces_reference_accuracy_and_tracks_shift():
    p_ref, y_ref = multiclass_data(5000, 5, 12)
    atc = methods.load("atc", score="negative_entropy").fit(Outputs.from_probs(p_ref, y_ref))
    ref_acc = np.mean(p_ref.argmax(1) == y_ref)
    assert atc.process(Batch.from_arrays(probs=p_ref)) == pytest.approx(ref_acc, abs=1e-12)  # the threshold's defining property
    p_an, y_an = multiclass_data(5000, 5, 13, scale=1.0)  # flatter scores: lower accuracy
    realised = np.mean(p_an.argmax(1) == y_an)
    assert realised < ref_acc - 0.1
    assert atc.process(Batch.from_arrays(probs=p_an)) < ref_acc - 0.1


def test_doc_is_reference_accuracy_plus_confidence_change():
    p_ref, y_ref = multiclass_data(2000, 3, 14)
    p_an, _ = multiclass_data(500, 3, 15, scale=1.0)
    doc = methods.load("doc").fit(Outputs.from_probs(p_ref, y_ref))
    expected = np.mean(p_ref.argmax(1) == y_ref) - (p_ref.max(1).mean() - p_an.max(1).mean())
    assert doc.process(Batch.from_arrays(probs=p_an)) == pytest.approx(expected)


def test_importance_weighted_accuracy_corrects_covariate_shift():
    x_ref, p_ref, y_ref = covariate_shift_data(4000, 16, 0.0)
    x_an, p_an, y_an = covariate_shift_data(1500, 17, 1.5)
    scores_ref, scores_an = np.column_stack([1 - p_ref, p_ref]), np.column_stack([1 - p_an, p_an])
    iw = methods.load("iw_estimator").fit(Outputs.from_probs(scores_ref, y_ref, feats=x_ref))
    realised, ref_acc = np.mean(scores_an.argmax(1) == y_an), np.mean(scores_ref.argmax(1) == y_ref)
    assert abs(iw.process(Batch.from_arrays(probs=scores_an, feats=x_an)) - realised) < 0.5 * abs(ref_acc - realised)


# ----------------------------------------------------------------------------- runner plugins


def fake_task(x_ref, p_ref, y_ref, x_an, p_an, batches):
    logits = lambda p: np.log(np.column_stack([1 - p, p]))
    target = Outputs(x_an.astype(np.float32), logits(p_an))
    return SimpleNamespace(
        source_outputs=lambda split: Outputs(x_ref.astype(np.float32), logits(p_ref), y_ref),
        target_outputs=lambda: target, stream=lambda: [target.batch(i) for i in batches],
        batches=batches, random_state=0,
    )


@pytest.mark.parametrize("name", ["cbpe", "mcbpe", "atc", "doc", "iw_estimator"])
def test_estimator_plugins_run_and_evaluate(name):
    x_ref, p_ref, y_ref = covariate_shift_data(2000, 18, 0.0)
    x_an, p_an, y_an = covariate_shift_data(600, 19, 0.5)
    batches = np.array_split(np.arange(600), 3)
    task = fake_task(x_ref, p_ref, y_ref, x_an, p_an, batches)
    method = methods.load(name)
    out = method.run(task)
    assert list(out["chunk"]) == [0, 1, 2] and out["estimate"].between(0, 1).all()
    scores = method.evaluate(out, SimpleNamespace(split=SimpleNamespace(y=y_an)), task)
    assert 0 <= scores["mae_acc"] <= scores["max_ae_acc"] < 0.25


# ----------------------------------------------------------------------------- monitoring


def test_chunks_by_period_and_alerts(tmp_path):
    p_ref, y_ref = binary_data(4000, 20, power=1.0)
    months = np.repeat(["2013-03", "2013-01", "2013-02"], [500, 400, 300])
    p_an = np.r_[np.full(500, 0.55), binary_data(700, 21, power=1.0)[0]]  # March: unconfident model
    est = CBPE(metrics=("accuracy",)).fit(p_ref, y_ref).estimate(p_an, periods=months)
    assert list(est["key"]) == ["2013-01", "2013-02", "2013-03"] and list(est["n"]) == [400, 300, 500]
    assert list(est["accuracy_alert"]) == [False, False, True]
    chunks = chunk_by_period(pd.Series(pd.to_datetime(["2013-02-03", "2013-01-05", "2013-02-07"])).dt.to_period("M"))
    assert chunks.keys == ["2013-01", "2013-02"] and list(chunks.ids) == [1, 0, 1]
    fig = plot_estimates(est, "accuracy", realised=[0.75, 0.75, 0.55], path=tmp_path / "acc.png")
    assert (tmp_path / "acc.png").stat().st_size > 1000 and fig is not None


def test_band_for_chunks_larger_than_the_reference_is_rescaled():
    p_ref, y_ref = binary_data(1200, 24, power=1.0)
    p_an, y_an = binary_data(5000, 25, power=1.0)
    est = CBPE(metrics=("accuracy",)).fit(p_ref, y_ref).estimate(p_an)  # one chunk of 5000 > reference
    lo, hi = est.loc[0, "accuracy_lower"], est.loc[0, "accuracy_upper"]
    ref_chunks = realised_metrics(y_ref, np.column_stack([1 - p_ref, p_ref]), (p_ref > 0.5).astype(int),
                                  make_chunks(1200, 200), ("accuracy",))["accuracy"]
    half_width = 3 * ref_chunks.std(ddof=0) * np.sqrt(200 / 5000)
    assert (lo, hi) == pytest.approx((ref_chunks.mean() - half_width, ref_chunks.mean() + half_width))
    assert lo < np.mean((p_an > 0.5) == y_an) < hi


def test_the_table_notes_the_sampling_error_of_the_realised_chunk_accuracy():
    """sqrt(a(1-a)/n) per chunk, mean over a cell's chunks, then over the cells of a column, in percent."""
    chunks = lambda *an: json.dumps([{"chunk": i, "n": n, "realised": a, "estimate": 0.5} for i, (a, n) in enumerate(an)])
    frame = pd.DataFrame({
        "dataset": "d", "model": "m", "status": ["ok", "ok", "ok", "failed"], "group": ["test", "test", "val", "val"],
        "details": [chunks((0.5, 100), (0.9, 100)), chunks((0.5, 100), (0.9, 100)), chunks((0.8, 10000)), None]})
    (note,) = sampling_error_notes(frame)
    assert note.endswith("d/m: test 4.0, val 0.4")  # (0.05 + 0.03) / 2; 0.004 (the failed cell left out)
    assert sampling_error_notes(frame.assign(details=None)) == []


def test_bad_inputs_give_clear_errors():
    p, y = binary_data(500, 22)
    with pytest.raises(ShiftbenchError, match="valid metrics"):
        CBPE(metrics=("auroc",))
    with pytest.raises(ShiftbenchError, match="not fitted"):
        CBPE().estimate(p)
    with pytest.raises(ShiftbenchError, match="logits"):
        CBPE().fit(p * 3 - 1, y)
    with pytest.raises(ShiftbenchError, match="classes"):
        CBPE().fit(p, y).estimate(np.full((10, 3), 1 / 3))
    with pytest.raises(ShiftbenchError, match="either chunk_size or periods"):
        CBPE().fit(p, y).estimate(p, chunk_size=10, periods=np.zeros(len(p)))
    with pytest.raises(ShiftbenchError, match="X_ref"):
        MCBPE().fit(np.zeros((3, 2)), p, y)


@pytest.mark.parametrize("counts", [(50, 50), (3, 997), (70, 70, 70, 90), (120, 40, 2, 2, 300)])
def test_cbpe_calibration_splits_equal_scikit_learns(counts):
    """CBPE draws its calibration splits itself (without scikit-learn's per-element lists); they must be
    StratifiedShuffleSplit's, index for index, for shuffled labels, imbalance and tied class counts."""
    from sklearn.model_selection import StratifiedShuffleSplit

    from shiftbench.methods.cbpe import CALIBRATION_TEST_SIZE, stratified_shuffle_splits

    y = np.random.default_rng(len(counts)).permutation(np.repeat(np.arange(len(counts)), counts))
    ours = stratified_shuffle_splits(y, 3, CALIBRATION_TEST_SIZE, 42)
    theirs = StratifiedShuffleSplit(3, test_size=CALIBRATION_TEST_SIZE, random_state=42).split(np.zeros(len(y)), y)
    for (train, test), (train_ref, test_ref) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, train_ref)
        np.testing.assert_array_equal(test, test_ref)
