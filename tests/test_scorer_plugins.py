"""Scorers are plugins: discovery (package modules and entry points), the protocols each serves, label-free
output scoring against its definitions and skada, ``shiftbench list scorers``; and the SKADA-Bench
reproduction's methods are the skada method plugins, building SKADA-Bench's pipelines."""

from __future__ import annotations

import dataclasses
import importlib
import sys

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KernelDensity
from sklearn.svm import SVC

from shiftbench import methods, scorers
from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.plugins import describe
from shiftbench.scoring import Scorer, prediction_entropy, soft_neighbourhood_density

SHIPPED = {"source_accuracy", "importance_weighted", "prediction_entropy", "snd", "dev", "circular", "mixval", "oracle"}

MARGIN_SCORER = '''
import numpy as np
from shiftbench.scoring import Scorer


class Margin(Scorer):
    """Mean top-1 minus top-2 probability of the target predictions."""

    name = "test_margin"

    def score_output(self, probs):
        top = np.sort(probs, axis=1)
        return float((top[:, -1] - top[:, -2]).mean())
'''


def fresh_registry(**changes):
    """A registry configured like ``shiftbench.scorers.registry`` (optionally elsewhere), nothing scanned yet."""
    return dataclasses.replace(scorers.registry, **changes)


def test_a_scorer_file_dropped_into_a_package_is_discovered(tmp_path, monkeypatch):
    package = tmp_path / "dropped_scorers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "margin.py").write_text(MARGIN_SCORER)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    registry = fresh_registry(package="dropped_scorers")
    cls = registry.get("test_margin")
    assert issubclass(cls, Scorer) and cls.protocols() == {"cross_scenario"}
    assert "test_margin" in registry.names() and not set(registry.names()) & SHIPPED  # only that package's files
    assert cls().score_output(np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])) == pytest.approx((0.5 + 0.0) / 2)


def test_an_entry_point_scorer_is_discovered_beside_the_shipped_ones(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "margin_scorer_plugin.py").write_text(MARGIN_SCORER)
    dist = site / "margin_scorer_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: margin-scorer-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[shiftbench.scorers]\ntest_margin = margin_scorer_plugin:Margin\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry = fresh_registry()
    assert registry.get("test_margin").__module__ == "margin_scorer_plugin"
    assert SHIPPED | {"test_margin"} <= set(registry.names())
    sys.modules.pop("margin_scorer_plugin", None)


def test_shipped_scorers_are_registered_with_the_oracle_flagged_and_last():
    plugins = scorers.registry.scan_all()
    assert SHIPPED <= set(plugins) and not scorers.registry.import_errors()
    assert [n for n in SHIPPED if plugins[n].needs_target_labels] == ["oracle"]
    defaults = scorers.default_scorers()
    assert list(defaults)[-1] == "oracle" and set(defaults) == set(plugins)
    assert all(type(s) is plugins[n] for n, s in defaults.items())
    assert scorers.load("snd", temperature=0.1).temperature == 0.1
    with pytest.raises(ShiftbenchError, match="temperature"):
        scorers.load("snd", temperature=-1.0)
    with pytest.raises(ShiftbenchError, match="does not take options"):
        scorers.load("snd", bandwidth=1.0)


def test_protocols_follow_the_methods_a_scorer_overrides():
    class Neither(Scorer):
        name = "test_neither"

    class OnlyOutputs(Scorer):
        name = "test_only_outputs"

        def score_output(self, probs):
            return 0.0

    assert Neither.protocols() == frozenset()
    assert OnlyOutputs.protocols() == {"cross_scenario"}
    plugins = scorers.registry.scan_all()
    both = {"prediction_entropy", "snd", "oracle"}
    for name in SHIPPED:
        assert plugins[name].protocols() == ({"nested_cv", "cross_scenario"} if name in both else {"nested_cv"}), name
    with pytest.raises(NotImplementedError, match="does not score outputs"):
        scorers.load("dev").score_output(np.full((3, 2), 0.5))
    with pytest.raises(NotImplementedError, match="does not score candidates"):
        OnlyOutputs().score(None, None)


def dirichlet_probs(n: int = 40, k: int = 3, seed: int = 0) -> np.ndarray:
    probs = np.random.default_rng(seed).dirichlet(np.full(k, 0.7), size=n)
    probs[0] = np.eye(k)[0]  # a one-hot row: 0 log 0 = 0
    return probs


