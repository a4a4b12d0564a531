"""SKADA-Bench's simulated-shift table (Lalou et al. 2024), reproduced with shiftbench's nested CV on the
skada method plugins (``methods/skada_adapters.py``) and the scorer registry.

Setting (as in the skada-bench repository: ``datasets/simulated.py``, ``objective.py``,
``benchmark_utils/base_solver.py``, ``config/datasets/Simulated.yml``):

* data: ``skada.datasets.make_shifted_datasets(n_samples_source=m*100, n_samples_target=m*100,
  shift, noise, label="binary", center_cov_shift=(-0.4, 3), random_state=r)`` with (m, noise) =
  (1, 0.6) for covariate shift, (1, 0.8) for target and conditional shift, (3, 0.4) for subspace
  shift; r = 0..4 (800 source and 800 target points; 2400 each for subspace);
* outer loop: 5 stratified domain shuffle splits (test size 0.2) per r: 25 outer splits;
* inner loop: 5 domain shuffle splits (test size 0.2) of the outer train part, grid search;
* estimator: each method is its plugin with SKADA-Bench's classifier, ``methods.load(plugin,
  base="svc", standardise=False, **point)`` (a skada pipeline ``adapter -> SVC(probability=True)``
  on the raw features), swept over the ``Simulated.yml`` grid of that method (:data:`METHODS`, as
  overrides of the plugin's grid; XGBoost, not installed here, is left out of the discriminator
  choices); "Train Tgt" (``target_only``) is the source-only plugin trained on the labelled target;
* reported: accuracy on the outer target-test part, mean over the 25 outer splits, for the setting
  chosen by the supervised scorer (the ``oracle`` plugin: target labels) and by the
  ``importance_weighted`` plugin.

:data:`PAPER` holds the published figures of the skada-bench results pages (v1.0.0 tables
``table_results_all_dataset_supervised_accuracy`` and ``..._unsupervised_accuracy``; two decimals,
so rounding alone moves a cell by up to 0.5 points). The unsupervised page lists, per method, the
accuracy under that method's best realistic scorer; it is our ``importance_weighted`` paper value
only where that best scorer is the importance-weighted one (KMM, CORAL, Gaussian RW, MMDTarS); other
importance-weighted cells have no published figure (``paper`` empty). The conditional-shift column
is named ``concept_drift`` on those pages (skada renamed the generator option).

Two decisions matter: CORAL's grid varies ``assume_centered`` as skada-bench's ``solvers/CORAL.py``
does (``Simulated.yml`` keeps only ``reg="auto"``, with which the published supervised 84 /
importance-weighted 62 on target shift cannot both be reached); and KMM on the subspace problem is
left out (:data:`SKIPPED`: its QP on ~1900 points per domain costs about a CPU-minute per fit, some
20 CPU-hours for the cell).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from shiftbench import methods, scorers
from shiftbench.grids import grid_points
from shiftbench.reproduction import Reproduced, Reproduction
from shiftbench.scoring import Scorer
from shiftbench.selection import DomainSplit, domain_shuffle_splits, nested_cv

#: shift -> (size multiplier m, noise), from skada-bench's datasets/simulated.py
SHIFT_SETTINGS = {"covariate_shift": (1, 0.6), "target_shift": (1, 0.8), "conditional_shift": (1, 0.8),
                  "subspace": (3, 0.4)}

#: SKADA-Bench's classifier, given to every method plugin: an RBF SVC with Platt probabilities on raw features
PIPELINE: dict[str, Any] = {"base": "svc", "standardise": False}

#: the paper's method label -> (method plugin, the method's Simulated.yml grid in plugin hyperparameters)
METHODS: dict[str, tuple[str, dict[str, list]]] = {
    "source_only": ("skada_source_only", {}),
    "KMM": ("skada_kmm", {"gamma": [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0, None]}),
    # assume_centered as in skada-bench's solvers/CORAL.py grid (Simulated.yml keeps only reg="auto";
    # without both centring choices the published supervised/IW figures cannot both be reached)
    "CORAL": ("skada_coral", {"assume_centered": [False, True]}),
    "Dens. RW": ("skada_density_reweight", {"bandwidth": [0.01, 0.1, 1.0, 10.0, 100.0, "scott", "silverman"]}),
    "Gauss. RW": ("skada_gaussian_reweight", {"reg": ["auto", 1e-5, 0.01, 0.5]}),
    "NN RW": ("skada_nn_reweight", {"laplace_smoothing": [True, False]}),
    "SA": ("skada_subspace_alignment", {"n_components": [1, 2]}),
    "LinOT": ("skada_linear_ot", {"bias": [True, False], "reg": [1e-8, 1e-6, 0.1, 1, 10]}),
}

#: the reference trained on labelled target data ("Train Tgt"), and the plugin it trains
TARGET_ONLY, TARGET_ONLY_PLUGIN = "target_only", "skada_source_only"

#: published figures: (method, shift, scorer) -> accuracy (skada-bench v1.0.0 result pages; the
#: supervised page is our oracle)
PAPER: dict[tuple[str, str, str], float] = {
    **{(m, s, "oracle"): v for m, row in {
        "source_only": (0.88, 0.85, 0.66, 0.19), "target_only": (0.92, 0.93, 0.82, 0.98),
        "KMM": (0.89, 0.87, 0.67, 0.19), "CORAL": (0.74, 0.84, 0.82, 0.19), "Dens. RW": (0.89, 0.87, 0.67, 0.20),
        "Gauss. RW": (0.89, 0.86, 0.65, 0.21), "NN RW": (0.89, 0.86, 0.67, 0.15), "SA": (0.74, 0.81, 0.80, 0.13),
        "LinOT": (0.89, 0.81, 0.81, 0.19)}.items() for s, v in zip(SHIFT_SETTINGS, row)},
    **{(m, s, "importance_weighted"): v for m, row in {
        "KMM": (0.89, 0.86, 0.66, 0.17), "CORAL": (0.74, 0.62, 0.81, 0.11),
        "Gauss. RW": (0.89, 0.86, 0.65, 0.21)}.items() for s, v in zip(SHIFT_SETTINGS, row)},
    # methods without hyperparameters: every scorer selects the same (only) setting
    **{(m, s, "importance_weighted"): v for m, row in {
        "source_only": (0.88, 0.85, 0.66, 0.19), "target_only": (0.92, 0.93, 0.82, 0.98)}.items()
       for s, v in zip(SHIFT_SETTINGS, row)},
}

#: (method, shift) cells left out of the table, with the reason
SKIPPED = {("KMM", "subspace"): "KMM's QP on ~1900 points per domain: ~1 CPU-minute per fit, ~20 CPU-hours for the cell"}


def method_factory(label: str) -> Callable[..., Any]:
    """Builds paper method ``label`` -- its plugin in SKADA-Bench's pipeline -- from grid hyperparameters."""
    return partial(methods.load, METHODS[label][0], **PIPELINE)


