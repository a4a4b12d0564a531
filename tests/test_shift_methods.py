"""Covariate-shift plugins, the tabular model and the shift datasets of issue 6."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from shiftbench.cache import ArrayCache
from shiftbench.datasets import load as load_dataset
from shiftbench.datasets.biased_sampling import biased_split
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Task, Truth
from shiftbench.methods import load as load_method
from shiftbench.methods._common import standardise
from shiftbench.methods.double_weighting import dw_kmm, knn_bandwidth, rbf_kernel
from shiftbench.models import build_model
from shiftbench.scenarios import Scenario


def misspecified_shift(seed: int = 0, n: int = 400):
    """1-D inputs, a sinusoidal boundary; the target sits where a linear fit on the source is wrong."""
    rng = np.random.default_rng(seed)

    def sample(n, mean, sd):
        x = rng.normal(mean, sd, size=n)
        return x[:, None], (np.sin(1.5 * x) + 0.3 * rng.normal(size=n) > 0).astype(int)

    return (*sample(n, 0.0, 1.0), *sample(n, 2.0, 0.3))


@pytest.mark.parametrize("method, hp", [("domain_classifier_iw", {}), ("kmm_iw", {}), ("dwgcs", {"D": 4.0})])
def test_reweighting_gains_accuracy_where_the_linear_source_fit_is_wrong(method, hp):
    Xs, ys, Xt, yt = misspecified_shift()
    source_only = LogisticRegression().fit(Xs, ys).score(Xt, yt)
    adapter = load_method(method, **hp).fit(Xs, ys, Xt)
    proba = adapter.predict_proba(Xt)
    assert proba.shape == (len(Xt), 2)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    assert (proba.argmax(1) == yt).mean() > source_only + 0.1


def test_kmm_iw_weights_are_the_d_equals_one_programme():
    Xs, ys, Xt, _ = misspecified_shift(1, n=150)
    adapter = load_method("kmm_iw").fit(Xs, ys, Xt)
    Zs, Zt = standardise(Xs, Xt)
    X = np.vstack([Zs, Zt])
    np.testing.assert_allclose(adapter.weights_, dw_kmm(rbf_kernel(X, knn_bandwidth(X)), len(Zs), 1.0).beta, atol=1e-9)


def test_dwgcs_plugin_is_transductive():
    Xs, ys, Xt, _ = misspecified_shift(2, n=100)
    adapter = load_method("dwgcs", D=2.0).fit(Xs, ys, Xt)
    with pytest.raises(ShiftbenchError, match="transductive"):
        adapter.predict_proba(Xt[:-1])


SKADA_PLUGINS = ["skada_kmm", "skada_density_reweight", "skada_discriminator_reweight", "skada_kliep",
                 "skada_coral", "skada_subspace_alignment", "skada_entropic_ot", "skada_jdot"]


@pytest.mark.parametrize("method", SKADA_PLUGINS)
def test_skada_plugins_fit_and_predict_probabilities(method):
    pytest.importorskip("skada")
    Xs, ys, Xt, _ = misspecified_shift(3)
    Xs, Xt = np.hstack([Xs, Xs**2]), np.hstack([Xt, Xt**2])
    adapter = load_method(method)
    assert adapter.family == "domain"
    proba = adapter.fit(Xs, ys + 1, Xt).predict_proba(Xt)  # labels 1, 2: column 0 is a class never seen
    assert proba.shape == (len(Xt), 3)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    assert (proba[:, 0] == 0).all()


def test_biased_sampling_follows_the_median_protocol():
    values = np.random.default_rng(0).normal(size=20000)
    keep = biased_split(values, seed=1)
    below = values <= np.median(values)
    assert keep[below].mean() == pytest.approx(0.7, abs=0.02)
    assert keep[~below].mean() == pytest.approx(0.3, abs=0.02)
    d = load_dataset("biased_sampling", source="wine", feature=2, seed=4)
    assert d.input_kind == "tabular" and d.n_classes == 3
    sizes = {k: len(s) for k, s in d.splits.items()}
    assert sum(sizes.values()) == 178
    src = np.concatenate([d.splits[k].metadata["below_median"] for k in ("train", "id_val")])
    tgt = np.concatenate([d.splits[k].metadata["below_median"] for k in ("val", "test")])
    assert src.mean() > 0.5 > tgt.mean()
    again = load_dataset("biased_sampling", source="wine", feature=2, seed=4)
    assert again.fingerprint == d.fingerprint


def test_skada_shift_dataset_splits():
    pytest.importorskip("skada")
    d = load_dataset("skada_shift", shift="target_shift", n_samples=20)
    assert set(d.splits) == {"train", "id_val", "val", "test"}
    assert (d.splits["train"].metadata["domain"] == "source").all()
    assert (d.splits["test"].metadata["domain"] == "target").all()
    assert d.splits["train"].x.shape[1] == 2
    with pytest.raises(ShiftbenchError, match="valid shifts"):
        load_dataset("skada_shift", shift="nope")


def test_nycflights_airport_shift_separates_origins():
    d = load_dataset("nycflights_airports", max_per_airport=300)
    assert set(d.splits["train"].metadata["origin"]) == {"EWR"}
    assert set(d.splits["test"].metadata["origin"]) == {"LGA"}
    assert set(d.splits["val"].metadata["month"]) <= {1, 2, 3}


@pytest.mark.parametrize("source", ["breast_cancer", "wine"])
def test_tabular_model_reproduces_sklearn_logistic_regression(source, tmp_path):
    d = load_dataset("biased_sampling", source=source)
    model = build_model("tabular_logistic", d, 0, tmp_path)
    train, test = d.splits["train"], d.splits["test"]
    x = train.x.astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    ref = LogisticRegression(max_iter=2000, random_state=0).fit((x - mean) / std, train.y)
    out = model.forward_arrays(test.inputs())
    np.testing.assert_allclose(out["feats"], (test.x - mean) / std, atol=1e-4)
    probs = np.exp(out["logits"] - out["logits"].max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, ref.predict_proba((test.x - mean) / std), atol=1e-4)


def test_domain_adapters_run_through_the_task_path(tmp_path):
    d = load_dataset("biased_sampling", source="breast_cancer")
    model = build_model("tabular_logistic", d, 0, tmp_path)
    cache = ArrayCache(tmp_path / "cache")
    scenario = Scenario(target="test")
    split = scenario.target_split(d, cache, 0)
    task = Task(d.n_classes, split.unlabelled(), scenario.batches(split.y, 0), 0, model, cache,
                {k: d.splits[k] for k in ("train", "id_val")})
    for name, hp in [("dwgcs", {"D": 2.0}), ("kmm_iw", {}), ("domain_classifier_iw", {}), ("em_correction", {})]:
        method = load_method(name, **hp)
        metrics = method.evaluate(method.run(task), Truth(d, split), task)
        assert 0.8 < metrics["acc_avg"] <= 1.0
