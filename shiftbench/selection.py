"""Nested domain-aware cross-validation (SKADA-Bench style) on arrays: the library form of the runner's
``nested_cv`` protocol, used by the SKADA-Bench reproductions.

Nested CV: *outer* splits cut source and target into train/test parts; the reported number is the
target-test accuracy of the setting each scorer selects. *Inner* splits of the outer train part
score every grid point: each (grid point, inner split) is fitted once and scored by every scorer.
Scorers share more than the fit: a :class:`SharedCandidate` computes each output (``predict``,
``predict_proba``, ``features`` of one input from one domain) once and hands every scorer that asks for
it a copy. Grid points share fitted steps: a plugin that fits a scikit-learn pipeline (the skada
plugins' ``skada_estimator()``) fits it with ``Pipeline(memory=StepCache())``, so on one split a step
whose parameters and inputs equal another point's (the adapter, where only the final estimator's ``C``
differs) is fitted once. Splits, and groups of points that share no step, run in parallel with
``n_jobs`` (joblib). Every score is the one an unshared, sequential fit of each point gives.

Target labels of the inner validation part are built into a
:class:`~shiftbench.scoring.LabelledTarget` only when an oracle scorer is asked for, and handed to
it alone; every other scorer gets a :class:`~shiftbench.scoring.ValidationView` whose target has no
labels. Results are long rows (outer split, scorer, oracle flag, selected params, accuracies);
:func:`selection_table` shows per method the mean under each scorer next to the oracle.

The runner's selection stage (:mod:`shiftbench.protocols`) selects on stored records instead; it shares
:func:`domain_shuffle_splits` with this module.
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import joblib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.pipeline import Pipeline

from shiftbench.errors import ShiftbenchError
from shiftbench.grids import Grid, expand
from shiftbench.scoring import (Candidate, Estimator, LabelledTarget, Scorer, UnlabelledTarget, ValidationView,
                                check_features)

#: builds an unfitted estimator (``fit(Xs, ys, Xt)``, ``predict_proba(X)``) from hyperparameters
Factory = Callable[..., Estimator]


@dataclass(frozen=True)
class DomainSplit:
    """Index arrays of one split of source and target into train and test parts."""

    source_train: np.ndarray
    source_test: np.ndarray
    target_train: np.ndarray
    target_test: np.ndarray

    def view(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> ValidationView:
        """What a scorer sees of this split: the labelled source train and test parts, the unlabelled target test part."""
        return ValidationView(Xs[self.source_train], ys[self.source_train], Xs[self.source_test], ys[self.source_test],
                              UnlabelledTarget(Xt[self.target_test]))


def _shuffle_split(n_splits: int, test_size: float, seed: int, y: np.ndarray | None, n: int) -> list[tuple]:
    if y is not None:
        return list(StratifiedShuffleSplit(n_splits, test_size=test_size, random_state=seed).split(np.zeros(n), y))
    return list(ShuffleSplit(n_splits, test_size=test_size, random_state=seed).split(np.zeros(n)))


def domain_shuffle_splits(y_source: np.ndarray, n_target: int, n_splits: int = 5, test_size: float = 0.2,
                          seed: int = 0, y_target: np.ndarray | None = None) -> list[DomainSplit]:
    """Repeated random splits of each domain (source stratified by label; target stratified only when
    ``y_target`` is given, which the *outer* evaluation loop may do and an inner loop never does)."""
    y_source = np.asarray(y_source)
    src = _shuffle_split(n_splits, test_size, seed, y_source, len(y_source))
    tgt = _shuffle_split(n_splits, test_size, seed + 1, y_target, n_target)
    return [DomainSplit(s_tr, s_te, t_tr, t_te) for (s_tr, s_te), (t_tr, t_te) in zip(src, tgt)]


class StepCache:
    """An in-process stand-in for ``joblib.Memory`` as scikit-learn's ``Pipeline(memory=...)`` uses it: a fitted
    transformer (and its output) is kept under a hash of the unfitted step, its inputs and its metadata, and a
    later fit of an equal step on equal inputs gets a deep copy of it instead of fitting again."""

    def __init__(self) -> None:
        self._fitted: dict[str, Any] = {}

    def cache(self, func: Callable, ignore: Sequence[str] = ()) -> Callable:
        """``func`` answered from the cache, keyed by its arguments except those named in ``ignore``."""
        signature = inspect.signature(func)

        def cached(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            key = joblib.hash((func.__module__, func.__qualname__,
                               {k: v for k, v in arguments.items() if k not in ignore}))
            if key not in self._fitted:
                self._fitted[key] = func(*args, **kwargs)
            return copy.deepcopy(self._fitted[key])
        return cached


def _pipeline_builder(model: Any) -> Callable[[], Any] | None:
    """How ``model`` builds the unfitted scikit-learn estimator it fits, where it says (``skada_estimator()``)."""
    return getattr(model, "skada_estimator", None)


def _fitting_through(model: Any, cache: StepCache | None) -> Any:
    """``model``, made to fit the pipeline it builds (if it builds one) with ``memory=cache``."""
    build = _pipeline_builder(model)
    if cache is not None and build is not None:
        model.skada_estimator = lambda: _with_memory(build(), cache)
    return model


def _with_memory(built: Any, cache: StepCache) -> Any:
    return built.set_params(memory=cache) if isinstance(built, Pipeline) else built


@dataclass
class SharedCandidate(Candidate):
    """A candidate that computes each of its outputs once: a second request for the same method on the same
    input (equal bytes, dtype and shape) from the same domain gets a copy of the first answer.

    A fitted setting's outputs depend only on its inputs, so the scorers of one split share one prediction
    pass per input (oracle, circular validation and MixVal all predict the target part, say)."""

    _outputs: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False)

    def _call(self, method: str, X: np.ndarray, domain: str) -> np.ndarray:
        arr = np.asarray(X)
        key = (method, domain, arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._outputs:
            self._outputs[key] = super()._call(method, X, domain)
        return copy.deepcopy(self._outputs[key])


def fit_candidate(make: Factory, params: dict[str, Any], Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray,
                  cache: StepCache | None = None) -> Candidate:
    """Fit one setting and wrap it for the scorers; with ``cache``, pipeline steps equal to ones fitted before
    on the same inputs are reused (so is the setting's refit, e.g. circular validation's backward model)."""
    fresh = lambda: _fitting_through(make(**params), cache)  # noqa: E731
    model = fresh()
    model.fit(Xs, ys, Xt)
    return SharedCandidate(model, fresh)


def _sharing_groups(make: Factory, points: list[dict[str, Any]]) -> list[list[int]]:
    """The grid points in groups that may share a fitted step (pipelines with equal first steps), in order."""
    groups: dict[Any, list[int]] = {}
    for i, params in enumerate(points):
        try:
            build = _pipeline_builder(make(**params))
            built = build() if build is not None else None
        except Exception:  # an invalid setting fails its own fit later and scores -inf
            built = None
        key = joblib.hash(built.steps[0]) if isinstance(built, Pipeline) and len(built.steps) > 1 else i
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def grid_scores(make: Factory, grid: Grid, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, splits: Sequence[DomainSplit],
                scorers: dict[str, Scorer], yt: np.ndarray | None = None, n_jobs: int | None = 1) -> pd.DataFrame:
    """Score every grid point on every split with every scorer (one fit per point and split).

    Returns rows (point, params, split, scorer, oracle, score). ``yt`` (target labels) is needed only
    when ``scorers`` contains an oracle, and only the oracle receives it. A setting whose fit or
    scoring raises scores ``-inf`` (as in scikit-learn's ``error_score``). ``n_jobs``: joblib's, over
    splits and groups of points that share no fitted step; the scores do not depend on it.
    """
    oracles = [n for n, s in scorers.items() if s.needs_target_labels]
    if oracles and yt is None:
        raise ShiftbenchError(f"scorers {oracles} are oracles and need target labels; pass yt or drop them")
    points = expand(grid)
    tasks = [(k, group) for k in range(len(splits)) for group in _sharing_groups(make, points)]
    done = Parallel(n_jobs=n_jobs)(delayed(_score_points)(make, [points[i] for i in group], Xs, ys, Xt, yt,
                                                          splits[k], scorers) for k, group in tasks)
    scores = {(i, k): row for (k, group), rows in zip(tasks, done) for i, row in zip(group, rows)}
    return pd.DataFrame([{"point": i, "params": json.dumps(params, sort_keys=True, default=str), "split": k,
                          "scorer": name, "oracle": scorer.needs_target_labels, "score": score}
                         for i, params in enumerate(points) for k in range(len(splits))
                         for (name, scorer), score in zip(scorers.items(), scores[i, k])])


def _score_points(make: Factory, points: list[dict[str, Any]], Xs, ys, Xt, yt, sp: DomainSplit,
                  scorers: dict[str, Scorer]) -> list[list[float]]:
    """Every scorer's score of each of ``points`` fitted on split ``sp``, the points sharing fitted steps."""
    view, cache = sp.view(Xs, ys, Xt), StepCache() if len(points) > 1 else None
    rows = []
    for params in points:
        try:
            cand = fit_candidate(make, params, view.X_train, view.y_train, Xt[sp.target_train], cache)
        except Exception:
            cand = None
        rows.append([_safe_score(scorer, cand, view, Xt, yt, sp) for scorer in scorers.values()])
    return rows


def _safe_score(scorer: Scorer, cand: Candidate | None, view: ValidationView, Xt, yt, sp: DomainSplit) -> float:
    if cand is None:
        return -np.inf
    try:
        if scorer.needs_target_labels:
            return scorer.score(cand, view, LabelledTarget(Xt[sp.target_test], yt[sp.target_test]))
        return scorer.score(cand, view)
    except Exception:
        return -np.inf


def best_params(scores: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per scorer, the setting with the highest mean score over splits (the first on ties).

    Means are plain sequential float sums in split order, as scikit-learn's ``cv_results_`` computes
    them, so exact ties break the same way as in ``GridSearchCV``.
    """
    chosen = {}
    for scorer, df in scores.groupby("scorer", sort=False):
        df = df.sort_values(["point", "split"], kind="stable")
        points = df["point"].unique()
        table = df["score"].to_numpy(np.float64).reshape(len(points), -1)
        mean = np.nan_to_num(table.mean(axis=1), nan=-np.inf)
        chosen[scorer] = json.loads(df.loc[df["point"] == points[int(np.argmax(mean))], "params"].iloc[0])
    return chosen


def nested_cv(make: Factory, grid, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, yt: np.ndarray,
              scorers: dict[str, Scorer], outer: Sequence[DomainSplit], n_inner: int = 5,
              inner_test_size: float = 0.2, seed: int = 0,
              inner: Sequence[Sequence[DomainSplit]] | None = None, n_jobs: int | None = 1) -> pd.DataFrame:
    """Nested domain-aware CV: per outer split and scorer, the selected setting refitted on the outer
    train part and its accuracy on the outer target-test (and source-test) part.

    ``inner[o]``: the inner splits of outer split ``o``, as positions in its source-train and target-train
    parts (a paper's own splits); by default ``n_inner`` domain shuffle splits drawn with seed
    ``seed + 1000 (o + 1)``. ``yt`` is used for the outer evaluation and, within inner splits, only by
    oracle scorers. ``n_jobs``: :func:`grid_scores`'s.
    """
    if inner is not None and len(inner) != len(outer):
        raise ShiftbenchError(f"inner holds splits for {len(inner)} outer splits, outer has {len(outer)}; "
                              "give one list of inner splits per outer split")
    Xs, Xt = check_features(Xs, "X_source"), check_features(Xt, "X_target")
    ys, yt = np.asarray(ys), np.asarray(yt)
    rows = []
    for o, sp in enumerate(outer):
        Xs_tr, ys_tr, Xt_tr, yt_tr = Xs[sp.source_train], ys[sp.source_train], Xt[sp.target_train], yt[sp.target_train]
        splits = inner[o] if inner is not None else \
            domain_shuffle_splits(ys_tr, len(Xt_tr), n_inner, inner_test_size, seed + 1000 * (o + 1))
        chosen = best_params(grid_scores(make, grid, Xs_tr, ys_tr, Xt_tr, splits, scorers, yt_tr, n_jobs))
        refits: dict[str, tuple[float, float]] = {}
        cache = StepCache()
        for name in scorers:
            params = chosen[name]
            key = json.dumps(params, sort_keys=True, default=str)
            if key not in refits:
                refits[key] = _outer_accuracy(make, params, Xs_tr, ys_tr, Xt_tr, Xs[sp.source_test], ys[sp.source_test],
                                              Xt[sp.target_test], yt[sp.target_test], cache)
            rows.append({"outer": o, "scorer": name, "oracle": scorers[name].needs_target_labels, "params": key,
                         "target_accuracy": refits[key][0], "source_accuracy": refits[key][1]})
    return pd.DataFrame(rows)


def _outer_accuracy(make, params, Xs_tr, ys_tr, Xt_tr, Xs_te, ys_te, Xt_te, yt_te, cache) -> tuple[float, float]:
    cand = fit_candidate(make, params, Xs_tr, ys_tr, Xt_tr, cache)
    return (float((cand.predict(Xt_te, "target") == yt_te).mean()),
            float((cand.predict(Xs_te, "source") == ys_te).mean()))


def selection_table(results: pd.DataFrame, metric: str = "target_accuracy", decimals: int = 1) -> pd.DataFrame:
    """Per method (rows), "mean ± std" (%) of ``metric`` under each scorer (columns); oracle columns
    come last and are labelled ``<name> (oracle)``. ``results`` needs a ``method`` column."""
    stats = results.groupby(["method", "scorer", "oracle"], sort=False)[metric].agg(["mean", "std"]).reset_index()
    stats["cell"] = [f"{100 * m:.{decimals}f} ± {100 * (0 if np.isnan(s) else s):.{decimals}f}"
                     for m, s in zip(stats["mean"], stats["std"])]
    stats["column"] = np.where(stats["oracle"], stats["scorer"] + " (oracle)", stats["scorer"])
    order = list(dict.fromkeys(stats.sort_values("oracle", kind="stable")["column"]))
    table = stats.pivot(index="method", columns="column", values="cell")[order]
    table.columns.name = None
    return table.loc[list(dict.fromkeys(results["method"]))].reset_index()
