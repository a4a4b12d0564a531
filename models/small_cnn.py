"""A small CNN with BatchNorm, trained by the harness on the source split (seeded, cached).

Training uses light augmentation by default (random affine +-10 degrees, +-10% shift and scale,
random Gaussian blur): without it the network predicts one class on scikit-learn's blurrier
digits (10% accuracy), with it about 37%, a more informative source-only baseline.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from shiftbench.cache import atomic_write_bytes, code_version, stable_hash
from shiftbench.model import ModelSpec, SourceModel, image_preprocess, load_cached_weights, state_fingerprint
from shiftbench.threads import torch_threads


def make_backbone(channels: int, size: int, width: int = 32, feature_dim: int = 128) -> nn.Module:
    """Two conv-BN-ReLU-pool blocks and a linear-BN-ReLU layer: inputs -> ``feature_dim`` features."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (size // 4) ** 2, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(),
    )


def training_augmentation() -> nn.Module:
    """Random affine and blur applied to each training batch (on normalised tensors)."""
    import torchvision.transforms.v2 as T

    return T.Compose([T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                      T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.5)])


class SmallCNN(ModelSpec):
    """Small CNN with BatchNorm trained on the source ``train`` split (Adam, seeded; cached by data, config, seed)."""

    name = "small_cnn"
    defaults = {"epochs": 6, "batch_size": 128, "lr": 1e-3, "width": 32, "size": 28, "augment": True}

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        cfg = {**self.defaults, **self.options}
        train = dataset.split("train")
        images = np.asarray(train.inputs())
        channels = 1 if images.ndim == 3 else images.shape[-1]
        pixels = images.astype(np.float32) / 255.0
        mean = tuple(float(v) for v in np.atleast_1d(pixels.mean(axis=tuple(range(pixels.ndim - (images.ndim == 4))))))
        std = tuple(float(v) for v in np.atleast_1d(pixels.std(axis=tuple(range(pixels.ndim - (images.ndim == 4))))))
        preprocess = image_preprocess(cfg["size"], channels, mean, std)
        torch.manual_seed(seed)  # the initial weights too: the same seed gives the same model on any machine
        backbone = make_backbone(channels, cfg["size"], cfg["width"])
        head = nn.Linear(128, dataset.n_classes)
        key = stable_hash({"cfg": cfg, "data": train.fingerprint, "seed": seed, "code": code_version(SmallCNN),
                           "torch": torch.__version__.split("+")[0]})
        path = Path(cache_root) / "models" / f"small_cnn-{key}.pt"
        net = nn.Sequential(backbone, head)
        state = load_cached_weights(path, net)
        if state is not None:
            net.load_state_dict(state)
        else:
            self._train(net, preprocess, images, train.y, cfg, seed, device)
            buf = io.BytesIO()
            torch.save(net.state_dict(), buf)
            atomic_write_bytes(path, buf.getvalue())
        return SourceModel(self.name, backbone, head, preprocess, state_fingerprint(net), "trained-by-harness", device)

    @staticmethod
    def _train(net: nn.Module, preprocess, images: np.ndarray, y: np.ndarray, cfg: dict, seed: int, device: str) -> None:
        """Adam on augmented batches, on one CPU thread: multi-threaded float reductions differ in their
        rounding with the thread count, and a seed must give the same weights on any machine (the
        regression baselines compare cells across machines). Costs ~1.5x the 2-thread time."""
        with torch_threads(1):
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            net.to(device).train()
            opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
            x_all = preprocess(images)
            y_all = torch.as_tensor(y)
            augment = training_augmentation() if cfg["augment"] else None
            n, bs = len(y), cfg["batch_size"]
            steps = cfg["epochs"] * ((n + bs - 1) // bs)
            with tqdm(total=steps, desc=f"training small_cnn (seed {seed})", leave=False, disable=None) as bar:
                for _ in range(cfg["epochs"]):
                    order = torch.as_tensor(rng.permutation(n))
                    for start in range(0, n, bs):
                        idx = order[start:start + bs]
                        if len(idx) < 2:
                            continue
                        xb = augment(x_all[idx]) if augment else x_all[idx]
                        loss = nn.functional.cross_entropy(net(xb.to(device)), y_all[idx].to(device))
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        bar.update(1)
            net.cpu().eval()
