"""Cost of test-time adaptation: per-batch time of every registered method of the ``tta`` family (and, after
the forward pass, of every ``output`` adapter) relative to one forward pass of the source model, and LAME's
Gram-matrix distances vs a direct pairwise-difference-tensor implementation of the same maths.

Methods are found in the method registry (no list here) and built with their default hyperparameters. Each
runs on the task the runner builds for a cell of the ``digits`` dataset (target split ``test``, an i.i.d.
stream of --batch examples, labelled ``train`` and ``id_val`` source splits: EATA estimates its Fisher
there, as in a cell), with two source models: ``small_cnn`` (trained by the harness, cached; 1x28x28
inputs) and ``wrn_tiny`` (a random-init WRN-10-1 on 3x32x32 inputs, CIFAR-shaped). The steps of
``Method.run`` are taken one by one: seeding and ``prepare`` (timed once, cold cache), one batch to warm
up, then ``process`` and the family's check on each of the next --repeats batches (median), the method's
state carried from batch to batch as in a cell. The forward pass is the source network's, in eval mode
without gradients, timed on each batch just before the method's step, so that a ratio compares two
timings under the same load of a shared machine. Peak memory is printed with --device cuda only.

The work of confidence-gated methods depends on the weights: EATA/ETA back-propagate only low-entropy
examples, pseudo_label only confident ones, CoTTA augments only when the teacher is unsure; with the
random-init ``wrn_tiny`` those amounts differ from a trained network's (and BBSE refuses it: it never
predicts some classes on ``id_val``).

Usage: python benchmarks/bench_tta.py [--batch 64] [--repeats 5] [--models small_cnn wrn_tiny] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from shiftbench import datasets, methods, models
from shiftbench.cache import ArrayCache, default_cache_dir, error_line
from shiftbench.dataset import Dataset
from shiftbench.families import Batch, Method, Task
from shiftbench.methods.lame import lame
from shiftbench.scenarios import Scenario
from shiftbench.seeding import int_seed, seed_globals

SEED = 0


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def direct_lame(probs: torch.Tensor, feats: torch.Tensor, k: int = 5, max_iter: int = 100) -> torch.Tensor:
    """kNN LAME with distances from the (N, N, d) difference tensor (memory O(N^2 d)), as written in the paper's code."""
    z = nn.functional.normalize(feats, dim=1)
    dist = torch.norm(z.unsqueeze(0) - z.unsqueeze(1), dim=-1)
    nearest = dist.topk(min(k + 1, len(z)), -1, largest=False).indices[:, 1:]
    w = torch.zeros(len(z), len(z), dtype=z.dtype).scatter_(1, nearest, 1.0)
    unary = -torch.log(probs + 1e-10)
    y, old = torch.softmax(-unary, 1), float("inf")
    for i in range(max_iter):
        pairwise = w @ y
        y = torch.softmax(pairwise - unary, 1)
        energy = float((unary * y - pairwise * y + y * torch.log(y.clip(1e-20))).sum())
        if i > 1 and abs(energy - old) <= 1e-8 * abs(old):
            break
        old = energy
    return y


def digits_task(model_name: str, batch: int, device: str, cache: ArrayCache) -> tuple[Task, Dataset]:
    """The runner's task for a digits cell (target ``test``, i.i.d. batches of ``batch``) with ``model_name``."""
    dataset = datasets.load("digits")
    model = models.build_model(model_name, dataset, int_seed(SEED, "model"), default_cache_dir(), device)
    scenario = Scenario(target="test", batch_size=batch)
    split = scenario.target_split(dataset, cache, SEED)
    target = dataset.label_free(split)
    task = Task(dataset.n_classes, target, scenario.batches(split.y, SEED, target.metadata), SEED, model, cache,
                {k: dataset.splits[k] for k in ("train", "id_val")})
    return task, dataset