def snd_by_hand(probs: np.ndarray, temperature: float) -> float:
    """Saito et al.'s definition, one sample at a time: entropy of the softmax of cosine similarities / T
    to every other sample."""
    z = probs / np.linalg.norm(probs, axis=1, keepdims=True)
    entropies = []
    for i in range(len(z)):
        sims = np.array([z[i] @ z[j] for j in range(len(z)) if j != i]) / temperature
        q = np.exp(sims - sims.max())
        q /= q.sum()
        entropies.append(-np.sum(q * np.log(q)))
    return float(np.mean(entropies))


def test_score_output_of_entropy_and_snd_follows_the_definitions():
    probs = dirichlet_probs()
    by_hand = -np.mean([-sum(p * np.log(p) for p in row if p > 0) for row in probs])
    assert scorers.load("prediction_entropy").score_output(probs) == pytest.approx(by_hand, rel=1e-12)
    assert scorers.load("prediction_entropy").score_output(probs) == -prediction_entropy(probs)
    for temperature in (0.05, 0.5):
        snd = scorers.load("snd", temperature=temperature)
        assert snd.score_output(probs) == pytest.approx(snd_by_hand(probs, temperature), rel=1e-9)
        assert snd.score_output(probs) == soft_neighbourhood_density(probs, temperature)
    # confident outputs score higher under entropy
    assert scorers.load("prediction_entropy").score_output(np.eye(3)) > scorers.load("prediction_entropy").score_output(
        np.full((3, 3), 1 / 3))
    oracle = scorers.load("oracle")
    assert oracle.score_output(probs, probs.argmax(1)) == 1.0
    with pytest.raises(ShiftbenchError, match="target labels"):
        oracle.score_output(probs)


class FixedOutputs:
    """A stand-in estimator for skada's scorers: its probabilities are given, row i of X asks for row X[i, 0]."""

    def __init__(self, probs: np.ndarray):
        self.probs = probs

    def predict_proba(self, X, sample_domain=None, **params):
        return self.probs[np.asarray(X)[:, 0].astype(int)]

    def predict_log_proba(self, X, sample_domain=None, **params):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


def test_score_output_agrees_with_skada_metrics():
    skm = pytest.importorskip("skada.metrics")
    probs = dirichlet_probs(n=30, k=4, seed=1)
    X = np.r_[[[0.0]], np.arange(len(probs), dtype=float)[:, None]]  # one source row, then the target rows
    y = np.r_[0, -np.ones(len(probs), int)]
    domain = np.r_[1, -np.ones(len(probs), int)]
    estimator = FixedOutputs(np.vstack([probs, probs[:1]]))
    # skada averages -p log p over all N*K entries; the definition is the mean per-sample entropy
    skada_entropy = skm.PredictionEntropyScorer()(estimator, X, y, sample_domain=domain)
    assert scorers.load("prediction_entropy").score_output(probs) == pytest.approx(probs.shape[1] * skada_entropy,
                                                                                  rel=1e-12)
    skada_snd = skm.SoftNeighborhoodDensity(T=0.05)(estimator, X, y, sample_domain=domain)
    assert scorers.load("snd").score_output(probs) == pytest.approx(skada_snd, rel=1e-9)


def test_list_scorers_shows_each_with_its_flag_protocols_and_docstring(capsys):
    assert main(["list", "scorers"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    by_name = {line.split()[0]: line for line in lines}
    plugins = scorers.registry.scan_all()
    assert set(by_name) == set(plugins)
    for name, cls in plugins.items():
        line = by_name[name]
        assert f"[{', '.join(sorted(cls.protocols()))}]" in line and describe(cls) in line
        assert ("[oracle" in line) == cls.needs_target_labels
    assert "[cross_scenario, nested_cv]" in by_name["snd"] and "[nested_cv]" in by_name["circular"]


# ------------------------------------------------------------- the reproduction's methods are plugins
skada = pytest.importorskip("skada")

from shiftbench.grids import expand  # noqa: E402
from shiftbench.methods.skada_adapters import SkadaAdapter  # noqa: E402
from skada.base import SelectSource  # noqa: E402
from skada.transformers import StratifiedDomainSubsampler  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from shiftbench.reproductions.skada_bench_simulated import (METHODS, PIPELINE, by_domain, method_factory,  # noqa: E402
                                                            method_grid, simulated)


@pytest.mark.parametrize("label", list(METHODS))
def test_reproduction_methods_are_plugin_instances_over_their_grids(label):
    plugin, grid = METHODS[label]
    cls = methods.registry.get(plugin)
    points = method_grid(label)
    assert points == expand(grid)
    for point in points:
        model = method_factory(label)(**point)
        assert type(model) is cls and isinstance(model, SkadaAdapter)
        assert model.get_params() == {**cls.default_hyperparameters(), **PIPELINE, **point}


@pytest.fixture(scope="module")
def small_problem():
    """A small covariate-shift problem in float64 (the plugins compute in float64; skada keeps float32 inputs)."""
    Xs, ys, Xt, yt = by_domain(*simulated("covariate_shift", 0, scale=0.1))
    return Xs.astype(np.float64), ys, Xt.astype(np.float64), yt


def skada_reference(adapters: list, base, Xs, ys, Xt):
    """SKADA-Bench's pipeline built from skada directly, fitted on skada's stacked layout."""
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = skada.make_da_pipeline(*adapters, base.set_fit_request(sample_weight=True))
        pipe.fit(np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), int)],
                 sample_domain=np.r_[np.ones(len(Xs), int), -2 * np.ones(len(Xt), int)])
    return pipe


