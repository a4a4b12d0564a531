"""Cost of test-time adaptation: per-batch time of each method relative to one forward pass, and
LAME's Gram-matrix distances vs a direct pairwise-difference-tensor implementation of the same maths.

Usage: python benchmarks/bench_tta.py [--batch 64] [--repeats 20]
Runs on CPU (or the GPU with --device cuda); prints a table of figures and ratios.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from shiftbench.methods._batchnorm import use_batch_statistics
from shiftbench.methods.lame import lame
from shiftbench.methods.tent import Tent
from shiftbench.models.small_cnn import make_backbone


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


def method_costs(batch: int, repeats: int, device: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(make_backbone(1, 28), nn.Linear(128, 10)).to(device).eval()
    x = torch.randn(batch, 1, 28, 28, device=device)
    with torch.no_grad():
        feats = net[0](x)
        probs = torch.softmax(net[1](feats), 1)
    f_np, p_np = feats.cpu().numpy(), probs.double().cpu().numpy()
    p_np /= p_np.sum(1, keepdims=True)
    bn = use_batch_statistics(copy.deepcopy(net))
    tent1, tent3 = Tent(copy.deepcopy(net)), Tent(copy.deepcopy(net), steps=3)
    base = timed(lambda: torch.no_grad()(net)(x), repeats)
    costs = {
        "source_only (forward)": base,
        "bn_adapt": timed(lambda: torch.no_grad()(bn)(x), repeats),
        "tent, 1 step": timed(lambda: tent1(x), repeats),
        "tent, 3 steps": timed(lambda: tent3(x), repeats),
        **{f"lame {a} (after forward)": base + timed(lambda a=a: lame(p_np, f_np, a, 5), repeats)
           for a in ("knn", "rbf", "linear")},
    }
    print(f"\nper-batch cost, batch {batch}, small_cnn on {device} (median of {repeats})")
    print(f"{'method':28s} {'ms':>8s} {'x forward':>10s}")
    for name, t in costs.items():
        print(f"{name:28s} {1e3 * t:8.2f} {t / base:10.2f}")


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
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    method_costs(args.batch, args.repeats, args.device)
    lame_vs_direct(args.repeats)


if __name__ == "__main__":
    main()
