"""Accuracy of covariate- and label-shift methods against the unadapted source model, through the
plugin path the runner uses (Task -> method.run -> method.evaluate); writes results/shift_methods.md.

Covariate shift: tabular logistic source model; domain adapters fit on its standardised
features of ``train`` and the whole target ``test`` split. Label shift: digits (MNIST 5k source,
pretrained ccexam CNNs) with the target resampled to a Dirichlet(alpha) class prior, streamed
in i.i.d. batches of 64; EM / BBSE estimate the prior online over the batches seen so far.

    .venv/bin/python benchmarks/shift_methods_table.py [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from shiftbench.cache import ArrayCache
from shiftbench.dataset import load_for_seed
from shiftbench.datasets import load
from shiftbench.families import Task, Truth
from shiftbench.methods import load as load_method
from shiftbench.models import build_model
from shiftbench.report import seed_values_text
from shiftbench.scenarios import Scenario

COVARIATE_DATASETS = {
    "breast_cancer (median of feature 0)": ("biased_sampling", {"source": "breast_cancer", "feature": 0}),
    "wine (median of feature 0)": ("biased_sampling", {"source": "wine", "feature": 0}),
    "skada covariate_shift": ("skada_shift", {"shift": "covariate_shift", "n_samples": 50}),
    "skada target_shift": ("skada_shift", {"shift": "target_shift", "n_samples": 50}),
    "skada conditional_shift": ("skada_shift", {"shift": "conditional_shift", "n_samples": 50}),
    "skada subspace": ("skada_shift", {"shift": "subspace", "n_samples": 100}),
    "NYC flights EWR -> LGA (Jan-Mar)": ("nycflights_airports", {"max_per_airport": 1000}),
}
COVARIATE_METHODS = {
    "source only": ("source_only", {}),
    "KMM-IW": ("kmm_iw", {}),
    "domain-classifier IW": ("domain_classifier_iw", {}),
    "DW-GCS 0-1 (D auto)": ("dwgcs", {"D": "auto", "loss": "0-1"}),
    "DW-GCS log (D auto)": ("dwgcs", {"D": "auto", "loss": "log"}),
    "skada KMM": ("skada_kmm", {}),
    "skada CORAL": ("skada_coral", {}),
    "skada SA": ("skada_subspace_alignment", {}),
    "skada JDOT": ("skada_jdot", {}),
}
LABEL_SCENARIOS = {
    "MNIST id_test, Dirichlet(1) prior, ccexam_mnist": ("ccexam_mnist", Scenario(target="id_test", label_shift=1.0)),
    "MNIST id_test, Dirichlet(0.3) prior, ccexam_usps": ("ccexam_usps", Scenario(target="id_test", label_shift=0.3)),
    "MNIST id_test, Dirichlet(1) prior, ccexam_usps": ("ccexam_usps", Scenario(target="id_test", label_shift=1.0)),
}
LABEL_METHODS = {
    "source only": ("source_only", {}),
    "EM + BCTS (online)": ("em_correction", {"calibration": "bcts"}),
    "EM, uncalibrated (online)": ("em_correction", {"calibration": "none"}),
    "EM + BCTS (whole target)": ("em_correction", {"calibration": "bcts", "online": False}),
    "BBSE hard + BCTS (online)": ("bbse_correction", {"soft": False}),
    "BBSE soft + BCTS (online)": ("bbse_correction", {"soft": True}),
}


def evaluate(dataset, model, cache, method_name: str, hp: dict, scenario: Scenario, seed: int) -> float:
    """Target accuracy of one method on one scenario, through Task / run / evaluate."""
    split = scenario.target_split(dataset, cache, seed)
    task = Task(dataset.n_classes, dataset.label_free(split), scenario.batches(split.y, seed), seed, model, cache,
                {k: dataset.splits[k] for k in ("train", "id_val") if k in dataset.splits})
    method = load_method(method_name, **hp)
    return method.evaluate(method.run(task), Truth(dataset, split), task)["acc_avg"]


def covariate_rows(seeds: list[int], cache: ArrayCache, root: Path) -> pd.DataFrame:
    rows = []
    for label, (name, options) in COVARIATE_DATASETS.items():
        for seed in seeds:
            dataset = load_for_seed(name, options, seed)
            model = build_model("tabular_logistic", dataset, seed, root)
            for method_label, (method, hp) in COVARIATE_METHODS.items():
                started = time.perf_counter()
                acc = evaluate(dataset, model, cache, method, hp, Scenario(target="test"), seed)
                rows.append({"dataset": label, "method": method_label, "seed": seed, "acc": acc,
                             "seconds": time.perf_counter() - started})
                print(f"{label:40s} {method_label:24s} seed {seed} acc {acc:.3f} ({rows[-1]['seconds']:.1f}s)", flush=True)
    return pd.DataFrame(rows)


def label_rows(seeds: list[int], cache: ArrayCache, root: Path) -> pd.DataFrame:
    rows = []
    dataset = load("digits")
    for label, (model_name, scenario) in LABEL_SCENARIOS.items():
        model = build_model(model_name, dataset, 0, root)
        for seed in seeds:
            for method_label, (method, hp) in LABEL_METHODS.items():
                acc = evaluate(dataset, model, cache, method, hp, scenario, seed)
                rows.append({"dataset": label, "method": method_label, "seed": seed, "acc": acc})
                print(f"{label:50s} {method_label:28s} seed {seed} acc {acc:.3f}", flush=True)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    """Mean accuracy (%) over seeds, shown as the leaderboards show it; one row per method, one column per dataset."""
    cells = df.groupby(["method", "dataset"], sort=False)["acc"].agg(lambda v: seed_values_text(v.to_numpy()))
    wide = cells.unstack("dataset")
    wide = wide.loc[df["method"].unique(), df["dataset"].unique()]
    return wide.to_markdown()


NOTES = """## Notes

