"""Same selection grid, same data, same inner splits: skada's GridSearchCV vs shiftbench's selection.

Data: SKADA-Bench's simulated covariate shift (800 source + 800 target points). Methods: KMM
(9 gammas) and density reweighting (7 bandwidths) as the SKADA-Bench reproduction runs them: the
method plugins with base="svc" (an adapter + SVC(probability=True) skada pipeline) over the
Simulated.yml grids; skada's side searches over the very pipelines those plugins build. Inner splits: skada's StratifiedDomainShuffleSplit(5, test_size=0.2), the very same index
arrays handed to both. Scorers: supervised (oracle), importance-weighted, prediction entropy, SND,
circular validation, MixVal. (DEV is left out of the comparison: skada 0.6.0's DEV broadcasts an
(n, 1) weight column against (n,) losses, see tests/test_selection.py.) For each scorer both sides
refit the selected setting on all data and report its target accuracy.

Prints wall times, their ratio, and whether the selected settings and accuracies are identical.
Run: .venv/bin/python benchmarks/bench_selection.py
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from shiftbench import scorers
from shiftbench.reproductions.skada_bench_simulated import method_factory, method_grid, simulated
from shiftbench.selection import DomainSplit, best_params, fit_candidate, grid_scores

warnings.filterwarnings("ignore")
N_SPLITS = 5
SCORERS = ["oracle", "importance_weighted", "prediction_entropy", "snd", "circular", "mixval"]


def stack(Xs, ys, Xt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """skada's single-array layout: source then target rows, target labels masked (-1), domains 1 / -2."""
    return np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), dtype=ys.dtype)], np.r_[np.ones(len(Xs)), -2 * np.ones(len(Xt))]


def skada_side(make, points, X, y_masked, domain, y_true, splits, Xt, yt):
    """skada's own search: GridSearchCV over the adapter step of the pipelines the plugin builds for the
    grid points, with skada.metrics scorers, then one refit per scorer."""
    from skada import metrics as skm

    skada_scorers = {"oracle": skm.SupervisedScorer(), "importance_weighted": skm.ImportanceWeightedScorer(),
                     "prediction_entropy": skm.PredictionEntropyScorer(), "snd": skm.SoftNeighborhoodDensity(),
                     "circular": skm.CircularValidation(), "mixval": skm.MixValScorer(random_state=0)}
    pipes = [make(**p).skada_estimator() for p in points]
    step = pipes[0].steps[0][0]
    search = GridSearchCV(pipes[0], {step: [pipe.steps[0][1] for pipe in pipes]}, refit=False,
                          scoring=skada_scorers, cv=splits, error_score=-np.inf)
    search.fit(X, y_masked, sample_domain=domain, target_labels=y_true)
    chosen, accuracy = {}, {}
    for name in skada_scorers:
        best = int(np.argmax(search.cv_results_[f"mean_test_{name}"]))
        model = clone(pipes[best]).fit(X, y_masked, sample_domain=domain)
        chosen[name] = points[best]
        accuracy[name] = float((model.predict(Xt) == yt).mean())
    return chosen, accuracy


def shiftbench_side(make, points, Xs, ys, Xt, yt, splits):
    """shiftbench: grid_scores on the same splits, argmax per scorer, one refit per distinct setting."""
    chosen_scorers = {name: scorers.load(name) for name in SCORERS}
    chosen = best_params(grid_scores(make, points, Xs, ys, Xt, splits, chosen_scorers, yt))
    refits: dict[str, float] = {}
    accuracy = {}
    for name, params in chosen.items():
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in refits:
            refits[key] = float((fit_candidate(make, params, Xs, ys, Xt).predict(Xt) == yt).mean())
        accuracy[name] = refits[key]
    return chosen, accuracy


def to_domain_splits(splits, n_source: int) -> list[DomainSplit]:
    """skada's index arrays over the stacked data as per-domain index arrays."""
    out = []
    for tr, te in splits:
        tr, te = np.asarray(tr), np.asarray(te)
        out.append(DomainSplit(tr[tr < n_source], te[te < n_source], tr[tr >= n_source] - n_source,
                               te[te >= n_source] - n_source))
    return out


def main() -> None:
    from skada.model_selection import StratifiedDomainShuffleSplit

    sklearn.set_config(enable_metadata_routing=True)
    Xs, ys, Xt, yt = simulated("covariate_shift", 0)
    X, y_masked, domain = stack(Xs, ys, Xt)
    y_true = np.r_[ys, yt]
    splits = list(StratifiedDomainShuffleSplit(N_SPLITS, test_size=0.2, random_state=0).split(X, y_masked, domain))
    ours_splits = to_domain_splits(splits, len(Xs))
    print(f"data: {len(Xs)} source + {len(Xt)} target points, {N_SPLITS} inner splits\n")
    print(f"{'method':<10} {'grid':>4} {'skada s':>8} {'ours s':>8} {'ratio':>6}  same selection  same accuracy")
    for method in ("KMM", "Dens. RW"):
        make, points = method_factory(method), method_grid(method)
        t0 = time.perf_counter()
        sk_chosen, sk_acc = skada_side(make, points, X, y_masked, domain, y_true, splits, Xt, yt)
        t1 = time.perf_counter()
        our_chosen, our_acc = shiftbench_side(make, points, Xs, ys, Xt, yt, ours_splits)
        t2 = time.perf_counter()
        same = {n: json.dumps(sk_chosen[n], sort_keys=True, default=str) == json.dumps(our_chosen[n], sort_keys=True,
                                                                                        default=str) for n in sk_chosen}
        same_acc = {n: abs(sk_acc[n] - our_acc[n]) < 1e-12 for n in sk_acc}
        n_grid = len(points)
        print(f"{method:<10} {n_grid:>4} {t1 - t0:8.1f} {t2 - t1:8.1f} {(t1 - t0) / (t2 - t1):6.2f}  "
              f"{sum(same.values())}/{len(same)} scorers    {sum(same_acc.values())}/{len(same_acc)} scorers")
        for name in sk_chosen:
            print(f"    {name:<20} skada {json.dumps(sk_chosen[name], default=str):<52} acc {100 * sk_acc[name]:5.1f}"
                  f" | ours {json.dumps(our_chosen[name], default=str):<52} acc {100 * our_acc[name]:5.1f}")
    print("\nratio = skada wall time / shiftbench wall time (same fits per grid point and split on both sides;"
          " shiftbench refits each distinct selected setting once, skada once per scorer)")


if __name__ == "__main__":
    main()
