"""Wall time of one cold run with ``jobs=1`` against the same run with more worker processes (``jobs=N``).

Runs the experiment (default: the default run, ``shiftbench run`` with no overrides) cold once per
``--jobs`` value, each against its own empty cache, and prints each wall time, the speed-up over the
first value and the run's count line. The records are the same for every value (tests/test_parallel_jobs.py
checks it field by field); this measures only how long they take.

    .venv/bin/python benchmarks/bench_jobs.py [--jobs 1 2] [hydra overrides ...]

Measured once on the shared 2-core development machine (OMP_NUM_THREADS=1, load average 4-5 from other
sessions, so both figures are contended and jobs=2 could not have two free cores): jobs=1 296.7 s,
jobs=2 354.1 s (0.84x); forward-pass seconds summed over the workers went from 144 to 349, i.e. each
worker ran ~2.4x slower than the lone process. Measure on a quiet machine before quoting a speed-up.
"""

from __future__ import annotations

import argparse
import os

from bench_workers import workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("overrides", nargs="*", default=[])
    args = parser.parse_args()
    print(f"overrides: {' '.join(args.overrides) or '(none: the default run)'}; {os.cpu_count()} cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    first = None
    for jobs in args.jobs:
        seconds, (counts,) = workers(1, [*args.overrides, f"jobs={jobs}"])
        first = first or seconds
        print(f"jobs={jobs}: {seconds:7.1f} s  ({first / seconds:.2f}x jobs={args.jobs[0]})   {counts}", flush=True)


if __name__ == "__main__":
    main()
