"""Nightly regression: run a fixed suite and compare every cell with a committed baseline.

A suite is ``configs/suite/<name>.yaml``: Hydra ``overrides`` of the experiment config, the
``metric`` compared and a ``tolerance``. The baseline ``results/baselines/<suite>.csv`` holds one
row per cell: key columns (dataset, model, method, hparams, scenario, seed, metric), the ``value``,
``n`` (target examples of the cell) and the ``commit`` it was produced at.

The rule (per cell, with baseline value p on n target examples)::

    tolerance = max(abs_tol, z * sqrt(2 * p * (1 - p) / n))     for proportions (accuracies)
    tolerance = abs_tol                                         for other metrics

``sqrt(2 p (1 - p) / n)`` is the standard error of the difference of two accuracies measured on
n examples each, i.e. the change that drawing another target sample of the same size would
cause; with z = 3 an unchanged method fails about 3 cells in 1000 at most. A cell *regresses* when
it is worse than its baseline by more than its tolerance, or when it is missing or failed; a cell
better by more than its tolerance is reported as *improved* (update the baseline deliberately
with ``--update``). Any regression makes ``shiftbench regress`` exit 1.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shiftbench.cache import atomic_write_text
from shiftbench.errors import ShiftbenchError, UnknownNameError
from shiftbench.provenance import git_commit
from shiftbench.metric_facts import metric_facts

KEY_COLUMNS = ["dataset", "model", "method", "hparams", "scenario", "seed", "metric"]
BASELINE_DIR = Path("results") / "baselines"


@dataclass
class Suite:
    """A named, fixed experiment configuration and how its cells are compared."""

    name: str
    overrides: list[str]
    metric: str = "acc_avg"
    description: str = ""
    tolerance: dict[str, float] = field(default_factory=lambda: {"abs_tol": 0.005, "z": 3.0})


def suite_names() -> list[str]:
    """Names of the suites in ``configs/suite/``."""
    folder = resources.files("shiftbench.configs").joinpath("suite")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite(name: str) -> Suite:
    """The suite ``configs/suite/<name>.yaml``; an unknown name lists the valid ones."""
    if name not in suite_names():
        raise UnknownNameError("suite", name, suite_names())
    from omegaconf import OmegaConf

    text = resources.files("shiftbench.configs").joinpath("suite", f"{name}.yaml").read_text()
    return Suite(name=name, **OmegaConf.to_container(OmegaConf.create(text)))


def compose_config(suite: Suite, store_dir: Path, results_dir: Path) -> dict[str, Any]:
    """The experiment config of a suite, composed by Hydra from the package config tree."""
    from shiftbench.hydra_app import compose

    overrides = [*suite.overrides, f"store_dir={store_dir}", f"results_dir={results_dir}", f"metric={suite.metric}"]
    try:
        cfg = compose(overrides)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"suite {suite.name!r}: {exc}") from exc
    return {**cfg, "overrides": suite.overrides}


def cell_sizes(cfg: dict[str, Any]) -> dict[str, int]:
    """Target examples per scenario name (resampling keeps the split's size; a domain sequence
    concatenates one copy per domain)."""
    from shiftbench import datasets
    from shiftbench.runner import expand_cells

    cells = expand_cells(cfg)
    dataset = datasets.load(cfg["dataset"]["name"], **(cfg["dataset"].get("options") or {}))
    return {c.scenario.name: len(dataset.split(c.scenario.target)) * max(1, len(c.scenario.corruptions))
            for c in cells}


def cell_table(frame: pd.DataFrame, metric: str, sizes: dict[str, int], commit: str) -> pd.DataFrame:
    """One row per cell of a records frame: key columns, ``value`` (NaN unless ok), ``n``, ``commit``.

    Cells recorded as not applicable (BN-adapt on a network without BatchNorm) have no value to
    guard and are left out."""
    frame = frame[frame["status"] != "not_applicable"]
    col = f"metric.{metric}"
    values = frame[col].where(frame["status"] == "ok") if col in frame else pd.Series(np.nan, index=frame.index)
    table = frame[KEY_COLUMNS[:-1]].assign(metric=metric, value=values, n=frame["scenario"].map(sizes), commit=commit)
    return table.sort_values(KEY_COLUMNS).reset_index(drop=True)


def run_suite(suite: Suite, store_dir: Path | None = None) -> pd.DataFrame:
    """Run every cell of the suite into ``store_dir`` (a fresh temporary store by default) and return
    its :func:`cell_table`."""
    from shiftbench.collect import collect
    from shiftbench.hydra_app import CellsFailed, run_experiment
    from shiftbench.runner import expand_cells

    with tempfile.TemporaryDirectory(prefix=f"shiftbench-regress-{suite.name}-") as tmp:
        store = Path(store_dir) if store_dir is not None else Path(tmp) / "store"
        cfg = compose_config(suite, store, Path(tmp) / "results")
        try:
            run_experiment(cfg)
        except CellsFailed as exc:  # failed cells are compared (and regress) like any other
            print(f"shiftbench: {exc}", file=sys.stderr)
        frame = collect([store], keys=[c.key for c in expand_cells(cfg)]).frame
        return cell_table(frame, suite.metric, cell_sizes(cfg), git_commit())


def tolerances(baseline: pd.DataFrame, abs_tol: float, z: float) -> np.ndarray:
    """Per-cell tolerance: ``max(abs_tol, z * sqrt(2 p (1 - p) / n))`` for proportions, else ``abs_tol``."""
    p = baseline["value"].clip(0.0, 1.0).to_numpy(dtype=np.float64)
    n = baseline["n"].to_numpy(dtype=np.float64)
    se = np.sqrt(2.0 * p * (1.0 - p) / np.maximum(n, 1.0))
    proportion = baseline["metric"].map(lambda m: metric_facts(m).proportion).to_numpy(dtype=bool)
    return np.where(proportion, np.maximum(abs_tol, z * se), abs_tol)


def compare(baseline: pd.DataFrame, current: pd.DataFrame, abs_tol: float = 0.005, z: float = 3.0) -> pd.DataFrame:
    """Every cell of either table with ``old``, ``new``, ``change`` (signed so that positive is better),
    ``tolerance`` and ``status``: ok, regressed, improved, missing (baseline cell absent or failed now)
    or new (not in the baseline)."""
    keys = KEY_COLUMNS
    base = baseline.assign(seed=baseline["seed"].astype(int), hparams=baseline["hparams"].astype(str))
    cur = current.assign(seed=current["seed"].astype(int), hparams=current["hparams"].astype(str))
    merged = base[[*keys, "value", "n"]].rename(columns={"value": "old"}).merge(
        cur[[*keys, "value"]].rename(columns={"value": "new"}), on=keys, how="outer", indicator=True)
    sign = np.where(merged["metric"].map(lambda m: metric_facts(m).lower_is_better).to_numpy(dtype=bool), -1.0, 1.0)
    merged["change"] = (merged["new"] - merged["old"]) * sign
    merged["tolerance"] = tolerances(merged.assign(value=merged["old"].fillna(0.5), n=merged["n"].fillna(1)), abs_tol, z)
    status = np.select(
        [merged["_merge"] == "right_only", merged["new"].isna(), merged["change"] < -merged["tolerance"],
         merged["change"] > merged["tolerance"]],
        ["new", "missing", "regressed", "improved"], default="ok")
    return merged.drop(columns="_merge").assign(status=status).sort_values(keys).reset_index(drop=True)


def commit_range(old: str, new: str) -> list[str]:
    """One-line log of the commits after ``old`` up to ``new`` (empty when git cannot tell)."""
    strip = [c.split("+")[0] for c in (old, new)]
    try:
        out = subprocess.run(["git", "log", "--oneline", "--no-decorate", f"{strip[0]}..{strip[1]}"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []


def report_markdown(suite: Suite, comparison: pd.DataFrame, old_commit: str, new_commit: str) -> str:
    """The regression report: verdict, commit range, the rule, and every cell that moved."""
    counts = comparison["status"].value_counts().to_dict()
    failed = comparison["status"].isin(["regressed", "missing"])
    tol = suite.tolerance
    lines = [f"# Regression report: suite `{suite.name}`", "",
             f"**{'REGRESSION' if failed.any() else 'OK'}**: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
             "", f"Commit range: `{old_commit}` (baseline) .. `{new_commit}` (this run)", ""]
    log = commit_range(old_commit, new_commit)
    if log:
        lines += ["Commits in the range:", "", *[f"- {entry}" for entry in log[:50]], ""]
    lines += [f"Rule: a cell regresses when it is worse than the baseline by more than max({tol['abs_tol']}, "
              f"{tol['z']} * sqrt(2 p (1 - p) / n)) for accuracies (p baseline value, n target examples), "
              f"{tol['abs_tol']} for other metrics; missing or failed cells regress too.", ""]
    moved = comparison[comparison["status"] != "ok"]
    if not moved.empty:
        show = moved[["status", *KEY_COLUMNS, "old", "new", "change", "tolerance"]]
        lines += ["## Cells that moved", "", show.to_markdown(index=False, floatfmt=".4f"), ""]
    return "\n".join(lines) + "\n"


def regress(suite_name: str, baseline_path: Path | None = None, update: bool = False, report_path: Path | None = None,
            store_dir: Path | None = None) -> int:
    """Run a suite and compare it with its baseline (or rewrite the baseline with ``update``); 1 on a regression."""
    suite = load_suite(suite_name)
    baseline_path = Path(baseline_path or BASELINE_DIR / f"{suite.name}.csv")
    if not update and not baseline_path.exists():
        raise ShiftbenchError(f"no baseline at {baseline_path}; create it deliberately with "
                              f"`shiftbench regress --suite {suite.name} --update` (or pass --baseline FILE)")
    current = run_suite(suite, store_dir)
    if update:
        if current["value"].isna().any():
            bad = current[current["value"].isna()]
            raise ShiftbenchError(f"refusing to write a baseline with {len(bad)} failed cells, e.g. {bad.iloc[0].to_dict()}")
        atomic_write_text(baseline_path, current.to_csv(index=False))
        print(f"wrote baseline {baseline_path} ({len(current)} cells, commit {current['commit'].iloc[0]})")
        return 0
    baseline = pd.read_csv(baseline_path, dtype={"hparams": str})
    missing = [c for c in [*KEY_COLUMNS, "value", "n", "commit"] if c not in baseline.columns]
    if missing:
        raise ShiftbenchError(f"baseline {baseline_path} lacks columns {missing}; expected {KEY_COLUMNS + ['value', 'n', 'commit']}")
    comparison = compare(baseline, current, **suite.tolerance)
    report = report_markdown(suite, comparison, str(baseline["commit"].iloc[0]), git_commit())
    report_path = Path(report_path or Path("results") / "regression" / f"{suite.name}.md")
    atomic_write_text(report_path, report)
    print(report)
    print(f"wrote {report_path}")
    return int(comparison["status"].isin(["regressed", "missing"]).any())