- The label-shift gains with `ccexam_usps` combine two effects: BCTS fitted on labelled MNIST
  `id_val` also corrects the USPS network's domain-induced class bias (uncalibrated EM gains only
  2-5 points); the prior correction then adapts to the Dirichlet target prior. With the
  near-perfect `ccexam_mnist` network there is nothing left to gain.
- DW-GCS (linear feature map with intercept, D chosen by minimax risk) is strong on skada's
  covariate and target shifts but below the unweighted logistic regression on the biased-sampling
  tabular sets and on NYC flights here; the paper's biased-sampling numbers are not reproduced.
  Its DW-KMM weights are solved to a relative gap of 1e-9 (benchmarks/bench_double_weighting.py:
  same or lower objective than cvxpy/Clarabel). The confidence-vector LP is degenerate (the optimal
  lambda is not unique), so the minimax risk and the classifier depend on which optimal vertex the
  LP solver returns; on NYC flights the more accurate weights of the new solver moved DW-GCS from
  70.1% to 63.7% (within its seed spread of about 12 points).
- The breast_cancer and wine columns are scikit-learn's bundled copies of those UCI sets with a
  biased sample on feature 0, not the DW-GCS paper's data or protocol; they are not a reproduction.
- skada's `subspace` generator gives a target on which every linear model trained on the source
  is almost always wrong (0% for source only); the conditional shift defeats all reweighting
  methods (p(y|x) changes), while the mapping methods (CORAL, SA, JDOT) recover it.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output", default="results/shift_methods.md")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        cache = ArrayCache(Path(tmp) / "cache")
        cov = covariate_rows(seeds, cache, Path(tmp))
        lab = label_rows(seeds, cache, Path(tmp))
    text = "\n".join([
        "# Covariate- and label-shift methods: target accuracy (%)",
        "",
        f"Generated by `benchmarks/shift_methods_table.py --seeds {args.seeds}`; mean over seeds {seeds} (the seed "
        "draws the biased sample / simulated data / label-shifted target and stream, and the method's randomness), "
        "± 95% Student-t interval with 3+ seeds, `1 eff. of n` when every seed gave the same number.",
        "",
        "## Covariate shift (tabular logistic-regression source model; target = `test` split)",
        "",
        table(cov),
        "",
        "## Label shift (digits: MNIST 5k source, target resampled to a Dirichlet prior; batches of 64)",
        "",
        table(lab),
        "",
        "Seconds per method (covariate shift, mean over cells): "
        + ", ".join(f"{m} {s:.1f}" for m, s in cov.groupby("method", sort=False)["seconds"].mean().items()),
        "",
        NOTES,
    ])
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
