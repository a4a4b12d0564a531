"""Start-up time of the describing commands against importing torch + scikit-learn + pandas.

In one run, repetitions interleaved (so that the load of a shared machine falls on every figure alike):
the peer ``python -c "import torch, sklearn, pandas"``; ``shiftbench list methods`` with a cold plugin
index (an empty cache dir: the index is built by importing every plugin); the same with the index warm;
and the other commands that read the index or a remembered output (``list``, ``reproduce --list``,
``check-method --list``, ``--help``, ``data info digits``, ``new-method`` into a temporary folder), warm;
``table`` over the record store of the smoke experiment (run once, untimed, unless ``--store`` names one),
warm, and the same table with the plugin registries imported first, which makes it judge each record by
the registries (what ``table`` did before it read the index). Prints the median wall seconds of each and
its ratio to the peer (the goal: ``list methods`` with a warm index well under 0.5).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cli.py [--repeats 5] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shiftbench.plugin_index import fingerprint

SHIFTBENCH = str(Path(sys.executable).with_name("shiftbench"))
PEER = [sys.executable, "-c", "import torch, sklearn, pandas"]
WARM_ONLY = {"list": ["list"], "reproduce --list": ["reproduce", "--list"], "check-method --list": ["check-method", "--list"],
             "--help": ["--help"], "data info digits": ["data", "info", "digits"]}
#: ``shiftbench table`` in a process that imported the plugin registries first (they then judge the records)
WITH_REGISTRIES = [sys.executable, "-c", "import sys, shiftbench.runner; from shiftbench.cli import main; "
                                         "sys.exit(main(sys.argv[1:]))"]


def seconds(command: list[str], cache: str) -> float:
    """Wall seconds of one run of ``command`` with ``cache`` as the shiftbench cache dir (it must succeed)."""
    env = {**os.environ, "SHIFTBENCH_CACHE_DIR": cache, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


class WarmIndex:
    """Times commands against a warm index. Other work may edit the checkout meanwhile, which rightly makes the
    next command rebuild the index: the index is re-warmed (untimed) whenever the plugin files changed, and a
    run during which they changed is discarded and repeated."""

    def __init__(self, cache: str, commands: dict[str, list[str]]):
        self.cache, self.commands, self.fingerprint, self.rewarmed, self.discarded = cache, commands, None, 0, 0

    def warm(self) -> None:
        """Build the index and remember data info (untimed), unless it is current."""
        current = fingerprint([])
        if current != self.fingerprint:
            self.rewarmed += self.fingerprint is not None
            for command in [["list", "methods"], *self.commands.values()]:
                seconds([SHIFTBENCH, *command], self.cache)
            self.fingerprint = current

    def seconds(self, command: list[str]) -> float:
        """Wall seconds of ``command`` on a warm index."""
        while True:
            self.warm()
            elapsed = seconds(command, self.cache)
            if fingerprint([]) == self.fingerprint:
                return elapsed
            self.discarded += 1


def smoke_store(tmp: str) -> str:
    """The record store of the smoke experiment, run once into ``tmp`` (models from the default cache)."""
    store = f"{tmp}/smoke-store"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([SHIFTBENCH, "run", "experiment=smoke", "progress=false", f"store_dir={store}",
                           f"results_dir={tmp}/smoke-results"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"the smoke run failed ({proc.returncode}):\n{proc.stderr}")
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", help="record store for `table` (default: the smoke experiment's, run once)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        table = ["table", "--store", args.store or smoke_store(tmp)]
        commands = {**WARM_ONLY, "table": table,
                    "new-method": ["new-method", "bench_made", "--family", "output", "--methods-dir", f"{tmp}/m",
                                   "--tests-dir", f"{tmp}/t", "--force"]}
        warm = WarmIndex(f"{tmp}/warm", commands)
        seconds(PEER, tmp)  # warm-up: the packages' files into the page cache
        for rep in range(args.repeats):
            times.setdefault("import torch, sklearn, pandas (peer)", []).append(seconds(PEER, tmp))
            times.setdefault("list methods, cold index", []).append(
                seconds([SHIFTBENCH, "list", "methods"], f"{tmp}/cold{rep}"))
            times.setdefault("list methods, warm index", []).append(warm.seconds([SHIFTBENCH, "list", "methods"]))
            for label, command in commands.items():
                times.setdefault(f"{label}, warm", []).append(warm.seconds([SHIFTBENCH, *command]))
            times.setdefault("table, registries imported", []).append(warm.seconds([*WITH_REGISTRIES, *table]))
    medians = {label: statistics.median(values) for label, values in times.items()}
    peer = medians["import torch, sklearn, pandas (peer)"]
    print(f"median wall seconds over {args.repeats} interleaved repetitions (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus); the checkout changed {warm.rewarmed} times between warm runs (index re-warmed, "
          f"untimed) and {warm.discarded} times during one (run discarded and repeated)")
    print(f"{'command':<40} {'seconds':>8} {'/ peer':>8}")
    for label, value in medians.items():
        print(f"{label:<40} {value:8.3f} {value / peer:8.3f}")


if __name__ == "__main__":
    main()
