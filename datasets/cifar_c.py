"""Pre-generated CIFAR-10-C and CIFAR-100-C (Hendrycks & Dietterich, 2019).

Layout under ``root_dir`` (default ``data``): ``<root_dir>/CIFAR-10-C/<corruption>.npy``, each
holding the 10,000 test images at severities 1..5 stacked (50,000 x 32 x 32 x 3 uint8), and
``labels.npy`` (50,000 labels, the test labels repeated per severity). Every corruption x severity
present is a split named ``"<corruption>/<severity>"`` (e.g. ``"gaussian_noise/3"``) with metadata
columns ``corruption``, ``severity`` and ``y``. Images are memory-mapped and read on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from shiftbench.cache import stable_hash
from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.corruptions import CORRUPTIONS, SEVERITIES
from shiftbench.errors import MissingDataError, ShiftbenchError


class CifarC(Dataset):
    """CIFAR-10-C: every corruption x severity of the CIFAR-10 test set as a split."""

    name = "cifar10-c"
    folder: ClassVar[str] = "CIFAR-10-C"
    n_classes_total: ClassVar[int] = 10
    download_command = ("mkdir -p <root_dir> && curl -L https://zenodo.org/record/2535967/files/CIFAR-10-C.tar "
                        "-o <root_dir>/CIFAR-10-C.tar && python -m shiftbench.safe_io <root_dir>/CIFAR-10-C.tar "
                        "<root_dir> && rm <root_dir>/CIFAR-10-C.tar")
    size: ClassVar[str] = "about 2.9 GB"
    visible_metadata = ("corruption", "severity")
    target_only = True

    def __init__(self, root_dir: str = "data"):
        super().__init__()
        self.root = Path(root_dir).expanduser() / self.folder
        labels_path = self.root / "labels.npy"
        if not labels_path.exists():
            raise MissingDataError(f"{self.folder} labels", str(labels_path),
                                   self.download_command.replace("<root_dir>", str(Path(root_dir).expanduser())), self.size)
        labels = np.load(labels_path).astype(np.int64)
        if len(labels) % len(SEVERITIES):
            raise ShiftbenchError(f"{labels_path} holds {len(labels)} labels; expected 5 severities x N images")
        per_severity = len(labels) // len(SEVERITIES)
        files = [self.root / f"{c}.npy" for c in CORRUPTIONS if (self.root / f"{c}.npy").exists()]
        if not files:
            raise MissingDataError(f"{self.folder} corruption files (<corruption>.npy)", str(self.root),
                                   self.download_command.replace("<root_dir>", str(Path(root_dir).expanduser())), self.size)
        self.n_classes = self.n_classes_total
        self.class_names = [str(i) for i in range(self.n_classes)]
        self.grouper = Grouper(["y"])
        for path in files:
            images = np.load(path, mmap_mode="r")
            if images.shape[0] != len(labels) or images.dtype != np.uint8:
                raise ShiftbenchError(f"{path} holds {images.shape} {images.dtype}; expected ({len(labels)}, H, W, 3) uint8 "
                                      f"matching {labels_path}")
            for severity in SEVERITIES:
                rows = slice((severity - 1) * per_severity, severity * per_severity)
                self._add_split(path.stem, severity, images[rows], labels[rows], path)

    @classmethod
    def download(cls, root_dir: str = "data", yes: bool = False) -> None:
        """Not fetched by shiftbench: say how (``shiftbench data download`` would otherwise report that
        nothing needs downloading)."""
        raise ShiftbenchError(f"fetch {cls.folder} by hand ({cls.size}): "
                              f"{cls.download_command.replace('<root_dir>', str(Path(root_dir).expanduser()))}")

    def disjoint_pools(self) -> list[list[str]]:
        """None: every split holds the same test images under another corruption."""
        return []

    def _add_split(self, corruption: str, severity: int, images: np.ndarray, y: np.ndarray, path: Path) -> None:
        key = f"{corruption}/{severity}"
        meta = pd.DataFrame({"corruption": corruption, "severity": severity, "y": y})
        stat = path.stat()
        fingerprint = stable_hash([self.name, key, stat.st_size, int(stat.st_mtime), y.tolist()[:100]])
        self.splits[key] = Split(key, y, meta, load_inputs=lambda index, a=images: np.asarray(a[index]), fingerprint=fingerprint)


class Cifar100C(CifarC):
    """CIFAR-100-C: every corruption x severity of the CIFAR-100 test set as a split."""

    name = "cifar100-c"
    folder = "CIFAR-100-C"
    n_classes_total = 100
    download_command = ("mkdir -p <root_dir> && curl -L https://zenodo.org/record/3555552/files/CIFAR-100-C.tar "
                        "-o <root_dir>/CIFAR-100-C.tar && python -m shiftbench.safe_io <root_dir>/CIFAR-100-C.tar "
                        "<root_dir> && rm <root_dir>/CIFAR-100-C.tar")
