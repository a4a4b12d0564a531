"""Leaderboard tables built from result records: mean and 95% CI over seeds, per scenario group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from shiftbench.cache import atomic_write_bytes, atomic_write_text

ROW_KEYS = ["dataset", "model", "method", "hparams"]


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def per_seed_scores(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Metric averaged over the scenarios of each group, per (row keys, group, seed); plus an ``avg`` group."""
    return seed_scores(frame, metric, ROW_KEYS)


def leaderboard(frame: pd.DataFrame, metric: str = "acc_avg") -> pd.DataFrame:
    """Long table: one row per (dataset, model, method, hparams, group) with mean, ci95 and n_seeds."""
    scores = per_seed_scores(frame, metric)
    rows = []
    for keys, part in scores.groupby([*ROW_KEYS, "group"], dropna=False):
        mean, half = mean_ci(part["value"].to_numpy())
        rows.append({**dict(zip([*ROW_KEYS, "group"], keys)), "metric": metric, "mean": mean, "ci95": half,
                     "n_seeds": int(part["seed"].nunique())})
    return pd.DataFrame(rows)


def wide(long: pd.DataFrame, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """Leaderboard as text cells ``mean ± ci`` with one column per scenario group, ``avg`` last."""
    if long.empty:
        return pd.DataFrame()
    text = long.assign(cell=[f"{m * scale:.{digits}f} ± {c * scale:.{digits}f}" for m, c in zip(long["mean"], long["ci95"])])
    table = text.pivot_table(index=ROW_KEYS, columns="group", values="cell", aggfunc="first")
    cols = [c for c in table.columns if c != "avg"] + (["avg"] if "avg" in table.columns else [])
    table = table[cols].reset_index()
    table.columns.name = None
    return table.sort_values(["dataset", "model", "method", "hparams"]).reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False) if not table.empty else "(no results)"


def write_tables(frame: pd.DataFrame, out_dir: Path | str, metric: str = "acc_avg") -> dict[str, Path]:
    """Write records.csv (with provenance), leaderboard.csv (long) and leaderboard.md (wide) atomically."""
    out = Path(out_dir)
    long = leaderboard(frame, metric)
    paths = {"records": out / "records.csv", "leaderboard": out / "leaderboard.csv", "markdown": out / "leaderboard.md"}
    atomic_write_text(paths["records"], frame.sort_values("key").to_csv(index=False) if not frame.empty else "")
    atomic_write_text(paths["leaderboard"], long.to_csv(index=False))
    atomic_write_text(paths["markdown"], f"# Leaderboard ({metric}, %, mean ± 95% CI over seeds)\n\n"
                      + to_markdown(wide(long)) + "\n")
    from shiftbench.plots import accuracy_vs_severity, png_bytes

    figure = accuracy_vs_severity(frame, metric) if not frame.empty else None
    if figure is not None:
        paths["severity_plot"] = out / f"{metric}_vs_severity.png"
        atomic_write_bytes(paths["severity_plot"], png_bytes(figure))
    return paths


# --- leaderboards with ranks, paired tests against the reference method and oracle marks -------------

#: metrics where smaller is better (ranks and improvement markers follow this)
LOWER_IS_BETTER = frozenset({"ece", "nll", "mae_acc", "max_ae_acc", "mse"})
#: the method every row is compared with
REFERENCE_METHOD = "source_only"
#: a cell is marked when its paired test against the reference has p below this
ALPHA = 0.05
MARKS = {1: "▲", -1: "▼", 0: ""}


def row_keys(frame: pd.DataFrame) -> list[str]:
    """Columns that identify a leaderboard row: ``ROW_KEYS`` plus ``scorer`` where selection results carry one."""
    return [*ROW_KEYS, "scorer"] if "scorer" in frame.columns else list(ROW_KEYS)


def oracle_mask(frame: pd.DataFrame) -> pd.Series:
    """Rows whose hyperparameters were selected with target labels (scorer or selection ``oracle``)."""
    mask = pd.Series(False, index=frame.index)
    for col in ("scorer", "selection"):
        if col in frame.columns:
            mask |= frame[col].astype(str).str.lower().eq("oracle")
    return mask


