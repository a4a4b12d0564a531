"""Pretrained digit CNNs shipped in the ``ccexam`` wheel (MIT), loaded offline as model-zoo entries.

``ccexam_mnist`` (28x28, no BatchNorm), ``ccexam_usps`` (16x16, BatchNorm) and ``ccexam_svhn``
(32x32 RGB, BatchNorm). Inputs are resized / channel-converted to what each network expects and
normalised with the statistics it was trained with.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from torch import nn

from shiftbench.cache import error_line
from shiftbench.errors import ShiftbenchError
from shiftbench.model import ModelSpec, SourceModel, image_preprocess, read_state, state_fingerprint


class _CCExamModel(ModelSpec):
    abstract = True
    key: str
    network_class: str
    channels: int

    def build(self, dataset: Any, seed: int, cache_root: Path, device: str = "cpu") -> SourceModel:
        from ccexam import models
        from ccexam.constants import DATASET_STATS

        stats = DATASET_STATS[self.key]
        size = stats["image_size"]
        net = getattr(models, self.network_class)(input_size=size)
        weights = resources.files("ccexam").joinpath("weights", f"{self.key}.pth")
        with resources.as_file(weights) as path:
            try:
                state = read_state(path, net)
            except Exception as exc:  # noqa: BLE001 - any failure means the installed file is damaged
                raise ShiftbenchError(f"the pretrained weights {path} shipped in the ccexam package cannot be read "
                                      f"({error_line(exc)}); reinstall the package: "
                                      "pip install --force-reinstall --no-deps ccexam") from exc
        net.load_state_dict(state)
        classifier = list(net.classifier.children())
        backbone = nn.Sequential(net.features, nn.Flatten(), *classifier[:-1])
        head = classifier[-1]
        preprocess = image_preprocess(size, self.channels, stats["mean"], stats["std"])
        return SourceModel(self.name, backbone, head, preprocess, state_fingerprint(net), f"ccexam:{self.key}", device)


class CCExamMNIST(_CCExamModel):
    """ccexam's MNIST CNN (28x28 grey, no BatchNorm), pretrained."""

    name, key, network_class, channels = "ccexam_mnist", "mnist", "MNISTNet", 1


class CCExamUSPS(_CCExamModel):
    """ccexam's USPS CNN (16x16 grey, BatchNorm), pretrained: MNIST inputs are a USPS->MNIST shift."""

    name, key, network_class, channels = "ccexam_usps", "usps", "USPSNet", 1


class CCExamSVHN(_CCExamModel):
    """ccexam's SVHN CNN (32x32 RGB, BatchNorm), pretrained: grey digits are an SVHN->MNIST shift."""

    name, key, network_class, channels = "ccexam_svhn", "svhn", "SVHNNet", 3