class PeakMemory:
    """Peak accelerator memory (MiB) allocated inside the block, or None on the CPU."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.mib: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.mib = torch.cuda.max_memory_allocated() / 2 ** 20


def synchronised(fn: Callable[[], object], device: str) -> Callable[[], object]:
    """``fn`` followed by a wait for the accelerator, so that its time is the work's, not the launch's."""
    if not device.startswith("cuda"):
        return fn
    return lambda: (fn(), torch.cuda.synchronize())


def clocked(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def method_cost(method: Method, task: Task, stream: list[Batch], device: str) -> tuple[float, float, float, float | None]:
    """Seconds of ``prepare``; median seconds of one batch's ``process`` + check and of the source network's
    forward pass on the same batch, timed just before it (so that both see the same load on a shared
    machine); peak MiB of the batches."""
    method.random_state = task.random_state
    seed_globals(task.seed)
    torch.manual_seed(task.random_state)
    prepared = clocked(lambda: method.prepare(task))
    method.checked(method.process(stream[0]), stream[0])
    network = task.model.network.eval()

    @torch.no_grad()
    def forward(b: Batch) -> torch.Tensor:
        return network(b.inputs)

    times, forwards = [], []
    with PeakMemory(device) as peak:
        for b in stream[1:]:
            forwards.append(clocked(synchronised(lambda: forward(b), device)))
            times.append(clocked(synchronised(lambda: method.checked(method.process(b), b), device)))
    return prepared, float(np.median(times)), float(np.median(forwards)), peak.mib


def method_costs(model_name: str, batch: int, repeats: int, device: str) -> None:
    """The table of every registered ``tta`` method's and ``output`` adapter's cost on one model."""
    with tempfile.TemporaryDirectory(prefix="bench-tta-") as tmp:
        task, dataset = digits_task(model_name, batch, device, ArrayCache(tmp))
        n_batches = min(repeats + 1, sum(len(b) == batch for b in task.batches))
        rows, forwards = [], []
        for family in ("tta", "output"):
            for name, cls in methods.registry.scan_all().items():
                if cls.family == family:
                    rows.append(cost_row(name, cls, task, dataset, device, n_batches, forwards))
    shape = "x".join(map(str, task.batch(task.batches[0]).inputs.shape[1:]))
    print(f"\nper-batch cost, batch {batch} of digits {shape}, {model_name} on {device} ({torch.get_num_threads()} "
          f"torch threads; median of {n_batches - 1} batches after one warm-up; default hyperparameters; x forward: "
          "over the forward pass timed on each batch just before)")
    print(f"{'method':22s} {'family':7s} {'prepare s':>9s} {'ms/batch':>9s} {'x forward':>9s} {'peak MiB':>8s}")
    print(f"{'(forward pass)':22s} {'':7s} {'':>9s} {1e3 * np.median(forwards):9.2f} {1.0:9.2f} {'':>8s}")
    print("\n".join(rows))


def cost_row(name: str, cls: type, task: Task, dataset: Dataset, device: str, n_batches: int,
             forwards: list[float]) -> str:
    """One line of the table: the method's cost, or why it did not run; appends its forward time to ``forwards``."""
    method = cls()
    reason = method.not_applicable(task.model, dataset.facts())
    if reason:
        return f"{name:22s} {cls.family:7s} not applicable: {reason}"
    stream = method.stream(task)[:n_batches]
    for b in stream:  # inputs and cached outputs are loaded before the clock starts, as the family hands them over
        b.inputs
        if cls.family == "output":
            b.probs, b.feats
    try:
        prepared, per_batch, forward, peak = method_cost(method, task, stream, device)
    except Exception as exc:  # noqa: BLE001 - one method's failure is its row, not the end of the table
        return f"{name:22s} {cls.family:7s} failed: {error_line(exc)}"
    forwards.append(forward)
    total = per_batch if cls.family == "tta" else forward + per_batch  # an output adapter runs after the forward pass
    memory = "-" if peak is None else f"{peak:.0f}"
    return f"{name:22s} {cls.family:7s} {prepared:9.2f} {1e3 * per_batch:9.2f} {total / forward:9.2f} {memory:>8s}"


def lame_vs_direct(repeats: int) -> None:
    print("\nLAME kNN: Gram-matrix distances (ours) vs (N,N,d) difference tensor (direct), float32, CPU")
    print(f"{'N':>6s} {'d':>5s} {'ours ms':>9s} {'direct ms':>10s} {'speed-up':>9s} {'max |diff|':>11s}")
    rng = np.random.default_rng(0)
    for n, d in ((64, 128), (256, 128), (256, 512), (1024, 512)):
        logits = rng.normal(size=(n, 10)) * 2
        probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
        feats = rng.normal(size=(n, d)).astype(np.float32)
        p_t, f_t = torch.as_tensor(probs), torch.as_tensor(feats)
        reps = max(3, repeats // (1 + n // 256))
        ours = timed(lambda: lame(probs, feats, "knn", 5), reps)
        direct = timed(lambda: direct_lame(p_t, f_t), reps)
        diff = np.abs(lame(probs, feats, "knn", 5) - direct_lame(p_t, f_t).numpy()).max()
        print(f"{n:6d} {d:5d} {1e3 * ours:9.2f} {1e3 * direct:10.2f} {direct / ours:9.1f} {diff:11.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="batches timed per method, after one warm-up")
    parser.add_argument("--models", nargs="+", default=["small_cnn", "wrn_tiny"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for model_name in args.models:
        method_costs(model_name, args.batch, args.repeats, args.device)
    lame_vs_direct(args.repeats)


if __name__ == "__main__":
    main()
