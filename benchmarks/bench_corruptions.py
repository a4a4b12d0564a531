"""Throughput of shiftbench's batched corruptions against the reference ``imagecorruptions``
package and the peer ``corrupt-tta`` (both one image per call), per corruption, at 32x32 and 224x224.

    python benchmarks/bench_corruptions.py [--batch 256] [--sizes 32 224] [--severity 3]
        [--ref-images N] [--repeat 3] [--corruptions gaussian_noise fog ...]

Ours corrupts one batch of ``--batch`` images per call (after one warm-up call, which also
compiles the JIT parts); the reference corrupts the same images (or the first ``--ref-images`` of
them), one call each: some corruptions' cost depends on the content (JPEG, spatter), so both sides
see the same pictures, and so does the peer (its float output cast to uint8 as the reference
does; its column is left out when it is not installed). All are reported as images per CPU-second (process time, all threads, best
of ``--repeat`` runs of at least 0.3 s each); the ratios are ours / reference and ours / peer. The overall
figures are the ratio of total times over all corruptions and the geometric mean of the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from shiftbench.corruptions import CORRUPTIONS, corrupt


def natural_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Random crops of scikit-learn's two sample photographs, resized to ``size``."""
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(p).permute(2, 0, 1).float() for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % 2]
        side = int(rng.integers(96, 400))
        top, left = int(rng.integers(0, photo.shape[1] - side)), int(rng.integers(0, photo.shape[2] - side))
        crop = photo[:, top:top + side, left:left + side][None]
        out.append(torch.nn.functional.interpolate(crop, size=(size, size), mode="area")[0])
    return np.ascontiguousarray(torch.stack(out).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())


def throughput(fn, n_images: int, repeat: int = 3, min_seconds: float = 0.3) -> float:
    """Images per CPU-second of ``fn`` (best of ``repeat`` runs). CPU time of the process (all its
    threads) rather than wall time, so that a loaded shared machine does not distort the ratio. A run
    calls ``fn`` often enough to take ``min_seconds``: one call on 32 px images takes milliseconds,
    too short to time reliably."""
    start = time.process_time()
    fn()
    calls = max(1, int(np.ceil(min_seconds / max(time.process_time() - start, 1e-6))))
    best = np.inf
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - start) / calls)
    return n_images / max(best, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--ref-images", type=int, default=None, help="reference on the first N images only (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ours (the reference is single-threaded)")
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS), choices=list(CORRUPTIONS))
    parser.add_argument("--markdown", help="also write the tables to this markdown file (e.g. results/corruption_speed.md)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    from imagecorruptions import corrupt as reference

    peer = peer_corrupt()
    lines = [f"torch threads: {torch.get_num_threads()}; batch {args.batch}; reference and peer on {args.ref_images or args.batch} images; "
             f"severity {args.severity}; best of {args.repeat}"]
    print(lines[0])
    for size in args.sizes:
        images = natural_images(args.batch, size)
        rows, ours_total, ref_total, peer_total = [], 0.0, 0.0, 0.0
        for name in args.corruptions:
            corrupt(images[:8], name, args.severity)  # warm-up (JIT compilation, cached tables)
            ours = throughput(lambda: corrupt(images, name, args.severity), len(images), args.repeat)
            ref_imgs = images[: args.ref_images]
            reference(ref_imgs[0], args.severity, name)
            ref = throughput(lambda: [reference(im, args.severity, name) for im in ref_imgs], len(ref_imgs), args.repeat)
            other = np.nan
            if peer is not None:
                peer(ref_imgs[0], args.severity, name)
                other = throughput(lambda: [peer(im, args.severity, name) for im in ref_imgs], len(ref_imgs), args.repeat)
            rows.append((name, ours, ref, ours / ref, other, ours / other))
            ours_total += 1 / ours
            ref_total += 1 / ref
            peer_total += 1 / other
        ratios = np.array([r[3] for r in rows])
        table = [f"\n{size}x{size}", f"{'corruption':20s} {'ours img/s':>12s} {'ref img/s':>12s} {'ratio':>8s} {'peer img/s':>12s} {'ratio':>8s}"]
        table += [f"{name:20s} {ours:12.1f} {ref:12.1f} {ratio:8.2f} {other:12.1f} {vs_peer:8.2f}" for name, ours, ref, ratio, other, vs_peer in rows]
        table += [f"{'overall (total time)':20s} {1 / ours_total:12.2f} {1 / ref_total:12.2f} {ref_total / ours_total:8.2f} "
                  f"{1 / peer_total:12.2f} {peer_total / ours_total:8.2f}",
                  f"geometric mean ratio {np.exp(np.log(ratios).mean()):.2f}; slowest ratio {ratios.min():.2f} ({rows[int(ratios.argmin())][0]})"]
        print("\n".join(table), flush=True)
        lines += table
    if args.markdown:
        Path(args.markdown).write_text("# Corruption throughput: shiftbench vs imagecorruptions and corrupt-tta (images per CPU-second)\n\n"
                                       f"Generated by `python benchmarks/bench_corruptions.py {' '.join(sys.argv[1:])}` "
                                       "on the 2-core development machine.\n\n```\n" + "\n".join(lines) + "\n```\n")


def peer_corrupt():
    """``corrupt-tta``'s corrupt as (image, severity, name) -> uint8 image, or None when it is not installed."""
    try:
        from corrupt_tta import corrupt as peer
    except ImportError:
        return None
    return lambda image, severity, name: np.uint8(peer(image, severity, name))


if __name__ == "__main__":
    main()