def reference_proba(pipe, X, domain: int):
    with sklearn.config_context(enable_metadata_routing=True):
        return pipe.predict_proba(X, sample_domain=np.full(len(X), domain), allow_source=domain > 0)


@pytest.mark.parametrize("plugin, params, adapter", [
    ("skada_source_only", {}, lambda: []),
    ("skada_kmm", {"gamma": 0.1}, lambda: [skada.KMMReweightAdapter(gamma=0.1)]),
    ("skada_density_reweight", {"bandwidth": "scott"},
     lambda: [skada.DensityReweightAdapter(weight_estimator=KernelDensity(bandwidth="scott"))]),
    ("skada_coral", {"assume_centered": True}, lambda: [skada.CORALAdapter(assume_centered=True)]),
    ("skada_linear_ot", {"reg": 0.1, "bias": False}, lambda: [skada.LinearOTMappingAdapter(reg=0.1, bias=False)]),
    ("skada_nn_reweight", {"laplace_smoothing": True},
     lambda: [skada.NearestNeighborReweightAdapter(laplace_smoothing=True)]),
    ("skada_gaussian_reweight", {"reg": 0.01}, lambda: [skada.GaussianReweightAdapter(reg=0.01)]),
    ("skada_subspace_alignment", {"n_components": 1}, lambda: [skada.SubspaceAlignmentAdapter(n_components=1)]),
    ("skada_kliep", {"gamma": "scale"}, lambda: [skada.KLIEPReweightAdapter(gamma="scale", random_state=0)]),
    ("skada_mmd_tars", {"gamma": 1.0, "reg": 1e-6}, lambda: [skada.MMDTarSReweightAdapter(gamma=1.0, reg=1e-6)]),
    ("skada_discriminator_reweight", {"domain_classifier": "svc"},
     lambda: [skada.DiscriminatorReweightAdapter(domain_classifier=SVC(probability=True, random_state=0))]),
    ("skada_tca", {"n_components": 2, "mu": 10, "subsample": 100},
     lambda: [StratifiedDomainSubsampler(100, random_state=0),
              skada.TransferComponentAnalysisAdapter(n_components=2, mu=10)]),
    ("skada_tsl", {"n_components": 1, "mu": 1, "max_iter": 20},
     lambda: [skada.TransferSubspaceLearningAdapter(n_components=1, mu=1, max_iter=20)]),
    ("skada_ot_mapping", {"metric": "cosine", "norm": "median"},
     lambda: [skada.OTMappingAdapter(metric="cosine", norm="median")]),
    ("skada_entropic_ot", {"reg_e": 0.5, "norm": "median"},
     lambda: [skada.EntropicOTMappingAdapter(reg_e=0.5, norm="median")]),
    ("skada_class_reg_ot", {"reg_e": 0.5, "reg_cl": 0.5},
     lambda: [skada.ClassRegularizerOTMappingAdapter(reg_e=0.5, reg_cl=0.5)]),
    ("skada_ot_label_prop", {"reg": 0.1, "n_iter_max": 100}, lambda: [skada.OTLabelPropAdapter(reg=0.1, n_iter_max=100)]),
    ("skada_mmd_ls", {"gamma": 1.0, "max_iter": 5}, lambda: [skada.MMDLSConSMappingAdapter(gamma=1.0, max_iter=5)]),
])
def test_plugins_with_base_svc_are_skada_benchs_pipelines(small_problem, plugin, params, adapter):
    Xs, ys, Xt, _ = small_problem
    model = methods.load(plugin, **PIPELINE, **params).fit(Xs, ys, Xt)
    reference = skada_reference(adapter(), SVC(probability=True, random_state=0), Xs, ys, Xt)
    np.testing.assert_allclose(model.predict_proba(Xt), reference_proba(reference, Xt, -2), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(Xs, domain="source"), reference_proba(reference, Xs, 1),
                               rtol=1e-10, atol=1e-12)


