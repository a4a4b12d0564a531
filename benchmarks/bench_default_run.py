"""Cold vs warm cost of the default benchmark (`shiftbench run`): a re-run must do no forward passes.

Runs the default experiment twice against an empty cache directory: cold (trains models, corrupts
data, runs every forward pass and every cell) and warm (unchanged re-run: every cell cached).
Prints both wall times, their ratio, and where the cold time goes: forward passes of the source
models, model training, corrupting, materialising targets and streams, the methods' own compute
(for TTA methods: their forward and backward passes through the adapted network), metrics,
selection scores, record writes, and the rest (expansion, claims, tables). The overhead share is
everything but forward passes, training and the methods' compute.

    .venv/bin/python benchmarks/bench_default_run.py [--experiment smoke] [hydra overrides ...]

With ``jobs=2`` the phases are summed over the workers (CPU-seconds), and the shares are of their sum.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from shiftbench.hydra_app import run_experiment


def timed_run(overrides: list[str]) -> tuple[float, dict]:
    with initialize_config_module("shiftbench.configs", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    start = time.perf_counter()
    counts = run_experiment(cfg)
    return time.perf_counter() - start, counts


def breakdown(cold: float, c: dict) -> None:
    """Where the cold run's time went, and the share that is neither forward passes, training nor method compute."""
    forward, training = c["forward_seconds"], c["model_seconds"]
    method = max(c["method_seconds"] - forward, 0.0)  # the cached forward passes happen inside the methods' runs
    target = c["target_seconds"] - c["corruption_seconds"]
    parts = {"loading datasets": c["dataset_seconds"], "corrupting": c["corruption_seconds"],
             "targets and streams": target, "metrics": c["metric_seconds"],
             "selection scores": c["scoring_seconds"], "record writes": c["store_seconds"]}
    total = max(cold, forward + training + method + sum(parts.values()))  # with workers: their CPU-seconds
    parts["rest (expansion, claims, tables, plots)"] = total - forward - training - method - sum(parts.values())
    for name, seconds in {"method compute": method, **parts}.items():
        print(f"  {name:40s}{seconds:8.1f} s  ({100 * seconds / total:.1f}%)")
    overhead = sum(parts.values())
    print(f"overhead (all but forward passes, training, method compute) {100 * overhead / total:.1f}% "
          f"(goal: at most 25%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=None, help="experiment config (default: the default benchmark)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"cache_dir={tmp}", f"results_dir={tmp}/results", "progress=false", *args.overrides]
        if args.experiment:
            overrides.append(f"experiment={args.experiment}")
        cold, cold_counts = timed_run(overrides)
        warm, warm_counts = timed_run(overrides)
    n = cold_counts["ok"] + cold_counts["not_applicable"] + cold_counts["failed"]
    print("\n=== default benchmark: cold vs warm ===")
    print(f"cells                       {n}")
    print(f"cold run                    {cold:8.1f} s")
    print(f"  {'building/training models':40s}{cold_counts['model_seconds']:8.1f} s")
    print(f"  {'forward passes':40s}{cold_counts['forward_seconds']:8.1f} s  ({cold_counts['forward_passes']} passes, "
          f"{100 * cold_counts['forward_seconds'] / cold:.1f}% of cold)")
    breakdown(cold, cold_counts)
    print(f"warm run                    {warm:8.1f} s  ({warm_counts['cached']} cells cached, "
          f"{warm_counts['forward_passes']} forward passes)")
    print(f"warm / cold                 {warm / cold:8.3f}  ({cold / warm:.0f}x faster)")


if __name__ == "__main__":
    main()
