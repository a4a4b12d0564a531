"""Wall time of one worker against two workers sharing one record store (work claiming).

Runs the same experiment cold twice, each against its own empty cache: once with one
``shiftbench run`` process, once with two identical ``shiftbench run`` processes started together
on one store and cache (they split the cells through claims instead of both computing all of them).
Each process computes in itself (``jobs=1``); ``benchmarks/bench_jobs.py`` times one run's own worker
processes. Prints the wall times, the speed-up and how many cells each worker computed.

    .venv/bin/python benchmarks/bench_workers.py [hydra overrides ...]
    (default: model=[small_cnn] seed=[0,1], the default digits scenarios: 392 cells)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = ["model=[small_cnn]", "seed=[0,1]"]


def workers(n: int, overrides: list[str]) -> tuple[float, list[str]]:
    """Wall seconds of ``n`` identical runs started together on one fresh store and cache; their count lines.
    Each run computes in its own process unless ``overrides`` set ``jobs``."""
    if not any(o.startswith("jobs=") for o in overrides):
        overrides = ["jobs=1", *overrides]
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(Path(sys.executable).with_name("shiftbench")), "run", f"cache_dir={tmp}",
                   f"results_dir={tmp}/results", "progress=false", *overrides]
        env = {**os.environ, "SHIFTBENCH_CACHE_DIR": tmp}
        start = time.perf_counter()
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
                 for _ in range(n)]
        outputs = [p.communicate()[0] for p in procs]
        seconds = time.perf_counter() - start
        if any(p.returncode for p in procs):
            raise SystemExit(f"a worker failed: exit codes {[p.returncode for p in procs]}")
    return seconds, [next(line for line in out.splitlines() if line.startswith("cells:")) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", default=DEFAULT)
    args = parser.parse_args()
    one, one_counts = workers(1, args.overrides)
    two, two_counts = workers(2, args.overrides)
    print(f"overrides: {' '.join(args.overrides)}")
    print(f"1 worker : {one:6.1f} s   {one_counts[0]}")
    for i, line in enumerate(two_counts):
        print(f"2 workers: {two:6.1f} s   worker {i + 1}: {line}")
    computed = [int(re.search(r"(\d+) computed", line).group(1)) for line in [*one_counts, *two_counts]]
    print(f"speed-up with 2 workers: {one / two:.2f}x; cells computed per worker: {computed[1:]} "
          f"(one worker alone: {computed[0]})")


if __name__ == "__main__":
    main()