def method_grid(label: str) -> list[dict[str, Any]]:
    """The settings paper method ``label`` is swept over: its plugin's grid with the Simulated.yml values."""
    plugin, grid = METHODS[label]
    return grid_points(methods.registry.get(plugin), grid)


def simulated(shift: str, random_state: int, scale: float = 1.0):
    """One SKADA-Bench simulated problem: (Xs, ys, Xt, yt)."""
    from skada.datasets import make_shifted_datasets

    m, noise = SHIFT_SETTINGS[shift]
    n = max(4, int(round(m * 100 * scale)))
    X, y, d = make_shifted_datasets(n_samples_source=n, n_samples_target=n, shift=shift, noise=noise, label="binary",
                                    center_cov_shift=(-0.4, 3), random_state=random_state)
    return X[d > 0], y[d > 0], X[d < 0], y[d < 0]


def outer_splits(ys: np.ndarray, yt: np.ndarray, n_splits: int, seed: int) -> list[DomainSplit]:
    """The outer loop: stratified in both domains (SKADA-Bench stratifies on domain and label)."""
    return domain_shuffle_splits(ys, len(yt), n_splits, 0.2, seed, y_target=yt)


def run_shift(shift: str, labels: list[str], chosen: dict[str, Scorer], seed: int, n_outer: int, n_inner: int,
              scale: float) -> pd.DataFrame:
    """Nested-CV rows (method, shift, seed, outer, scorer, oracle, params, accuracies) of the paper
    methods ``labels`` on one shift and generator seed; outer splits are numbered across seeds."""
    Xs, ys, Xt, yt = simulated(shift, seed, scale)
    outer = outer_splits(ys, yt, n_outer, seed=seed)
    frames = []
    for label in labels:
        res = nested_cv(method_factory(label), method_grid(label), Xs, ys, Xt, yt, chosen, outer, n_inner=n_inner,
                        seed=seed)
        frames.append(res.assign(outer=res["outer"] + seed * n_outer, method=label, shift=shift, seed=seed))
    return pd.concat(frames, ignore_index=True)