def cell_values(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One value per finished cell: row keys, group, scenario, seed and ``value``."""
    col = f"metric.{metric}"
    keys = row_keys(frame)
    if frame.empty or col not in frame:
        return pd.DataFrame(columns=[*keys, "group", "scenario", "seed", "value"])
    ok = frame[(frame["status"] == "ok") & frame[col].notna()]
    if "scorer" in keys:  # rows without model selection have no scorer; keep them as rows of their own
        ok = ok.assign(scorer=ok["scorer"].fillna("").astype(str))
    return ok[[*keys, "group", "scenario", "seed", col]].rename(columns={col: "value"}).reset_index(drop=True)


def paired_p_value(differences: np.ndarray, test: str = "ttest") -> float:
    """Two-sided p-value that matched differences have mean (``ttest``) or median (``wilcoxon``) zero."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2 or np.allclose(d, 0.0, atol=1e-12):
        return 1.0
    if np.allclose(d, d[0], atol=1e-12):
        return 0.0  # the same non-zero difference in every matched cell: no noise to explain it
    tests = {"ttest": lambda x: stats.ttest_1samp(x, 0.0).pvalue,
             "wilcoxon": lambda x: stats.wilcoxon(x, zero_method="zsplit").pvalue}
    return float(tests[test](d))


def compare_with_reference(frame: pd.DataFrame, metric: str = "acc_avg", reference: str = REFERENCE_METHOD,
                           test: str = "ttest") -> pd.DataFrame:
    """Per (row, group): mean paired difference to ``reference`` and its p-value.

    Cells are matched on dataset, model, scenario and seed; a group column is tested over its matched
    (scenario, seed) cells, the ``avg`` column (the mean of the group columns) over (group, seed) means,
    so that its difference is the difference of the displayed averages."""
    values = cell_values(frame, metric)
    keys = row_keys(frame)
    match = ["dataset", "model", "scenario", "seed"]
    ref = values[values["method"] == reference].groupby(match, dropna=False)["value"].mean().rename("reference")
    paired = values.join(ref, on=match, how="inner")
    paired = paired.assign(diff=paired["value"] - paired["reference"])
    group_means = paired.groupby([*keys, "group", "seed"], dropna=False)["diff"].mean().reset_index()
    rows = []
    for part in (paired, group_means.assign(group="avg")):
        for key, cells in part.groupby([*keys, "group"], dropna=False):
            rows.append({**dict(zip([*keys, "group"], key)), "delta": float(cells["diff"].mean()),
                         "p_value": paired_p_value(cells["diff"].to_numpy(), test), "n_pairs": len(cells)})
    return pd.DataFrame(rows, columns=[*keys, "group", "delta", "p_value", "n_pairs"])


def rank_cells(long: pd.DataFrame, metric: str) -> pd.Series:
    """Rank of each leaderboard row within its (dataset, model, group) (1 = best; ties share the mean rank;
    oracle rows are not ranked, they use target labels)."""
    honest = long[~long["oracle"]] if "oracle" in long else long
    ascending = metric in LOWER_IS_BETTER
    ranks = honest.groupby(["dataset", "model", "group"], dropna=False)["mean"].rank(ascending=ascending, method="average")
    return ranks.reindex(long.index)


def average_ranks(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Average over (dataset, model) tasks of each method setting's rank on the ``avg`` group."""
    keys = [k for k in row_keys(long) if k not in ("dataset", "model")]
    ranked = long.assign(rank=rank_cells(long, metric))
    avg = ranked[(ranked["group"] == "avg") & ranked["rank"].notna()]
    out = avg.groupby(keys, dropna=False)["rank"].agg(["mean", "count"]).reset_index()
    return out.rename(columns={"mean": "avg_rank", "count": "n_tasks"}).sort_values("avg_rank").reset_index(drop=True)


def full_leaderboard(frame: pd.DataFrame, metric: str = "acc_avg", reference: str = REFERENCE_METHOD,
                     test: str = "ttest", alpha: float = ALPHA) -> pd.DataFrame:
    """The long leaderboard with ``scorer`` and ``oracle`` columns, the paired comparison with ``reference``
    (``delta``, ``p_value``, ``n_pairs``, ``significant``: -1 worse, 0 not significant, +1 better), the
    row's ``rank`` in its (dataset, model, group) and its ``avg_rank`` across tasks."""
    keys = row_keys(frame)
    scores = seed_scores(frame, metric, keys)
    rows = []
    for key, part in scores.groupby([*keys, "group"], dropna=False):
        mean, half = mean_ci(part["value"].to_numpy())
        rows.append({**dict(zip([*keys, "group"], key)), "metric": metric, "mean": mean, "ci95": half,
                     "n_seeds": int(part["seed"].nunique())})
    long = pd.DataFrame(rows, columns=[*keys, "group", "metric", "mean", "ci95", "n_seeds"])
    if long.empty:
        return long
    long["oracle"] = oracle_mask(long)
    comparison = compare_with_reference(frame, metric, reference, test)
    long = long.merge(comparison, on=[*keys, "group"], how="left")
    better = -1.0 if metric in LOWER_IS_BETTER else 1.0
    direction = np.sign(long["delta"].fillna(0.0) * better).astype(int)
    long["significant"] = np.where((long["p_value"] < alpha) & (long["method"] != reference), direction, 0)
    long["rank"] = rank_cells(long, metric)
    ranks = average_ranks(long, metric)
    return long.merge(ranks[[k for k in keys if k not in ("dataset", "model")] + ["avg_rank"]],
                      on=[k for k in keys if k not in ("dataset", "model")], how="left")


def seed_scores(frame: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """:func:`per_seed_scores` over given row keys (e.g. with the selection ``scorer``)."""
    values = cell_values(frame, metric)
    by_group = values.groupby([*keys, "group", "seed"], dropna=False)["value"].mean().reset_index()
    overall = by_group.groupby([*keys, "seed"], dropna=False)["value"].mean().reset_index().assign(group="avg")
    return pd.concat([by_group, overall], ignore_index=True)


def marked_wide(long: pd.DataFrame, scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """Text leaderboard: ``mean ± ci`` per group with ▲/▼ where the paired test against the reference is
    significant, oracle rows labelled ``(oracle)``, and the ``avg rank`` across tasks."""
    if long.empty:
        return pd.DataFrame()
    keys = row_keys(long)
    factor = 1.0 if long["metric"].iloc[0] == "nll" else scale
    text = [f"{m * factor:.{digits}f} ± {c * factor:.{digits}f}{MARKS[int(s)]}"
            for m, c, s in zip(long["mean"], long["ci95"], long["significant"])]
    labelled = long.assign(cell=text, method=np.where(long["oracle"], long["method"] + " (oracle)", long["method"]))
    table = labelled.pivot_table(index=keys, columns="group", values="cell", aggfunc="first")
    cols = [c for c in table.columns if c != "avg"] + (["avg"] if "avg" in table.columns else [])
    table = table[cols].reset_index()
    table.columns.name = None
    ranks = labelled.drop_duplicates(keys)[[*keys, "avg_rank"]]
    table = table.merge(ranks, on=keys, how="left")
    table["avg rank"] = [f"{r:.2f}" if np.isfinite(r) else "" for r in table.pop("avg_rank")]
    return table.sort_values(keys).reset_index(drop=True)


def legend(metric: str, reference: str = REFERENCE_METHOD, test: str = "ttest", alpha: float = ALPHA) -> str:
    """One paragraph explaining the marks of :func:`marked_wide`."""
    names = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
    return (f"{metric} (%), mean ± 95% CI over seeds. ▲/▼: significantly better/worse than {reference} "
            f"({names[test]} over matched scenario x seed cells; avg: over scenario-group x seed means; p < {alpha}). (oracle): hyperparameters selected "
            "with target labels, not ranked. avg rank: mean rank over (dataset, model) tasks on the avg column.")


def latex_table(table: pd.DataFrame) -> str:
    """LaTeX tabular of a text leaderboard, with ± and the marks in math mode."""
    replace = {"±": r"$\pm$", "▲": r"$^{\blacktriangle}$", "▼": r"$^{\blacktriangledown}$"}
    text = table.to_latex(index=False, escape=True)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text
