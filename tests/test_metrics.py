"""Metrics against scikit-learn and their definitions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss

from shiftbench.errors import InvalidArrayError
from shiftbench.metrics import classification_metrics, expected_calibration_error


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    logits = rng.normal(size=(400, 5)) + 2.0 * np.eye(5)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_matches_sklearn(predictions):
    y, probs = predictions
    pred = probs.argmax(1)
    m = classification_metrics(y, pred, probs)
    assert m["acc_avg"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["F1-macro_all"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["nll"] == pytest.approx(log_loss(y, probs, labels=range(5)))
    per_class = [np.mean(pred[y == c] == c) for c in range(5)]
    assert m["acc_wg"] == pytest.approx(min(per_class))


def test_worst_group_uses_given_groups(predictions):
    y, probs = predictions
    pred = probs.argmax(1)
    groups = (np.arange(len(y)) % 3)
    m = classification_metrics(y, pred, probs, groups=groups)
    assert m["acc_wg"] == pytest.approx(min(np.mean(pred[groups == g] == y[groups == g]) for g in range(3)))


def test_ece_definition():
    # two bins used: confidences 0.95 (all correct) and 0.55 (half correct)
    probs = np.array([[0.95, 0.05]] * 4 + [[0.55, 0.45]] * 4)
    y = np.array([0, 0, 0, 0, 0, 1, 0, 1])
    expected = (4 * abs(1.0 - 0.95) + 4 * abs(0.5 - 0.55)) / 8
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    perfectly_calibrated = np.array([[1.0, 0.0]] * 3)
    assert expected_calibration_error(np.zeros(3, int), perfectly_calibrated) == 0.0


@pytest.mark.parametrize("bad, message", [
    (np.array([[0.5, np.nan]]), "NaN"),
    (np.array([[2.0, -1.0]]), "probabilities"),
    (np.array([0.5, 0.5]), "2-D"),
    (np.array([[0.2, 0.2]]), "sum to 1"),
])
def test_bad_probabilities_are_rejected(bad, message):
    with pytest.raises(InvalidArrayError, match=message):
        classification_metrics(np.zeros(len(np.atleast_2d(bad)), int), np.zeros(len(np.atleast_2d(bad)), int), bad)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(InvalidArrayError, match="only 2 classes"):
        classification_metrics(np.array([0, 5]), np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]))