def target_only_rows(shift: str, chosen: dict[str, Scorer], seed: int, n_outer: int, scale: float) -> pd.DataFrame:
    """The 'Train Tgt' reference on one shift and seed: the source-only plugin trained on the labelled outer
    target-train part; one row per outer split and scorer (each scorer has only this one setting to pick)."""
    Xs, ys, Xt, yt = simulated(shift, seed, scale)
    rows = []
    for o, sp in enumerate(outer_splits(ys, yt, n_outer, seed=seed)):
        model = methods.load(TARGET_ONLY_PLUGIN, **PIPELINE).fit(Xt[sp.target_train], yt[sp.target_train],
                                                                  Xt[sp.target_train])
        accuracy = float((model.predict(Xt[sp.target_test]) == yt[sp.target_test]).mean())
        rows += [{"outer": seed * n_outer + o, "scorer": name, "oracle": s.needs_target_labels, "params": "{}",
                  "target_accuracy": accuracy, "source_accuracy": np.nan, "method": TARGET_ONLY, "shift": shift,
                  "seed": seed} for name, s in chosen.items()]
    return pd.DataFrame(rows)


def run_cells(shifts: list[str], labels: list[str], chosen: dict[str, Scorer], n_seeds: int, n_outer: int,
              n_inner: int, scale: float, n_jobs: int) -> pd.DataFrame:
    """Nested-CV rows of ``labels`` on ``shifts`` for generator seeds ``0..n_seeds-1``, one local process
    per (shift, seed) job (joblib); cells in :data:`SKIPPED` are left out."""
    jobs = [delayed(run_shift)(shift, kept, chosen, seed, n_outer, n_inner, scale)
            for shift in shifts for seed in range(n_seeds)
            if (kept := [m for m in labels if (m, shift) not in SKIPPED])]
    return pd.concat(Parallel(n_jobs=n_jobs)(jobs), ignore_index=True)


def compare(long: pd.DataFrame) -> pd.DataFrame:
    """Mean target accuracy per (method, shift, scorer) next to the published figure (both in %)."""
    ours = long.groupby(["method", "shift", "scorer"], sort=False)["target_accuracy"].mean()
    rows = []
    for (method, shift, scorer), mean in ours.items():
        paper = PAPER.get((method, shift, scorer))
        ours_pct = round(100 * mean, 1)
        paper_pct = None if paper is None else round(100 * paper, 1)
        rows.append({"method": method, "shift": shift, "scorer": scorer, "ours": ours_pct, "paper": paper_pct,
                     "delta": None if paper is None else round(ours_pct - paper_pct, 1)})
    return pd.DataFrame(rows)


