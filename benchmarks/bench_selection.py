"""Same selection grid, same data, same inner splits: skada's GridSearchCV vs shiftbench's selection.

Data: SKADA-Bench's simulated covariate shift (800 source + 800 target points). Methods: KMM
(9 gammas) and density reweighting (7 bandwidths) as the SKADA-Bench reproduction runs them: the
method plugins with base="svc" (an adapter + SVC(probability=True) skada pipeline) over the
Simulated.yml grids; and "KMM x C", 3 gammas x 3 SVC Cs, a grid whose points share fitted adapters
(shiftbench fits each KMM once per split; GridSearchCV, without a Pipeline memory, once per point).
skada's side searches over the very pipelines those plugins build. Inner splits: skada's
StratifiedDomainShuffleSplit(5, test_size=0.2), the very same index arrays handed to both. Scorers:
supervised (oracle), importance-weighted, prediction entropy, SND, circular validation, MixVal. (DEV
is left out of the comparison: skada 0.6.0's DEV broadcasts an (n, 1) weight column against (n,)
losses, see tests/test_selection.py.) For each scorer both sides refit the selected setting on all
data and report its target accuracy.

Both sides run with the same ``n_jobs`` (GridSearchCV's, grid_scores'), over a process pool started
(and given the imports both need) before the clocks start; the refits after the search are sequential
on both sides, which alternate ``--repeat`` times. Prints, per n_jobs, each side's shortest wall time and
their ratio, the CPU times of those runs (this process and its joblib workers, from /proc) and their
ratio, and whether the selected settings and accuracies are identical.
Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_selection.py [--n-jobs 1 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from functools import partial

import numpy as np
import sklearn
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from shiftbench import methods, scorers
from shiftbench.grids import expand
from shiftbench.reproductions.skada_bench_simulated import PIPELINE, by_domain, method_factory, method_grid, simulated
from shiftbench.scoring import check_features
from shiftbench.selection import DomainSplit, StepCache, best_params, fit_candidate, grid_scores

warnings.filterwarnings("ignore")
N_SPLITS = 5
SCORERS = ["oracle", "importance_weighted", "prediction_entropy", "snd", "circular", "mixval"]


def methods_compared() -> list[tuple[str, object, list[dict]]]:
    """(label, factory, grid points): the two reproduction methods, and KMM over gamma x C."""
    kmm_c = expand({"gamma": [0.1, 1.0, 10.0], "C": [0.1, 1.0, 10.0]})
    return [*((label, method_factory(label), method_grid(label)) for label in ("KMM", "Dens. RW")),
            ("KMM x C", partial(methods.load, "skada_kmm", **PIPELINE), kmm_c)]


def _imports() -> None:
    """What either side's workers import (skada, the plugins, the scorers), so that no side pays it on the clock."""
    import skada.metrics  # noqa: F401

    method_factory("KMM")().skada_estimator()
    for name in SCORERS:
        scorers.load(name)


def warm_pool(n_jobs: int) -> None:
    """Start joblib's reusable worker pool for ``n_jobs`` (both sides use it) and import everything in it."""
    Parallel(n_jobs=n_jobs)(delayed(_imports)() for _ in range(4 * n_jobs))


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its live child processes (joblib's workers), from /proc."""
    total, me, tick = time.process_time(), os.getpid(), os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command name: state, ppid, ...
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def timed(side, *args) -> tuple[float, float, tuple]:
    """(wall seconds, CPU seconds, result) of one call of ``side``."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    result = side(*args)
    return time.perf_counter() - t0, cpu_seconds() - c0, result


def stack(Xs, ys, Xt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """skada's single-array layout: source then target rows, target labels masked (-1), domains 1 / -2."""
    return np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), dtype=ys.dtype)], np.r_[np.ones(len(Xs)), -2 * np.ones(len(Xt))]


def skada_side(make, points, X, y_masked, domain, y_true, splits, Xt, yt, n_jobs):
    """skada's own search: GridSearchCV over the pipelines the plugin builds for the grid points (one
    single-candidate sub-grid of their steps per point), with skada.metrics scorers, then one refit per scorer."""
    from skada import metrics as skm

    skada_scorers = {"oracle": skm.SupervisedScorer(), "importance_weighted": skm.ImportanceWeightedScorer(),
                     "prediction_entropy": skm.PredictionEntropyScorer(), "snd": skm.SoftNeighborhoodDensity(),
                     "circular": skm.CircularValidation(), "mixval": skm.MixValScorer(random_state=0)}
    pipes = [make(**p).skada_estimator() for p in points]
    search = GridSearchCV(pipes[0], [{name: [step] for name, step in pipe.steps} for pipe in pipes], refit=False,
                          scoring=skada_scorers, cv=splits, error_score=-np.inf, n_jobs=n_jobs)
    search.fit(X, y_masked, sample_domain=domain, target_labels=y_true)
    chosen, accuracy = {}, {}
    for name in skada_scorers:
        best = int(np.argmax(search.cv_results_[f"mean_test_{name}"]))
        model = clone(pipes[best]).fit(X, y_masked, sample_domain=domain)
        chosen[name] = points[best]
        accuracy[name] = float((model.predict(Xt) == yt).mean())
    return chosen, accuracy


