"""Nested domain-aware cross-validation (SKADA-Bench style) on arrays: the library form of the runner's
``nested_cv`` protocol, used by the SKADA-Bench reproductions.

Nested CV: *outer* splits cut source and target into train/test parts; the reported number is the
target-test accuracy of the setting each scorer selects. *Inner* splits of the outer train part
score every grid point: each (grid point, inner split) is fitted once and scored by every scorer
(scorers share fits). Target labels of the inner validation part are built into a
:class:`~shiftbench.scoring.LabelledTarget` only when an oracle scorer is asked for, and handed to
it alone; every other scorer gets a :class:`~shiftbench.scoring.ValidationView` whose target has no
labels. Results are long rows (outer split, scorer, oracle flag, selected params, accuracies);
:func:`selection_table` shows per method the mean under each scorer next to the oracle.

The runner's selection stage (:mod:`shiftbench.protocols`) selects on stored records instead; it shares
:func:`domain_shuffle_splits` with this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

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


def fit_candidate(make: Factory, params: dict[str, Any], Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> Candidate:
    """Fit one setting and wrap it for the scorers."""
    model = make(**params)
    model.fit(Xs, ys, Xt)
    return Candidate(model, lambda: make(**params))


def grid_scores(make: Factory, grid: Grid, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, splits: Sequence[DomainSplit],
                scorers: dict[str, Scorer], yt: np.ndarray | None = None) -> pd.DataFrame:
    """Score every grid point on every split with every scorer (one fit per point and split).

    Returns rows (point, params, split, scorer, oracle, score). ``yt`` (target labels) is needed only
    when ``scorers`` contains an oracle, and only the oracle receives it. A setting whose fit or
    scoring raises scores ``-inf`` (as in scikit-learn's ``error_score``).
    """
    oracles = [n for n, s in scorers.items() if s.needs_target_labels]
    if oracles and yt is None:
        raise ShiftbenchError(f"scorers {oracles} are oracles and need target labels; pass yt or drop them")
    rows = []
    for i, params in enumerate(expand(grid)):
        for k, sp in enumerate(splits):
            view = sp.view(Xs, ys, Xt)
            try:
                cand = fit_candidate(make, params, view.X_train, view.y_train, Xt[sp.target_train])
            except Exception:
                cand = None
            for name, scorer in scorers.items():
                rows.append({"point": i, "params": json.dumps(params, sort_keys=True, default=str), "split": k,
                             "scorer": name, "oracle": scorer.needs_target_labels,
                             "score": _safe_score(scorer, cand, view, Xt, yt, sp)})
    return pd.DataFrame(rows)


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
              inner: Sequence[Sequence[DomainSplit]] | None = None) -> pd.DataFrame:
    """Nested domain-aware CV: per outer split and scorer, the selected setting refitted on the outer
    train part and its accuracy on the outer target-test (and source-test) part.

    ``inner[o]``: the inner splits of outer split ``o``, as positions in its source-train and target-train
    parts (a paper's own splits); by default ``n_inner`` domain shuffle splits drawn with seed
    ``seed + 1000 (o + 1)``. ``yt`` is used for the outer evaluation and, within inner splits, only by
    oracle scorers.
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
        chosen = best_params(grid_scores(make, grid, Xs_tr, ys_tr, Xt_tr, splits, scorers, yt_tr))
        refits: dict[str, tuple[float, float]] = {}
        for name in scorers:
            params = chosen[name]
            key = json.dumps(params, sort_keys=True, default=str)
            if key not in refits:
                refits[key] = _outer_accuracy(make, params, Xs_tr, ys_tr, Xt_tr, Xs[sp.source_test], ys[sp.source_test],
                                              Xt[sp.target_test], yt[sp.target_test])
            rows.append({"outer": o, "scorer": name, "oracle": scorers[name].needs_target_labels, "params": key,
                         "target_accuracy": refits[key][0], "source_accuracy": refits[key][1]})
    return pd.DataFrame(rows)


def _outer_accuracy(make, params, Xs_tr, ys_tr, Xt_tr, Xs_te, ys_te, Xt_te, yt_te) -> tuple[float, float]:
    cand = fit_candidate(make, params, Xs_tr, ys_tr, Xt_tr)
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
