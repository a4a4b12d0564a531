"""Per method, target accuracy under every realistic scorer next to the oracle (nested CV).

SKADA-Bench's simulated covariate and conditional shifts (generator seed 0, 5 stratified outer
splits, 5 inner splits), adapter + SVC skada pipelines with the Simulated.yml grids, all eight
shiftbench scorers. Writes results/selection_scorers.csv (one row per outer split and scorer) and
results/selection_scorers.md (mean ± std over the outer splits, %), and prints the tables.
Run: .venv/bin/python benchmarks/selection_scorers_table.py
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from shiftbench.report import to_markdown
from shiftbench.reproductions.skada_bench_simulated import run_shift
from shiftbench.scorers import default_scorers
from shiftbench.selection import selection_table

warnings.filterwarnings("ignore")
METHODS = ["source_only", "CORAL", "Dens. RW", "Gauss. RW", "NN RW", "SA", "LinOT"]
SHIFTS = ["covariate_shift", "conditional_shift"]
OUT = Path(__file__).resolve().parents[1] / "results"


def one(shift: str, method: str) -> pd.DataFrame:
    warnings.filterwarnings("ignore")
    return run_shift(shift, [method], default_scorers(), range(1), 5, 5, 1.0)


def main() -> None:
    parts = Parallel(n_jobs=-1)(delayed(one)(s, m) for s in SHIFTS for m in METHODS)
    long = pd.concat(parts, ignore_index=True)
    long = long[long["method"] != "target_only"]
    long.to_csv(OUT / "selection_scorers.csv", index=False)
    lines = ["# Target accuracy (%) under each selection scorer, next to the oracle",
             "", "Nested CV on SKADA-Bench's simulated shifts (seed 0, 5 outer x 5 inner splits), adapter + SVC;",
             "mean ± std over the outer splits. `(oracle)` columns select with target labels.",
             "Produced by `benchmarks/selection_scorers_table.py`.", ""]
    for shift in SHIFTS:
        table = selection_table(long[long["shift"] == shift])
        lines += [f"## {shift}", "", to_markdown(table), ""]
        print(f"\n{shift}\n{table.to_string(index=False)}")
    (OUT / "selection_scorers.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