def shiftbench_side(make, points, Xs, ys, Xt, yt, splits, n_jobs):
    """shiftbench: grid_scores on the same splits (the features as float64 matrices, as nested_cv hands them
    over; the plugins compute in float64 either way), argmax per scorer, one refit per distinct setting
    (sharing fitted adapters, as nested_cv's refits do)."""
    Xs, Xt = check_features(Xs, "X_source"), check_features(Xt, "X_target")
    chosen_scorers = {name: scorers.load(name) for name in SCORERS}
    chosen = best_params(grid_scores(make, points, Xs, ys, Xt, splits, chosen_scorers, yt, n_jobs))
    refits: dict[str, float] = {}
    cache = StepCache()
    accuracy = {}
    for name, params in chosen.items():
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in refits:
            refits[key] = float((fit_candidate(make, params, Xs, ys, Xt, cache).predict(Xt) == yt).mean())
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

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[1, 2],
                        help="joblib n_jobs of both searches; one table per value (default: 1 2)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each side, alternating; the shortest counts (default: 3)")
    args = parser.parse_args()
    sklearn.set_config(enable_metadata_routing=True)
    Xs, ys, Xt, yt = by_domain(*simulated("covariate_shift", 0))
    # float64, as nested_cv hands features over, for both sides: the same arrays, so equal selections are expected
    Xs, Xt = np.asarray(Xs, dtype=np.float64), np.asarray(Xt, dtype=np.float64)
    X, y_masked, domain = stack(Xs, ys, Xt)
    y_true = np.r_[ys, yt]
    splits = list(StratifiedDomainShuffleSplit(N_SPLITS, test_size=0.2, random_state=0).split(X, y_masked, domain))
    ours_splits = to_domain_splits(splits, len(Xs))
    print(f"data: {len(Xs)} source + {len(Xt)} target points, {N_SPLITS} inner splits")
    for n_jobs in args.n_jobs:
        warm_pool(n_jobs)
        print(f"\nn_jobs={n_jobs}\n{'method':<10} {'grid':>4} {'skada s':>8} {'ours s':>8} {'ratio':>6} "
              f"{'skada cpu':>10} {'ours cpu':>9} {'ratio':>6}  same selection  same accuracy")
        for method, make, points in methods_compared():
            sk_runs, our_runs = [], []
            for _ in range(args.repeat):
                sk_runs.append(timed(skada_side, make, points, X, y_masked, domain, y_true, splits, Xt, yt, n_jobs))
                our_runs.append(timed(shiftbench_side, make, points, Xs, ys, Xt, yt, ours_splits, n_jobs))
            sk_wall, sk_cpu, (sk_chosen, sk_acc) = min(sk_runs, key=lambda run: run[0])
            our_wall, our_cpu, (our_chosen, our_acc) = min(our_runs, key=lambda run: run[0])
            same = {n: json.dumps(sk_chosen[n], sort_keys=True, default=str) == json.dumps(
                our_chosen[n], sort_keys=True, default=str) for n in sk_chosen}
            same_acc = {n: abs(sk_acc[n] - our_acc[n]) < 1e-12 for n in sk_acc}
            print(f"{method:<10} {len(points):>4} {sk_wall:8.1f} {our_wall:8.1f} {sk_wall / our_wall:6.2f} "
                  f"{sk_cpu:10.1f} {our_cpu:9.1f} {sk_cpu / our_cpu:6.2f}  "
                  f"{sum(same.values())}/{len(same)} scorers    {sum(same_acc.values())}/{len(same_acc)} scorers")
            for name in sk_chosen:
                print(f"    {name:<20} skada {json.dumps(sk_chosen[name], default=str):<34} "
                      f"acc {100 * sk_acc[name]:5.1f} | ours {json.dumps(our_chosen[name], default=str):<34} "
                      f"acc {100 * our_acc[name]:5.1f}")
    print("\nratio = skada time / shiftbench time (the same fits per grid point and split on both sides, "
          "except the adapters shiftbench shares between points; shiftbench refits each distinct selected setting "
          "once, skada once per scorer)")


if __name__ == "__main__":
    main()
