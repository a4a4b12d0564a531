"""Every registered scorer that judges domain adapters next to the oracle, in SKADA-Bench's nested CV of its
simulated covariate and conditional shifts (Lalou et al. 2024, the setting of
:mod:`shiftbench.reproductions.skada_bench_simulated`: same data, splits, method plugins and grids, for the
methods of :data:`LABELS`).

Per method and shift, the target-test accuracy of the setting each scorer selects (mean ± std over
the 25 outer splits); the oracle (target labels) is reported apart. The ours/paper/delta table holds every
cell skada-bench publishes a figure for: the oracle (its supervised scorer), importance-weighted, circular
validation, DEV, MixVal (both), prediction entropy and SND cells (:data:`PAPER_SCORERS`); the markdown shows
every scorer per shift as one table of scorers.
"""

from __future__ import annotations

import pandas as pd

from shiftbench import scorers
from shiftbench.report import to_markdown
from shiftbench.reproduction import Reproduced, Reproduction
from shiftbench.reproductions.skada_bench_simulated import (PAPER, SkadaBenchSimulated, agreement_notes, compare,
                                                             run_cells)
from shiftbench.selection import selection_table

SHIFTS = ["covariate_shift", "conditional_shift"]
#: the paper methods this table compares scorers on (the reweighting, mapping and subspace families)
LABELS = ["source_only", "KMM", "CORAL", "Dens. RW", "Gauss. RW", "NN RW", "SA", "LinOT"]

#: skada-bench's published figures for the unsupervised scorers it shares with the scorer registry, per method in
#: SHIFTS order, from the file of :data:`~shiftbench.reproductions.skada_bench_simulated.PUBLISHED` at its
#: precision (its scorer names: circular_validation, deep_embedded_validation, mix_val_both, prediction_entropy,
#: soft_neighborhood_density); the file leaves "Train Src" empty under these scorers
PUBLISHED_SCORERS: dict[str, dict[str, tuple[float, float]]] = {
    "circular": {"KMM": (0.89, 0.6445000000000001), "CORAL": (0.741, 0.757), "Dens. RW": (0.88225, 0.65625),
                 "Gauss. RW": (0.89075, 0.649), "NN RW": (0.8852500000000001, 0.6665000000000001),
                 "SA": (0.742, 0.80125), "LinOT": (0.73375, 0.7585)},
    "dev": {"KMM": (0.888, 0.6535), "CORAL": (0.69375, 0.75125), "Dens. RW": (0.885, 0.6565000000000001),
            "Gauss. RW": (0.89075, 0.649), "NN RW": (0.8855, 0.66375), "SA": (0.733, 0.80125),
            "LinOT": (0.809, 0.79375)},
    "mixval": {"KMM": (0.892, 0.6447499999999999), "CORAL": (0.6905, 0.74725), "Dens. RW": (0.8905, 0.60975),
               "Gauss. RW": (0.89075, 0.649), "NN RW": (0.8852500000000001, 0.66625),
               "SA": (0.7142499999999999, 0.69175), "LinOT": (0.884, 0.8109999999999999)},
    "prediction_entropy": {"KMM": (0.889, 0.6665000000000001), "CORAL": (0.741, 0.6920000000000001),
                           "Dens. RW": (0.89325, 0.6615000000000001), "Gauss. RW": (0.89075, 0.649),
                           "NN RW": (0.88575, 0.6655), "SA": (0.742, 0.80125), "LinOT": (0.89225, 0.7415)},
    "snd": {"KMM": (0.88575, 0.6467499999999999), "CORAL": (0.66475, 0.6635), "Dens. RW": (0.87825, 0.59975),
            "Gauss. RW": (0.89075, 0.649), "NN RW": (0.88625, 0.6655), "SA": (0.53325, 0.59675),
            "LinOT": (0.754, 0.7084999999999999)},
}

#: published figures of this table: (method, shift, scorer) -> accuracy (the oracle and importance-weighted ones of
#: the simulated reproduction, and the scorers above)
PAPER_SCORERS: dict[tuple[str, str, str], float] = {
    **{key: value for key, value in PAPER.items() if key[0] in LABELS and key[1] in SHIFTS},
    **{(method, shift, scorer): value for scorer, rows in PUBLISHED_SCORERS.items() for method, row in rows.items()
       for shift, value in zip(SHIFTS, row)}}


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
               "800 points per domain, float32), 5 seeds x 5 outer splits (test 0.2) = 25 and 5 inner splits (test "
               "0.2), skada-bench's own (StratifiedDomainShuffleSplit, random_state 0), the skada method plugins of source_only, KMM, CORAL, Dens. RW, Gauss. RW, "
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
        table = compare(long, PAPER_SCORERS).dropna(subset=["paper"]).reset_index(drop=True)
        return Reproduced(table, long, f"{agreement_notes(table)}\n\n{scorer_tables(long)}")
