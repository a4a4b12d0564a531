"""ImageNet backbones from torchvision and timm, with a linear head fitted on the source split.

``resnet18``, ``resnet50``, ``densenet121`` (the torchvision architectures WILDS' baselines use)
and ``timm`` (any timm architecture, option ``arch``). The backbone gives pooled penultimate
features; the head is a multinomial logistic regression (scikit-learn, L2, C=1) fitted on the
features of at most ``max_train`` training images (a seeded stratified subset) — a linear probe,
not fine-tuning, so building a model costs one forward pass over that subset.

Pretrained weights come from the local torch-hub / Hugging Face cache, else are downloaded; when
neither works (no network) the backbone keeps a seeded random initialisation and the model's
``pretrained`` field says ``"random-init (weights unavailable offline)"``, which the result
records carry, so such numbers are never mixed with those of real pretrained weights.

Options: ``size`` (input side, default 224), ``max_train`` (default 2000), ``download``
(default true; the environment variable ``SHIFTBENCH_OFFLINE=1`` turns it off), and for
``timm`` the ``arch``.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from shiftbench.cache import atomic_write_bytes, code_version, stable_hash
from shiftbench.errors import ShiftbenchError
from shiftbench.model import ModelSpec, SourceModel, image_preprocess, load_cached_weights, state_fingerprint

RANDOM_INIT = "random-init (weights unavailable offline)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 20


def downloads_allowed(option: Any = True) -> bool:
    """Whether weights may be fetched: the ``download`` option, unless ``SHIFTBENCH_OFFLINE=1``."""
    return str(option).lower() not in ("false", "0", "no") and os.environ.get("SHIFTBENCH_OFFLINE", "") != "1"


def host_reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to the URL's host (port 443) opens within ``timeout`` seconds; checked
    before a download so that an offline run does not sit through a downloader's retries."""
    from urllib.parse import urlparse

    try:
        socket.create_connection((urlparse(url).hostname, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class _short_socket_timeout:
    """Bound every socket operation while trying a download, so an unreachable host fails fast."""

    def __enter__(self) -> None:
        self.saved = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)

    def __exit__(self, *exc: Any) -> None:
        socket.setdefaulttimeout(self.saved)


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` indices of ``y``, sampled without replacement with each class's share kept."""
    if len(y) <= n:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picks = np.concatenate([
        rng.choice(members, size=min(len(members), max(1, round(n * len(members) / len(y)))), replace=False)
        for members in (np.flatnonzero(y == c) for c in np.unique(y))])
    return np.sort(rng.permutation(picks)[:n])


def fit_linear_head(feats: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> nn.Linear:
    """Multinomial logistic regression on the features, as an ``nn.Linear`` over all ``n_classes``
    (classes absent from ``y`` get a very low bias; a binary fit becomes logits ``[0, w.x + b]``,
    whose softmax is the fitted sigmoid)."""
    from sklearn.linear_model import LogisticRegression

    present = np.unique(y)
    head = nn.Linear(feats.shape[1], n_classes)
    weight = np.zeros((n_classes, feats.shape[1]))
    bias = np.full(n_classes, -1e4)
    if len(present) == 1:
        bias[present[0]] = 0.0
    else:
        clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(feats, y)
        if len(present) == 2:
            weight[present[1]], bias[present[1]] = clf.coef_[0], clf.intercept_[0]
            bias[present[0]] = 0.0
        else:
            weight[present], bias[present] = clf.coef_, clf.intercept_
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return head


class _LinearProbe(ModelSpec):
    """A backbone (pretrained when its weights can be had) and a linear head fitted on source features."""

    abstract = True
    defaults: ClassVar[dict[str, Any]] = {"size": 224, "max_train": 2000, "download": True, "batch_size": 64}

    def backbone(self, seed: int, download: bool) -> tuple[nn.Module, str]:
        """The feature extractor and where its weights came from."""
        raise NotImplementedError

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        if getattr(dataset, "input_kind", "image") != "image":
            raise ShiftbenchError(f"model {self.name!r} takes images; dataset {dataset.name!r} has {dataset.input_kind} inputs")
        cfg = {**self.defaults, **self.options}
        torch.manual_seed(seed)
        backbone, provenance = self.backbone(seed, downloads_allowed(cfg["download"]))
        backbone.eval()
        preprocess = image_preprocess(int(cfg["size"]), 3, IMAGENET_MEAN, IMAGENET_STD)
        train = dataset.split("train")
        key = stable_hash({"model": self.name, "cfg": cfg, "weights": state_fingerprint(backbone), "data": train.fingerprint,
                           "seed": seed, "code": code_version(type(self))})
        path = Path(cache_root) / "models" / f"{self.name}-{key}.pt"
        state = load_cached_weights(path)
        if state is not None:
            head = nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
            head.load_state_dict(state)
        else:
            index = stratified_subset(train.y, int(cfg["max_train"]), seed)
            probe = SourceModel(self.name, backbone, nn.Identity(), preprocess, "probe", provenance, device)
            feats = probe.forward_arrays(train.inputs(index), int(cfg["batch_size"]))["feats"]
            head = fit_linear_head(feats, train.y[index], dataset.n_classes, seed)
            buf = io.BytesIO()
            torch.save(head.state_dict(), buf)
            atomic_write_bytes(path, buf.getvalue())
        fingerprint = stable_hash([state_fingerprint(backbone), state_fingerprint(head), cfg["size"]])
        return SourceModel(self.name, backbone, head, preprocess, fingerprint, provenance, device)


class _TorchvisionProbe(_LinearProbe):
    abstract = True
    arch: ClassVar[str]
    #: attribute holding the classification layer, replaced by the identity to expose features
    classifier: ClassVar[str]

    def backbone(self, seed: int, download: bool) -> tuple[nn.Module, str]:
        from torchvision import models

        weights = models.get_model_weights(self.arch).DEFAULT
        net = models.get_model(self.arch, weights=None)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        provenance = RANDOM_INIT
        state = load_cached_weights(cached)  # an unreadable file is set aside and downloaded again
        if state is None and download and host_reachable(weights.url):
            try:
                with _short_socket_timeout():
                    state = torch.hub.load_state_dict_from_url(weights.url, progress=False)
            except Exception:
                state = None  # a failed download leaves the seeded random initialisation
        if state is not None:
            net.load_state_dict(state)
            provenance = f"torchvision:{self.arch}:{weights.name}"
        setattr(net, self.classifier, nn.Identity())
        return net, provenance


class ResNet18(_TorchvisionProbe):
    """torchvision ResNet-18 (ImageNet weights when available) with a linear head on the source split."""

    name, arch, classifier = "resnet18", "resnet18", "fc"


class ResNet50(_TorchvisionProbe):
    """torchvision ResNet-50 (WILDS' iWildCam / Waterbirds / CelebA backbone) with a linear head."""

    name, arch, classifier = "resnet50", "resnet50", "fc"


class DenseNet121(_TorchvisionProbe):
    """torchvision DenseNet-121 (WILDS' Camelyon17 / FMoW backbone) with a linear head."""

    name, arch, classifier = "densenet121", "densenet121", "classifier"


class TimmProbe(_LinearProbe):
    """Any timm architecture (option ``arch``, default resnet18) with a linear head on the source split."""

    name = "timm"
    defaults = {**_LinearProbe.defaults, "arch": "resnet18"}

    def backbone(self, seed: int, download: bool) -> tuple[nn.Module, str]:
        import timm

        arch = {**self.defaults, **self.options}["arch"]
        if download and host_reachable("https://huggingface.co"):
            try:
                with _short_socket_timeout():
                    net = timm.create_model(arch, pretrained=True, num_classes=0)
                return net, f"timm:{arch}:{net.pretrained_cfg.get('tag', 'default')}"
            except Exception:
                torch.manual_seed(seed)  # offline: same random init as without download
        return timm.create_model(arch, pretrained=False, num_classes=0), RANDOM_INIT
