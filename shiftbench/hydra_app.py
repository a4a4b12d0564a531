"""The Hydra application behind ``shiftbench run``: compose the config, run the cells, write tables.

``-m`` sweeps run one job per override combination through the configured launcher (joblib
locally; submitit/Ray on clusters); every job writes its own records into the shared store and
:class:`CollectTables` rebuilds the tables from all of them when the sweep ends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from shiftbench.report import write_tables
from shiftbench.runner import Runner, RunSettings, expand_cells
from shiftbench.store import RecordStore, records_frame
from shiftbench.sweep_estimate import describe_estimate

CONFIG_PACKAGE = "pkg://shiftbench.configs"


def settings_from(cfg: dict[str, Any]) -> RunSettings:
    return RunSettings(store_dir=Path(cfg["store_dir"]), cache_dir=Path(cfg["cache_dir"]), device=str(cfg["device"]),
                       progress=bool(cfg["progress"]))


def run_experiment(cfg: dict[str, Any]) -> dict[str, int] | None:
    """Run (or, with ``dry_run``, describe) the cells of a resolved config; print and write tables."""
    cells = expand_cells(cfg)
    runner = Runner(settings_from(cfg))
    if cfg.get("dry_run"):
        pending = runner.pending(cells)
        print(f"{len(cells)} cells, {len(cells) - len(pending)} cached, {len(pending)} to compute")
        print(describe_estimate(runner.store, pending))
        for cell in pending:
            print(f"  {cell.key}  {cell.dataset} {cell.scenario.name} {cell.model} {cell.method} {cell.hparams} seed={cell.seed}")
        return None
    counts = runner.run(cells)
    print(f"cells: {counts['cached']} cached, {counts['ok']} computed, {counts['not_applicable']} not applicable, "
          f"{counts['failed']} failed; forward-pass cache: {runner.cache.hits} hits, {runner.cache.misses} misses "
          f"({counts['forward_seconds']:.1f} s in forward passes, {counts['model_seconds']:.1f} s building models)")
    frame = records_frame(runner.store.records(c.key for c in cells))
    publish(frame, cfg)
    return counts


def publish(frame, cfg: dict[str, Any]) -> None:
    """Print the leaderboard and write it with the records under ``results_dir``."""
    failed = frame[frame["status"] == "failed"] if not frame.empty else frame
    for _, row in failed.iterrows():
        print(f"FAILED {row['method']} {row['hparams']} on {row['scenario']} ({row['model']}, seed {row['seed']}): "
              f"see record {row['key']} in {cfg['store_dir']}", file=sys.stderr)
    paths = write_tables(frame, cfg["results_dir"], cfg["metric"])
    print("\n" + paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")


def task(cfg: DictConfig) -> None:
    """Hydra task function: one job."""
    run_experiment(OmegaConf.to_container(cfg, resolve=True))


class CollectTables(Callback):
    """After a multirun, rebuild the tables from every record in the shared store."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        cfg = OmegaConf.to_container(config, resolve=True)
        cfg.pop("hydra", None)
        frame = records_frame(RecordStore(cfg["store_dir"]).records())
        publish(frame, cfg)
