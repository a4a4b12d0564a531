"""Minimal :class:`~shiftbench.families.Task` objects for calling a plugin's ``prepare``/``process`` in unit
tests, without a dataset or a trained model: a task around a bare network, or around given outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from shiftbench.dataset import Split, UnlabelledSplit
from shiftbench.families import Outputs, Task
from shiftbench.model import SourceModel


def network_task(network: nn.Module) -> Task:
    """A task whose source network is ``network`` (``task.network()`` returns a fresh copy of it); it has no
    target split, stream or cache, so only a test-time method's ``prepare(task)`` may be called with it."""
    model = SourceModel("bare_network", network, nn.Identity(), preprocess=lambda x: x, fingerprint="bare_network")
    return Task(n_classes=0, target=None, batches=[], seed=0, model=model, cache=None)


class GivenOutputs:
    """A stand-in source model whose outputs on each split (by name) are given arrays."""

    def __init__(self, outputs: dict[str, Outputs]):
        self.by_split = outputs

    def outputs(self, split: Split | UnlabelledSplit, cache: None) -> dict[str, np.ndarray]:
        given = self.by_split[split.name]
        return {"feats": given.feats, "logits": given.logits}


def outputs_task(source: Outputs, target: Outputs, batches: list[np.ndarray], source_split: str = "id_val") -> Task:
    """A task whose source model gives ``source`` (labelled: ``source.y``) on the labelled split ``source_split``
    and ``target`` on the target split, streamed in ``batches``; the task has no inputs and seed 0."""
    labelled = Split(source_split, source.y, pd.DataFrame(index=range(len(source))), x=np.zeros((len(source), 1)))
    unlabelled = UnlabelledSplit("target", len(target), lambda index: None, pd.DataFrame(index=range(len(target))))
    model = GivenOutputs({source_split: source, "target": target})
    return Task(source.logits.shape[1], unlabelled, batches, 0, model, None, {source_split: labelled})
