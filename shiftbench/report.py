"""Leaderboards built from result records (DomainBed's ``reporting`` idea: tables from stored records).

The rules every table follows:

- A row is one method setting on one (dataset, model): ``dataset, model, method, hparams`` (and the
  selection ``scorer`` where selection results carry one). Its columns are scenario groups and ``avg``.
- **Coverage.** The cells a row should have are the (scenario, seed) pairs that any row of the same
  (dataset, model) has in that group, less the row's own not-applicable cells. A group value exists
  only when every one of them is ``ok``; otherwise the table shows the coverage (``3/4 cells``) and
  no number. ``avg`` (the mean of the group values, per seed) exists only when every group is
  complete. Incomplete rows are never ranked and never tested.
- **Seeds.** A group value is the mean over seeds of the per-seed means over its scenarios. With
  three or more seeds whose values differ it carries a 95% Student-t interval clipped to the
  metric's range; with two seeds the two values are shown; values identical in every seed are one
  effective replicate (``1 eff. of 3``) and get no interval; the ``seeds`` column says how many
  seeds a row holds.
- **Tests.** Every row is compared with the reference method on matched (scenario, seed) cells
  (``avg``: on matched (group, seed) means); differences that are the same in every seed of a
  scenario count once; a test with fewer than two effective pairs or zero variance gives no mark.
- Oracle rows (hyperparameters chosen with target labels) are labelled and never ranked.

This module is the aggregation (:func:`aggregate` gives a :class:`Leaderboard`: the records, their long
table and the notes) and the text renderers (markdown, CSV, LaTeX). The HTML page
(:mod:`shiftbench.leaderboard_html`), the figures (:mod:`shiftbench.plots`) and the results folder
(:mod:`shiftbench.results_folder`) are built on it; it imports none of them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from shiftbench.errors import ShiftbenchError
from shiftbench.metric_facts import metric_facts

ROW_KEYS = ["dataset", "model", "method", "hparams"]
#: the method every row is compared with
REFERENCE_METHOD = "source_only"
#: a cell is marked when its paired test against the reference has p below this
ALPHA = 0.05
MARKS = {1: "▲", -1: "▼", 0: ""}
#: seeds needed before a Student-t interval is shown
MIN_SEEDS_FOR_INTERVAL = 3
LONG_COLUMNS = ["group", "metric", "mean", "ci95", "low", "high", "n_seeds", "n_eff", "seed_values",
                "n_cells", "n_expected", "complete"]


def check_metric(frame: pd.DataFrame, metric: str) -> None:
    """Refuse to build a table of a metric that no finished cell reports, listing those that exist."""
    if frame.empty or not (frame["status"] == "ok").any():
        return
    available = sorted(c[len("metric."):] for c in frame.columns if c.startswith("metric.") and frame[c].notna().any())
    if metric not in available:
        raise ShiftbenchError(f"no finished cell reports metric {metric!r}; metrics of these cells: {', '.join(available)} "
                              "(the cells are stored: re-run with metric=NAME to get the table at once)")


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
    """One row per cell record: row keys, group, scenario, seed, ``status``, ``value`` (NaN unless ok) and
    ``inputs`` (the cell's data and model hashes, where records have them).

    Rows whose finished cells report other metrics but not this one (a performance estimator in an
    accuracy table) are not rows of this metric's table and are left out; failed cells stay."""
    col = f"metric.{metric}"
    keys = row_keys(frame)
    columns = [*keys, "group", "scenario", "seed", "status", "value", "inputs"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    values = frame[col] if col in frame else pd.Series(np.nan, index=frame.index)
    hashes = [frame[c].astype(str) for c in ("data_hash", "model_hash") if c in frame]
    inputs = hashes[0].str.cat(hashes[1:], sep="|") if hashes else pd.Series("", index=frame.index)
    out = frame.assign(value=pd.to_numeric(values, errors="coerce").where(frame["status"] == "ok"), inputs=inputs)
    if "scorer" in keys:  # rows without model selection have no scorer; keep them as rows of their own
        out = out.assign(scorer=out["scorer"].fillna("").astype(str))
    out = out[columns].reset_index(drop=True)
    row = out.groupby(keys, dropna=False, sort=False)
    other_metric = row["status"].transform(lambda s: (s == "ok").any()) & ~row["value"].transform(lambda v: v.notna().any())
    return out[~other_metric.astype(bool)].reset_index(drop=True)


def _universe(values: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Which rows share an expected cell grid: the same (dataset, model), and selected rows (held-out
    scenarios only) apart from unselected ones."""
    selected = values["scorer"].ne("") if "scorer" in keys else pd.Series(False, index=values.index)
    return values["dataset"].astype(str) + "\x00" + values["model"].astype(str) + "\x00" + selected.astype(str)


def seed_scores(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (row, group): coverage (``n_cells`` ok of ``n_expected``, ``complete``) and, for complete groups
    and a complete ``avg``, one row per seed with its ``value``. Columns: row keys, group, seed (NaN for
    incomplete groups), value, n_cells, n_expected, complete, and ``inputs_vary``: whether the seeds saw
    different data or models (then equal values are a coincidence, not one effective replicate)."""
    values = cell_values(frame, metric)
    keys = row_keys(frame)
    if values.empty:
        return pd.DataFrame(columns=seed_score_columns(keys))
    values = values.assign(_u=_universe(values, keys), _pair=list(zip(values["scenario"], values["seed"])))
    out: list[dict] = []
    for _, universe in values.groupby("_u", sort=False):
        grid = {g: set(part["_pair"]) for g, part in universe.groupby("group", sort=True)}
        for key, row in universe.groupby(keys, sort=False, dropna=False):
            ident = dict(zip(keys, key))
            not_applicable = set(row.loc[row["status"] == "not_applicable", "_pair"])
            ok = row[row["value"].notna()]
            ok_value = dict(zip(ok["_pair"], ok["value"]))
            varying = {scenario for scenario, part in ok.groupby("scenario") if part["inputs"].nunique() > 1}
            expected_by_group = {g: pairs - not_applicable for g, pairs in grid.items() if pairs - not_applicable}
            per_group: dict[str, dict] = {}
            for group, expected in expected_by_group.items():
                have = expected & set(ok_value)
                entry = {**ident, "group": group, "n_cells": len(have), "n_expected": len(expected),
                         "complete": len(have) == len(expected),
                         "inputs_vary": any(scenario in varying for scenario, _ in expected)}
                if entry["complete"]:
                    by_seed: dict[int, list[float]] = {}
                    for scenario, seed in sorted(expected, key=str):
                        by_seed.setdefault(seed, []).append(ok_value[(scenario, seed)])
                    per_group[group] = {s: float(np.mean(v)) for s, v in by_seed.items()}
                    out.extend({**entry, "seed": s, "value": v} for s, v in per_group[group].items())
                else:
                    out.append({**entry, "seed": np.nan, "value": np.nan})
            if not per_group and not any(row["status"] != "not_applicable"):
                continue  # not applicable anywhere: no row
            groups = list(expected_by_group)
            avg = {**ident, "group": "avg", "n_cells": sum(len(set(ok_value) & e) for e in expected_by_group.values()),
                   "n_expected": sum(map(len, expected_by_group.values())), "inputs_vary": bool(varying)}
            common = set.intersection(*(set(per_group[g]) for g in groups)) if groups and len(per_group) == len(groups) else set()
            avg["complete"] = bool(common)
            if common:
                out.extend({**avg, "seed": s, "value": float(np.mean([per_group[g][s] for g in groups]))}
                           for s in sorted(common))
            else:
                out.append({**avg, "seed": np.nan, "value": np.nan})
    return pd.DataFrame(out, columns=seed_score_columns(keys))


def seed_score_columns(keys: list[str]) -> list[str]:
    """Columns of :func:`seed_scores`."""
    return [*keys, "group", "seed", "value", "n_cells", "n_expected", "complete", "inputs_vary"]


def summarise_seeds(values: np.ndarray, metric: str, inputs_vary: bool = False, confidence: float = 0.95) -> dict:
    """Mean over seeds, effective replicates and, with enough of them, the interval clipped to the metric's range.

    Equal values over seeds are one effective replicate unless ``inputs_vary`` (the seeds saw different
    data or models, so the equality is a coincidence of a discrete metric)."""
    v = np.asarray(values, dtype=np.float64)
    facts = metric_facts(metric)
    n = len(v)
    n_eff = 1 if n and not inputs_vary and np.allclose(v, v[0], rtol=0.0, atol=1e-12) else n
    mean = float(v.mean()) if n else math.nan
    half = math.nan
    if n_eff >= MIN_SEEDS_FOR_INTERVAL:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    low = max(mean - half, facts.low) if np.isfinite(half) else math.nan
    high = min(mean + half, facts.high) if np.isfinite(half) else math.nan
    return {"mean": mean, "ci95": half, "low": low, "high": high, "n_seeds": n, "n_eff": n_eff,
            "seed_values": ";".join(f"{x:.6g}" for x in v)}


def paired_p_value(differences: np.ndarray, test: str = "ttest") -> float:
    """Two-sided p-value that matched differences have mean (``ttest``) or median (``wilcoxon``) zero.

    NaN (no test, so no mark) for fewer than two pairs or differences without variance; 1.0 when every
    difference is zero."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) and np.allclose(d, 0.0, atol=1e-12):
        return 1.0
    if len(d) < 2 or np.allclose(d, d[0], atol=1e-12):
        return math.nan
    tests = {"ttest": lambda x: stats.ttest_1samp(x, 0.0).pvalue,
             "wilcoxon": lambda x: stats.wilcoxon(x, zero_method="zsplit").pvalue}
    return float(tests[test](d))


def _effective(pairs: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Matched differences with those that repeat unchanged over every seed of a ``unit`` counted once."""
    varying = pairs.groupby(unit, dropna=False)["diff"].transform(lambda d: not np.allclose(d, d.iloc[0], atol=1e-12))
    return pd.concat([pairs[varying.astype(bool)], pairs[~varying.astype(bool)].drop_duplicates(unit)])


def compare_with_reference(frame: pd.DataFrame, metric: str = "acc_avg", reference: str = REFERENCE_METHOD,
                           test: str = "ttest", scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per complete (row, group): mean paired difference to ``reference``, its p-value and the effective pairs.

    Cells are matched on dataset, model, scenario and seed; a group is tested over its matched
    (scenario, seed) cells, ``avg`` over matched (group, seed) means, so that its difference is the
    difference of the displayed averages. Only groups complete for both the row and the reference count.
    ``scores`` is :func:`seed_scores` of ``frame``, where the caller has it already."""
    keys = row_keys(frame)
    columns = [*keys, "group", "delta", "p_value", "n_pairs"]
    scores = seed_scores(frame, metric) if scores is None else scores
    complete = scores[scores["complete"]][[*keys, "group"]].drop_duplicates()
    values = cell_values(frame, metric).merge(complete, on=[*keys, "group"])
    values = values[values["value"].notna()]
    if values.empty:
        return pd.DataFrame(columns=columns)
    match = ["dataset", "model", "scenario", "seed"]
    ref = values[values["method"] == reference].groupby(match, dropna=False)["value"].mean().rename("reference")
    paired = values.join(ref, on=match, how="inner")
    paired = paired.assign(diff=paired["value"] - paired["reference"])
    avg_scores = scores[(scores["group"] == "avg") & scores["complete"]]
    ref_avg = avg_scores[avg_scores["method"] == reference].groupby(["dataset", "model", "seed"])["value"].mean()
    rows = []
    for key, cells in paired.groupby([*keys, "group"], dropna=False):
        d = _effective(cells, "scenario")["diff"].to_numpy()
        rows.append({**dict(zip([*keys, "group"], key)), "delta": float(cells["diff"].mean()),
                     "p_value": paired_p_value(d, test), "n_pairs": len(d)})
    group_diffs = paired.groupby([*keys, "group", "seed"], dropna=False)["diff"].mean().reset_index()
    complete_avg = avg_scores[[*keys]].drop_duplicates()
    group_diffs = group_diffs.merge(complete_avg, on=keys)
    group_diffs = group_diffs[group_diffs.set_index(["dataset", "model", "seed"]).index.isin(ref_avg.index)]
    for key, cells in group_diffs.groupby(keys, dropna=False):
        d = _effective(cells, "group")["diff"].to_numpy()
        rows.append({**dict(zip(keys, key)), "group": "avg", "delta": float(cells["diff"].mean()),
                     "p_value": paired_p_value(d, test), "n_pairs": len(d)})
    return pd.DataFrame(rows, columns=columns)


def rank_cells(long: pd.DataFrame, metric: str) -> pd.Series:
    """Rank of each complete leaderboard row within its (dataset, model, group) (1 = best; ties share the
    mean rank); incomplete and oracle rows get none."""
    honest = long[~long["oracle"]] if "oracle" in long else long
    if "complete" in honest:
        honest = honest[honest["complete"]]
    ascending = metric_facts(metric).lower_is_better
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
    """The long leaderboard: one row per (row keys, group) with coverage, the seed summary
    (:func:`summarise_seeds`), ``oracle``, the paired comparison with ``reference`` (``delta``, ``p_value``,
    ``n_pairs``, ``significant``: -1 worse, 0 no mark, +1 better; ``reference`` names it), ``rank`` and ``avg_rank``."""
    keys = row_keys(frame)
    scores = seed_scores(frame, metric)
    rows = []
    for key, part in scores.groupby([*keys, "group"], dropna=False, sort=True):
        first = part.iloc[0]
        values = part["value"].to_numpy() if first["complete"] else np.empty(0)
        summary = summarise_seeds(values, metric, bool(first["inputs_vary"]))
        rows.append({**dict(zip([*keys, "group"], key)), "metric": metric, **summary, "n_cells": int(first["n_cells"]),
                     "n_expected": int(first["n_expected"]), "complete": bool(first["complete"])})
    long = pd.DataFrame(rows, columns=[*keys, *LONG_COLUMNS])
    if long.empty:
        return long
    long["oracle"] = oracle_mask(long)
    long["reference"] = reference
    long = long.merge(compare_with_reference(frame, metric, reference, test, scores), on=[*keys, "group"], how="left")
    direction = np.sign(long["delta"].fillna(0.0) * metric_facts(metric).sign).astype(int)
    marked = (long["p_value"] < alpha) & (long["method"] != reference) & long["complete"]
    long["significant"] = np.where(marked, direction, 0)
    long["rank"] = rank_cells(long, metric)
    task_free = [k for k in keys if k not in ("dataset", "model")]
    return long.merge(average_ranks(long, metric)[[*task_free, "avg_rank"]], on=task_free, how="left")


def cell_text(row: pd.Series, scale: float, digits: int = 1) -> str:
    """One leaderboard cell: the value with its interval, seed values or replicate note, and mark;
    the coverage for an incomplete group."""
    if not row["complete"]:
        return f"{int(row['n_cells'])}/{int(row['n_expected'])} cells"
    fmt = lambda x: f"{x * scale:.{digits}f}"  # noqa: E731
    text = fmt(row["mean"])
    if row["n_eff"] >= MIN_SEEDS_FOR_INTERVAL:
        half = row["ci95"]
        clipped = row["low"] > row["mean"] - half + 1e-12 or row["high"] < row["mean"] + half - 1e-12
        text += f" [{fmt(row['low'])}, {fmt(row['high'])}]" if clipped else f" ± {half * scale:.{digits}f}"
    elif row["n_eff"] == 2:
        text += " (" + ", ".join(fmt(float(v)) for v in str(row["seed_values"]).split(";")) + ")"
    elif row["n_seeds"] > 1:
        text += f" (1 eff. of {int(row['n_seeds'])})"
    return text + MARKS[int(row.get("significant", 0) or 0)]


def seed_values_text(values: np.ndarray, metric: str = "acc_avg", digits: int = 1) -> str:
    """Per-seed values of one table cell as the leaderboards show them (:func:`summarise_seeds`, :func:`cell_text`)."""
    summary = summarise_seeds(values, metric)
    return cell_text(pd.Series({**summary, "complete": True}), metric_facts(metric).scale, digits)


def marked_wide(long: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Text leaderboard: one column per group (``avg`` last) with :func:`cell_text`, oracle rows labelled
    ``(oracle)``, the number of ``seeds`` behind each row and its ``avg rank`` across tasks."""
    if long.empty:
        return pd.DataFrame()
    keys = row_keys(long)
    scale = metric_facts(str(long["metric"].iloc[0])).scale
    labelled = long.assign(cell=[cell_text(r, scale, digits) for _, r in long.iterrows()],
                           method=np.where(long["oracle"], long["method"] + " (oracle)", long["method"]))
    table = labelled.pivot_table(index=keys, columns="group", values="cell", aggfunc="first")
    cols = [c for c in table.columns if c != "avg"] + (["avg"] if "avg" in table.columns else [])
    table = table[cols].reset_index()
    table.columns.name = None
    per_row = labelled.groupby(keys, dropna=False).agg(seeds=("n_seeds", "max"), avg_rank=("avg_rank", "first")).reset_index()
    table = table.merge(per_row, on=keys, how="left")
    table["seeds"] = table["seeds"].astype(int)
    table["avg rank"] = [f"{r:.2f}" if np.isfinite(r) else "" for r in table.pop("avg_rank")]
    return table.sort_values(keys).reset_index(drop=True)


def legend(metric: str, reference: str = REFERENCE_METHOD, test: str = "ttest", alpha: float = ALPHA) -> str:
    """One paragraph explaining the cells and marks of :func:`marked_wide`."""
    names = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
    unit = " (%)" if metric_facts(metric).scale == 100 else ""
    return (f"{metric}{unit}, mean over seeds of the mean over a group's scenarios. With 3+ seeds: ± 95% Student-t "
            f"interval ([low, high] where it reaches the metric's range); with 2 seeds: (the two values); "
            f"'1 eff. of n': identical in all n seeds, one effective replicate. 'k/n cells': only k of the "
            f"group's n cells are ok, so no value, no average and no rank. ▲/▼: significantly better/worse "
            f"than {reference} ({names[test]} over matched scenario x seed cells, repeats across seeds counted "
            f"once; avg: over group x seed means; p < {alpha}). (oracle): hyperparameters selected with target "
            "labels, not ranked. seeds: seeds behind the row. avg rank: mean rank over (dataset, model) tasks "
            "on the avg column, complete rows only.")


def to_markdown(table: pd.DataFrame) -> str:
    """A text leaderboard (any wide table) as a markdown table."""
    return table.to_markdown(index=False) if not table.empty else "(no results)"


def latex_table(table: pd.DataFrame) -> str:
    """LaTeX tabular of a text leaderboard, with ± and the marks in math mode."""
    replace = {"±": r"$\pm$", "▲": r"$^{\blacktriangle}$", "▼": r"$^{\blacktriangledown}$"}
    text = table.to_latex(index=False, escape=True)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text




@dataclass(frozen=True)
class Leaderboard:
    """One aggregation of a set of records: what every table format and figure is rendered from."""

    #: the records, one row per cell (:func:`shiftbench.store.records_frame`)
    frame: pd.DataFrame
    #: :func:`full_leaderboard` of ``frame`` (or of the rows a selection protocol chose)
    long: pd.DataFrame
    metric: str
    reference: str
    test: str
    #: records left out and failed cells, listed under the table
    notes: tuple[str, ...] = ()
    #: the text table of ``long`` (:func:`marked_wide`; a selection leaderboard adds its columns)
    wide: Callable[[pd.DataFrame], pd.DataFrame] = marked_wide
    #: paragraphs shown before the legend (e.g. how settings were selected)
    preface: tuple[str, ...] = ()
    title: str = ""

    def heading(self) -> str:
        return self.title or f"Leaderboard ({self.metric})"


def aggregate(frame: pd.DataFrame, metric: str = "acc_avg", reference: str = REFERENCE_METHOD, test: str = "ttest",
              notes: list[str] | tuple[str, ...] = ()) -> Leaderboard:
    """The leaderboard of ``frame`` on ``metric``, every row compared with ``reference`` by ``test``."""
    return Leaderboard(frame, full_leaderboard(frame, metric, reference, test), metric, reference, test, tuple(notes))


def failure_notes(frame: pd.DataFrame) -> list[str]:
    """The table's note on failed cells (none when no cell failed)."""
    n_failed = int((frame["status"] == "failed").sum()) if not frame.empty else 0
    if not n_failed:
        return []
    return [f"{n_failed} of {len(frame)} cells failed (their tracebacks are in the records); rows with a failed cell "
            "show their coverage instead of a value"]


def sampling_error_notes(frame: pd.DataFrame) -> list[str]:
    """The table's note on the chance error of the realised per-chunk accuracy of performance-estimator cells
    (those whose ``details`` give each chunk's size ``n`` and realised accuracy ``a``): the binomial standard
    error sqrt(a(1-a)/n), averaged over a cell's chunks, then over the cells of each (dataset, model, column),
    in percent. An estimate's error below it cannot be told from chance; none without such details."""
    if frame.empty or "details" not in frame:
        return []
    rows = []
    for _, cell in frame[(frame["status"] == "ok") & frame["details"].notna()].iterrows():
        chunks = pd.DataFrame(json.loads(cell["details"]) if isinstance(cell["details"], str) else cell["details"])
        if {"n", "realised"} <= set(chunks.columns):
            a, n = chunks["realised"].to_numpy(float), chunks["n"].to_numpy(float)
            rows.append({"dataset": cell["dataset"], "model": cell["model"], "group": cell["group"],
                         "se": float(np.mean(np.sqrt(a * (1 - a) / n)))})
    if not rows:
        return []
    means = pd.DataFrame(rows).groupby(["dataset", "model", "group"], sort=True)["se"].mean()
    parts = [f"{d}/{m}: " + ", ".join(f"{g} {100 * v:.1f}" for (_, _, g), v in part.items())
             for (d, m), part in means.groupby(level=["dataset", "model"])]
    return ["sampling error of the realised accuracy (%): a chunk's binomial standard error sqrt(a(1-a)/n), mean "
            "over the chunks and cells of a column; differences in mae_acc below it are within chance: "
            + "; ".join(parts)]


def render_markdown(board: Leaderboard, command: str | None = None) -> str:
    """The leaderboard as a markdown page: title, the command that regenerates it, legend, table, notes."""
    lines = [f"# {board.heading()}", ""]
    if command:
        lines += [f"Regenerate: `{command}`", ""]
    for paragraph in board.preface:
        lines += [paragraph, ""]
    lines += [legend(board.metric, board.reference, board.test), "", to_markdown(board.wide(board.long)), ""]
    if board.notes:
        lines += ["Notes:", "", *[f"- {n}" for n in board.notes], ""]
    return "\n".join(lines)


def render_csv(board: Leaderboard) -> str:
    """The long leaderboard as CSV: every (row, group) with its interval, coverage, test and ranks."""
    return board.long.to_csv(index=False)


def render_latex(board: Leaderboard) -> str:
    """The text leaderboard as a LaTeX tabular (:func:`latex_table`)."""
    return latex_table(board.wide(board.long))
