"""Every registered scorer that judges domain adapters next to the oracle, in SKADA-Bench's nested CV of its
simulated covariate and conditional shifts (Lalou et al. 2024, the setting of
:mod:`shiftbench.reproductions.skada_bench_simulated`: same data, splits, method plugins and grids, for the
methods of :data:`LABELS`).

Per method and shift, the target-test accuracy of the setting each scorer selects (mean ± std over
the 25 outer splits); the oracle (target labels) is reported apart. The ours/paper/delta table holds
the oracle (the paper's supervised scorer) and importance-weighted cells, with skada-bench's published figures
(:data:`~shiftbench.reproductions.skada_bench_simulated.PUBLISHED`); the markdown shows every scorer per shift
as one table of scorers.
"""

from __future__ import annotations

import pandas as pd

from shiftbench import scorers
from shiftbench.report import to_markdown
from shiftbench.reproduction import Reproduced, Reproduction
from shiftbench.reproductions.skada_bench_simulated import SkadaBenchSimulated, agreement_notes, compare, run_cells
from shiftbench.selection import selection_table

SHIFTS = ["covariate_shift", "conditional_shift"]
#: the paper methods this table compares scorers on (the reweighting, mapping and subspace families)
LABELS = ["source_only", "KMM", "CORAL", "Dens. RW", "Gauss. RW", "NN RW", "SA", "LinOT"]


def scorer_tables(long: pd.DataFrame) -> str:
    """Per shift, a markdown table: per method, target accuracy (%) under each scorer, oracles last."""
    parts = ["Target accuracy (%) of the setting each scorer selects, mean ± std over the outer splits; "
             "`(oracle)` columns select with target labels."]
    for shift in dict.fromkeys(long["shift"]):
        parts += [f"### {shift}", to_markdown(selection_table(long[long["shift"] == shift]))]
    return "\n\n".join(parts)


class SkadaBenchScorers(Reproduction):
    """SKADA-Bench simulated covariate and conditional shifts: target accuracy under every domain-adapter scorer."""

    name = "skada-bench-scorers"
    citation = SkadaBenchSimulated.citation
    setting = ("SKADA-Bench's simulated covariate_shift and conditional_shift (skada make_shifted_datasets, binary, "
               "800 points per domain, float32), 5 seeds x 5 stratified outer splits (test 0.2) = 25, 5 inner domain "
               "shuffle splits (test 0.2), the skada method plugins of source_only, KMM, CORAL, Dens. RW, Gauss. RW, "
               "NN RW, SA and LinOT with base=svc on raw features and skada-bench's Simulated grids; every registered "
               "scorer plugin that judges domain adapters, with its default options (shiftbench list scorers), the "
               "oracle apart; target-test accuracy of each scorer's selection")
    offline = True
    packages = SkadaBenchSimulated.packages

    def run(self, quick: bool = False) -> Reproduced:
        """Every scorer's selections (``quick``: 2 methods, 1 seed x 2 outer x 2 inner splits, 1/4 size)."""
        chosen = {name: s for name, s in scorers.default_scorers().items() if "domain" in s.families()}
        labels = ["source_only", "Dens. RW"] if quick else LABELS
        n_seeds, n_outer, n_inner, scale = (1, 2, 2, 0.25) if quick else (5, 5, 5, 1.0)
        long = run_cells(SHIFTS, labels, chosen, n_seeds, n_outer, n_inner, scale, n_jobs=1 if quick else -1)
        table = compare(long).dropna(subset=["paper"]).reset_index(drop=True)
        return Reproduced(table, long, f"{agreement_notes(table)}\n\n{scorer_tables(long)}")