def test_jpca_is_a_source_pca_before_the_source_trained_base(small_problem):
    Xs, ys, Xt, _ = small_problem
    model = methods.load("skada_jpca", **PIPELINE, n_components=1).fit(Xs, ys, Xt)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = skada.make_da_pipeline(SelectSource(PCA(1)), SelectSource(SVC(probability=True, random_state=0)))
        pipe.fit(np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), int)],
                 sample_domain=np.r_[np.ones(len(Xs), int), -np.ones(len(Xt), int)])
    np.testing.assert_allclose(model.predict_proba(Xt), reference_proba(pipe, Xt, -1), rtol=1e-10, atol=1e-12)


def test_jdot_with_the_svc_base_is_skada_benchs_jdot(small_problem):
    Xs, ys, Xt, _ = small_problem
    model = methods.load("skada_jdot", **PIPELINE, metric="hinge", alpha=0.3, subsample=100).fit(Xs, ys, Xt)
    with sklearn.config_context(enable_metadata_routing=True):
        base = SVC(probability=True, random_state=0).set_fit_request(sample_weight=True)
        pipe = skada.make_da_pipeline(StratifiedDomainSubsampler(100, random_state=0),
                                      skada.JDOTClassifier(base, alpha=0.3, metric="hinge"))
        pipe.fit(np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), int)],
                 sample_domain=np.r_[np.ones(len(Xs), int), -np.ones(len(Xt), int)])
    np.testing.assert_allclose(model.predict_proba(Xt), reference_proba(pipe, Xt, -1), rtol=1e-10, atol=1e-12)


def test_dasvm_refuses_more_than_two_classes():
    with pytest.raises(ShiftbenchError, match="binary"):
        methods.load("skada_dasvm").fit(np.eye(3), np.arange(3), np.eye(3))


def test_default_hyperparameters_keep_the_standardised_logistic_pipeline(small_problem):
    Xs, ys, Xt, _ = small_problem
    X = np.vstack([Xs, Xt])
    mean, std = X.mean(0), X.std(0)
    for plugin, factory in (("skada_kmm", skada.KMMReweight), ("skada_coral", skada.CORAL),
                            ("skada_density_reweight", skada.DensityReweight)):
        model = methods.load(plugin).fit(Xs, ys, Xt)
        assert (model.base, model.standardise) == ("logistic", True)
        with sklearn.config_context(enable_metadata_routing=True):
            pipe = factory(LogisticRegression(max_iter=2000).set_fit_request(sample_weight=True))
            pipe.fit((X - mean) / std, np.r_[ys, -np.ones(len(Xt), int)],
                     sample_domain=np.r_[np.ones(len(Xs), int), -np.ones(len(Xt), int)])
            expected = pipe.predict_proba((Xt - mean) / std, sample_domain=-np.ones(len(Xt), int))
        np.testing.assert_allclose(model.predict_proba(Xt), expected, rtol=1e-10, atol=1e-12)


def test_mapping_plugins_predict_source_and_target_inputs_differently(small_problem):
    Xs, ys, Xt, _ = small_problem
    model = methods.load("skada_coral", **PIPELINE).fit(Xs, ys, Xt)
    assert not np.allclose(model.predict_proba(Xs, domain="source"), model.predict_proba(Xs, domain="target"))
    assert set(model.predict(Xt)) <= {0, 1} and len(model.predict(Xs, domain="source")) == len(Xs)
    with pytest.raises(ShiftbenchError, match="domain"):
        model.predict_proba(Xt, domain="both")


@pytest.mark.parametrize("plugin, params, match", [
    ("skada_kmm", {"base": "forest"}, "base"), ("skada_kmm", {"standardise": "no"}, "standardise"),
    ("skada_kmm", {"gamma": -1.0}, "gamma"), ("skada_density_reweight", {"bandwidth": "wide"}, "bandwidth"),
    ("skada_coral", {"reg": "manual"}, "reg"), ("skada_subspace_alignment", {"n_components": 1.5}, "n_components"),
    ("skada_nn_reweight", {"laplace_smoothing": 1}, "laplace_smoothing"),
])
def test_bad_hyperparameters_are_one_line_errors(plugin, params, match):
    with pytest.raises(ShiftbenchError, match=match):
        methods.load(plugin, **params)