def agreement_notes(long: pd.DataFrame, table: pd.DataFrame) -> str:
    """How close the published cells are, with the largest gaps and their outer-split spread."""
    known = table.dropna(subset=["paper"])
    if known.empty:
        return "No computed cell has a published figure."
    spread = long.groupby(["method", "shift", "scorer"])["target_accuracy"].agg(["std", "count"])
    worst = known.reindex(known["delta"].abs().sort_values(ascending=False).index).head(3)
    gaps = "; ".join(f"{r.method} / {r.shift} / {r.scorer} {r.delta:+.1f} (std over the "
                     f"{int(spread.loc[(r.method, r.shift, r.scorer), 'count'])} splits "
                     f"{100 * spread.loc[(r.method, r.shift, r.scorer), 'std']:.1f})" for r in worst.itertuples())
    return (f"Over the {len(known)} cells with a published figure: mean |delta| {known['delta'].abs().mean():.1f} "
            f"points, largest {known['delta'].abs().max():.1f}. Largest gaps: {gaps}. The published figures have "
            "two decimals (up to 0.5 points of rounding).")


def skipped_notes(shifts: list[str]) -> str:
    """The cells left out, with the reason."""
    left = [f"`{m}` on `{s}` is not computed: {why}." for (m, s), why in SKIPPED.items() if s in shifts]
    return " ".join(left)


class SkadaBenchSimulated(Reproduction):
    """SKADA-Bench, simulated shifts: accuracy under supervised and importance-weighted selection."""

    name = "skada-bench-simulated"
    citation = ("Lalou, Gnassounou, Collas, de Mathelin, Kachaiev, Odonnat, Moreau, Gramfort, Flamary. "
                "SKADA-Bench: Benchmarking Unsupervised Domain Adaptation Methods with Realistic Validation. "
                "arXiv:2407.11676 (2024); figures from github.com/scikit-adaptation/skada-bench result pages v1.0.0")
    setting = ("skada make_shifted_datasets (covariate/target/conditional/subspace, binary, 800 points per domain, "
               "2400 for subspace), 5 seeds x 5 stratified outer splits (test 0.2) = 25, 5 inner domain shuffle "
               "splits (test 0.2), the skada method plugins with base=svc (adapter + SVC(probability=True)) on raw "
               "features, Simulated.yml grids; target-test accuracy; scorer plugins: oracle (the paper's "
               "supervised scorer, target labels) and importance_weighted (KDE ratios, bandwidth 1)")
    offline = True
    packages = ("skada",)

    def run(self, quick: bool = False) -> Reproduced:
        """The ours/paper/delta table (``quick``: 2 methods, 1 seed x 2 outer x 2 inner splits, 1/4 size).

        (shift, generator seed) pairs run in parallel local processes (joblib); the full table takes
        about an hour of CPU time (27 minutes on two shared cores).
        """
        chosen = {name: scorers.load(name) for name in ("oracle", "importance_weighted")}
        labels = ["source_only", "KMM"] if quick else list(METHODS)
        n_seeds, n_outer, n_inner, scale = (1, 2, 2, 0.25) if quick else (5, 5, 5, 1.0)
        n_jobs = 1 if quick else -1
        shifts = list(SHIFT_SETTINGS)
        long = run_cells(shifts, labels, chosen, n_seeds, n_outer, n_inner, scale, n_jobs)
        reference = Parallel(n_jobs=n_jobs)(delayed(target_only_rows)(shift, chosen, seed, n_outer, scale)
                                            for shift in shifts for seed in range(n_seeds))
        long = pd.concat([long, *reference], ignore_index=True)
        table = compare(long)
        notes = " ".join([agreement_notes(long, table), skipped_notes(shifts),
                          "`conditional_shift` is the result pages' `concept_drift` column."])
        return Reproduced(table, long, notes)
