"""Synthetic result records with known effects, for leaderboard, plot and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.store import RecordStore

#: method -> true accuracy shift relative to source_only
EFFECTS = {"source_only": 0.0, "better": 0.06, "worse": -0.06, "same": 0.0}
SCENARIOS = [("test:bs64", "test", None, None)] + [
    (f"id_test-c/{c}/{s}:bs64", "id_test-c", c, s) for c in ("gaussian_noise", "contrast") for s in (1, 3, 5)]


def synthetic_records(datasets=("digits", "other"), seeds=(0, 1, 2), noise: float = 0.01, oracle: bool = False) -> list[dict]:
    """Records as the runner writes them: accuracy = 0.8 - 0.05 * severity + effect + noise."""
    rng = np.random.default_rng(0)
    records = []
    for dataset in datasets:
        for method, effect in EFFECTS.items():
            for name, group, corruption, severity in SCENARIOS:
                for seed in seeds:
                    acc = 0.8 - 0.05 * (severity or 0) + effect + rng.normal(0, noise)
                    scenario = {"target": name.split("-c")[0].split(":")[0], "corruption": corruption,
                                "severity": severity, "batch_size": 64}
                    cell = {"dataset": dataset, "dataset_options": {}, "scenario": scenario, "model": "m",
                            "method": method, "hparams": {}, "seed": seed}
                    key = f"{dataset}-{method}-{name}-{seed}".replace("/", "_").replace(":", "_")
                    records.append({"key": key, "status": "ok", "cell": cell, "metrics": {"acc_avg": acc},
                                    "scenario_name": name, "scenario_group": group, "family": "output",
                                    "provenance": {"git_commit": "abc", "packages": {}}})
    return records


def synthetic_frame(**kwargs) -> pd.DataFrame:
    from shiftbench.store import records_frame

    return records_frame(synthetic_records(**kwargs))


#: registered plugins standing in for the synthetic names, so that stored records are of the current code
REAL_NAMES = {"method": {"better": "lame", "worse": "tent", "same": "bn_adapt"}, "model": {"m": "small_cnn"},
              "dataset": {"other": "nycflights"}}


def current_record(record: dict) -> dict:
    """``record`` renamed onto registered plugins and keyed as the runner would key it today."""
    from shiftbench.runner import Cell

    cell = {**record["cell"], **{f: REAL_NAMES[f].get(record["cell"][f], record["cell"][f]) for f in REAL_NAMES}}
    current = Cell.from_dict(cell)
    return {**record, "cell": cell, "key": current.key, "identity": current.identity()}


def write_store(root: Path, records: list[dict]) -> Path:
    """A record store holding ``records`` as current records (see :func:`current_record`)."""
    store = RecordStore(root)
    for r in records:
        store.write(current_record(r))
    return root


def estimator_records() -> list[dict]:
    """Performance-estimator records with mean estimated and realised accuracy."""
    out = []
    for i, (est, real) in enumerate([(0.9, 0.88), (0.7, 0.6), (0.5, 0.55)]):
        cell = {"dataset": "digits", "dataset_options": {}, "scenario": {"target": "test"}, "model": "m",
                "method": "atc", "hparams": {}, "seed": i}
        out.append({"key": f"est{i}", "status": "ok", "cell": cell, "scenario_name": "test:bs64", "scenario_group": "test",
                    "family": "estimator", "metrics": {"mae_acc": abs(est - real), "est_acc": est, "real_acc": real},
                    "provenance": {}})
    return out
