"""Label-free selection scores computed inside a cell, for the selection stage (:mod:`shiftbench.protocols`).

A cell whose ``scoring`` is set computes, besides its metrics, one score per named scorer (higher is
better) and stores them in its record (``scores``; a scorer that raises leaves NaN and its error line in
``score_errors``). What a scorer sees is built here from the :class:`~shiftbench.families.Task` and the
method's output only, so target labels cannot reach it: the task holds an unlabelled target split.

Two kinds of scoring, named by ``scoring["kind"]``:

- ``outputs``: each scorer's ``score_output`` of the cell's predicted target probabilities
  (cross-scenario selection of test-time and output adapters);
- ``inner_splits``: nested cross-validation inside the cell (SKADA-Bench's protocol): ``n_splits`` random
  splits of the labelled source ``train`` features (stratified) and of the unlabelled target features; a
  fresh copy of the method with the cell's hyperparameters is fitted on each split's train parts and every
  scorer scores it on the validation parts (``score(candidate, view)``; the scorers share its predictions, see
  :class:`~shiftbench.selection.SharedCandidate`); the score is the mean over splits;
- ``reference_splits``: nested cross-validation of a performance estimator: ``n_splits`` stratified splits of
  the labelled reference (``id_val``); a fresh copy of the estimator is fitted on each split's train part and
  estimates the accuracy of the held-out part, and every scorer judges the estimates against the held-out
  part's realised accuracies (``score_estimate``). No target data is involved at all.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.model_selection import StratifiedShuffleSplit

from shiftbench.cache import error_line
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Method, PerformanceEstimator, Task
from shiftbench.scorers import load as load_scorer
from shiftbench.selection import SharedCandidate, domain_shuffle_splits

Scores = dict[str, list[float]]


def cell_scores(scoring: dict[str, Any], method: Method, task: Task, output: Any) -> dict[str, Any]:
    """``{"scores": {scorer: value}, "score_errors": {scorer: error line}}`` for one finished cell."""
    kind = scoring.get("kind")
    if kind not in SCORINGS:
        raise ShiftbenchError(f"unknown cell scoring {kind!r}; known: {', '.join(SCORINGS)}")
    collected: Scores = {name: [] for name in scoring["scorers"]}
    errors: dict[str, str] = {}
    SCORINGS[kind](scoring, method, task, output, collected, errors)
    scores = {name: float(np.mean(values)) if values and name not in errors else float("nan")
              for name, values in collected.items()}
    return {"scores": scores, "score_errors": errors}


def _score(name: str, compute: Callable[[], float], collected: Scores, errors: dict[str, str]) -> None:
    if name in errors:
        return
    try:
        collected[name].append(float(compute()))
    except Exception as exc:  # a scorer that cannot judge this setting ranks it last (scikit-learn's error_score)
        errors[name] = error_line(exc)


def output_scores(scoring: dict[str, Any], method: Method, task: Task, output: Any, collected: Scores,
                  errors: dict[str, str]) -> None:
    """Each scorer's ``score_output`` of the cell's target probabilities."""
    probs = np.asarray(output, dtype=np.float64)
    for name in scoring["scorers"]:
        scorer = load_scorer(name)
        _score(name, lambda: scorer.score_output(probs), collected, errors)


def inner_split_scores(scoring: dict[str, Any], method: Method, task: Task, output: Any, collected: Scores,
                       errors: dict[str, str]) -> None:
    """Every scorer on every inner split of the labelled source and the unlabelled target (one fit and one
    prediction per input per split, shared by the scorers)."""
    source, target = task.source_outputs("train"), task.target_outputs()
    Xs, ys, Xt = source.feats.astype(np.float64), source.y, target.feats.astype(np.float64)
    scorers = {name: load_scorer(name) for name in scoring["scorers"]}
    fresh = lambda: _fresh(method)  # noqa: E731  (a candidate refits itself with it)
    for split in domain_shuffle_splits(ys, len(Xt), scoring["n_splits"], scoring["test_size"], task.random_state):
        view = split.view(Xs, ys, Xt)
        try:
            model = fresh()
            model.fit(view.X_train, view.y_train, Xt[split.target_train])
        except Exception as exc:
            for name in scorers:
                errors.setdefault(name, f"fit on an inner split failed: {error_line(exc)}")
            return
        candidate = SharedCandidate(model, fresh)
        for name, scorer in scorers.items():
            _score(name, lambda: scorer.score(candidate, view), collected, errors)


def reference_split_scores(scoring: dict[str, Any], method: PerformanceEstimator, task: Task, output: Any,
                           collected: Scores, errors: dict[str, str]) -> None:
    """Every scorer's judgement of the estimator's accuracy estimates on held-out parts of the reference."""
    reference = task.source_outputs("id_val")
    probs, y = reference.probs, reference.y
    splits = StratifiedShuffleSplit(scoring["n_splits"], test_size=scoring["test_size"], random_state=task.random_state)
    estimates, realised = [], []
    try:
        for train, held in splits.split(np.zeros(len(y)), y):
            estimator = _fresh(method)
            estimator.fit(reference.subset(train))
            estimates.append(estimator.process(reference.batch(held)))
            realised.append(float((probs[held].argmax(1) == y[held]).mean()))
    except Exception as exc:
        for name in scoring["scorers"]:
            errors.setdefault(name, f"fit on a reference split failed: {error_line(exc)}")
        return
    for name in scoring["scorers"]:
        scorer = load_scorer(name)
        _score(name, lambda: scorer.score_estimate(np.asarray(estimates), np.asarray(realised)), collected, errors)


def _fresh(method: Method) -> Method:
    """A new instance of ``method`` with its hyperparameters and random state."""
    copy = type(method)(**method.get_params())
    copy.random_state = method.random_state
    return copy


SCORINGS: dict[str, Callable[..., None]] = {"outputs": output_scores, "inner_splits": inner_split_scores,
                                            "reference_splits": reference_split_scores}
