"""EM, BBSE, BCTS and the posterior correction against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Outputs
from shiftbench.methods import label_shift as ls
from tasks import outputs_task

MEANS = np.array([[-2.0, 0.0], [0.0, 1.5], [2.0, 0.0]])


def gaussian_sample(prior: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x | y ~ N(mean_y, I); returns x and y."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(prior), size=n, p=prior)
    return MEANS[y] + rng.normal(size=(n, 2)), y


def bayes_posterior(x: np.ndarray, prior: np.ndarray) -> np.ndarray:
    loglik = -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)
    return ls.softmax(loglik + np.log(prior)[None])


SOURCE = np.array([0.5, 0.3, 0.2])
TARGET = np.array([0.1, 0.3, 0.6])


def test_em_on_the_source_distribution_returns_the_source_prior():
    x, _ = gaussian_sample(SOURCE, 2000, 0)
    probs = bayes_posterior(x, SOURCE)
    # abstention's convention: the source prior is the mean source posterior -> exactly no shift
    np.testing.assert_allclose(ls.em_prior(probs, probs.mean(0)), probs.mean(0), atol=1e-12)
    # a fresh source-distributed sample: the estimate is the source prior up to sampling error
    x2, _ = gaussian_sample(SOURCE, 20000, 1)
    np.testing.assert_allclose(ls.em_prior(bayes_posterior(x2, SOURCE), SOURCE), SOURCE, atol=0.02)


def test_em_recovers_a_shifted_prior_at_its_fixed_point():
    x, _ = gaussian_sample(TARGET, 20000, 2)
    probs = bayes_posterior(x, SOURCE)
    prior = ls.em_prior(probs, SOURCE, tol=1e-10, max_iter=10000)
    np.testing.assert_allclose(prior, TARGET, atol=0.02)
    # fixed point: one more EM step leaves the prior unchanged
    step = ls.correct_posteriors(probs, prior / SOURCE).mean(0)
    np.testing.assert_allclose(step, prior, atol=1e-8)


def test_em_stops_after_max_iter():
    x, _ = gaussian_sample(TARGET, 500, 3)
    probs = bayes_posterior(x, SOURCE)
    one = ls.em_prior(probs, SOURCE, max_iter=1)
    np.testing.assert_allclose(one, probs.mean(0))


def discrete_population(soft: bool):
    """Integer (x, y) counts where the target counts are exactly the source counts times w_y."""
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 5, size=(6, 3)) * 4  # 6 discrete inputs, 3 classes
    w = np.array([0.5, 2.0, 1.25])
    scores = rng.random((6, 3)) + np.eye(3)[np.arange(6) % 3] * (1.0 if soft else 3.0)
    probs_x = scores / scores.sum(1, keepdims=True)

    def expand(table):
        xs, ys = np.nonzero(table)
        reps = table[xs, ys].astype(int)
        return probs_x[np.repeat(xs, reps)], np.repeat(ys, reps)

    return expand(counts), expand(counts * w[None, :]), w


@pytest.mark.parametrize("soft", [False, True])
def test_bbse_with_the_exact_confusion_matrix_recovers_the_weights(soft):
    (src_p, src_y), (tgt_p, tgt_y), w = discrete_population(soft)
    true = np.bincount(tgt_y) / len(tgt_y) / (np.bincount(src_y) / len(src_y))  # q(y) / p(y)
    np.testing.assert_allclose(true / w, true[0] / w[0])  # the construction scales each class by w_y
    np.testing.assert_allclose(ls.bbse_weights(src_p, src_y, tgt_p, soft=soft), true, rtol=1e-10)


def test_bbse_never_predicted_class_is_a_clear_error():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.4, 0.0]])
    y = np.array([0, 1, 2])
    with pytest.raises(ShiftbenchError, match=r"class\(es\) \[2\] are never predicted"):
        ls.bbse_weights(probs, y, probs)


def test_posterior_correction_is_bayes_rule_and_scale_invariant():
    x, _ = gaussian_sample(TARGET, 200, 4)
    src = bayes_posterior(x, SOURCE)
    corrected = ls.correct_posteriors(src, TARGET / SOURCE)
    np.testing.assert_allclose(corrected, bayes_posterior(x, TARGET), atol=1e-12)
    np.testing.assert_allclose(ls.correct_posteriors(src, 7 * TARGET / SOURCE), corrected, atol=1e-12)
    np.testing.assert_allclose(ls.correct_posteriors(src, np.ones(3)), src, atol=1e-12)
    with pytest.raises(ShiftbenchError, match="non-negative"):
        ls.correct_posteriors(src, np.array([1.0, -1.0, 1.0]))


def test_bcts_recovers_temperature_and_bias():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(20000, 3)) * 3
    true_t, true_b = 2.0, np.array([0.5, -0.2, -0.3])
    y = np.array([rng.choice(3, p=p) for p in ls.softmax(logits / true_t + true_b)])
    cal = ls.fit_bcts(ls.softmax(logits), y)
    assert cal.temperature == pytest.approx(true_t, rel=0.05)
    np.testing.assert_allclose(cal.bias, true_b, atol=0.05)


def stub_task(src_probs, src_y, tgt_probs, batch_size=100):
    batches = [np.arange(i, min(i + batch_size, len(tgt_probs))) for i in range(0, len(tgt_probs), batch_size)]
    return outputs_task(Outputs(np.zeros((len(src_y), 1)), np.log(src_probs), src_y),
                        Outputs(np.zeros((len(tgt_probs), 1)), np.log(tgt_probs)), batches)


@pytest.mark.parametrize("method", [ls.EMCorrection(calibration="none"), ls.BBSECorrection(calibration="none"),
                                    ls.EMCorrection(online=False)])
def test_prior_correction_plugins_improve_accuracy_under_label_shift(method):
    xs, ys = gaussian_sample(SOURCE, 3000, 7)
    xt, yt = gaussian_sample(TARGET, 3000, 8)
    task = stub_task(bayes_posterior(xs, SOURCE), ys, bayes_posterior(xt, SOURCE))
    adapted = method.run(task)
    base_acc = (bayes_posterior(xt, SOURCE).argmax(1) == yt).mean()
    oracle_acc = (bayes_posterior(xt, TARGET).argmax(1) == yt).mean()
    acc = (adapted.argmax(1) == yt).mean()
    assert acc > base_acc + 0.03 and acc > oracle_acc - 0.02


@pytest.mark.parametrize("method, hp", [("em_correction", {}), ("bbse_correction", {}), ("bbse_correction", {"soft": True})])
def test_prior_correction_gains_on_label_shifted_digits(method, hp, tmp_path):
    """MNIST id_test resampled to a Dirichlet(0.3) prior, ccexam's USPS CNN as the black box; the
    source for the label-shift methods is MNIST id_val through the same network."""
    from shiftbench.cache import ArrayCache
    from shiftbench.datasets import load as load_dataset
    from shiftbench.families import Task, Truth
    from shiftbench.methods import load as load_method
    from shiftbench.models import build_model
    from shiftbench.scenarios import Scenario

    dataset = load_dataset("digits")
    model = build_model("ccexam_usps", dataset, 0, tmp_path)
    cache = ArrayCache(tmp_path / "cache")
    scenario = Scenario(target="id_test", label_shift=0.3)
    split = scenario.target_split(dataset, cache, 1)
    task = Task(dataset.n_classes, split.unlabelled(), scenario.batches(split.y, 1), 1, model, cache,
                {k: dataset.splits[k] for k in ("train", "id_val")})
    accuracy = {}
    for name, params in [("source_only", {}), (method, hp)]:
        m = load_method(name, **params)
        accuracy[name] = m.evaluate(m.run(task), Truth(dataset, split), task)["acc_avg"]
    assert accuracy[method] > accuracy["source_only"] + 0.2
