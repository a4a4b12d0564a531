"""Pre-generated ImageNet-C and Tiny-ImageNet-C image folders (Hendrycks & Dietterich, 2019).

Layout: ``<root_dir>/<corruption>/<severity>/<wnid>/*.JPEG`` (``root_dir`` defaults to
``data/ImageNet-C`` and ``data/Tiny-ImageNet-C``). Every corruption x severity present is a split
named ``"<corruption>/<severity>"`` with metadata columns ``corruption``, ``severity``, ``wnid``
and ``y``; labels index the sorted class folders (WordNet ids), as torchvision's ImageFolder does.
Examples are ordered by file name (``ILSVRC2012_val_<n>``), not by class folder.
Images are decoded on demand to uint8 (N, H, W, 3). ``corruptions`` / ``severities`` restrict
which folders are scanned (listing all of ImageNet-C's 3.75 million files takes a while).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import pandas as pd

from shiftbench.cache import stable_hash
from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.corruptions import CORRUPTIONS, SEVERITIES
from shiftbench.errors import MissingDataError, ShiftbenchError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def read_images(paths: Sequence[Path]) -> np.ndarray:
    """Decode image files to a uint8 (N, H, W, 3) array (all images must share one size)."""
    from PIL import Image

    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise ShiftbenchError(f"images of different sizes {sorted(sizes)} in one batch; e.g. {paths[0]}")
    return np.stack(images) if images else np.zeros((0, 0, 0, 3), dtype=np.uint8)


class ImageNetC(Dataset):
    """ImageNet-C: the 50,000 ImageNet validation images under each corruption x severity."""

    name = "imagenet-c"
    default_root: ClassVar[str] = "data/ImageNet-C"
    download_command = ("mkdir -p <root_dir> && for part in blur digital extra noise weather; do curl -L "
                        "https://zenodo.org/record/2235448/files/$part.tar -o <root_dir>/$part.tar && "
                        "python -m shiftbench.safe_io <root_dir>/$part.tar <root_dir> && rm <root_dir>/$part.tar; done")
    size: ClassVar[str] = "about 65 GB in five archives"
    visible_metadata = ("corruption", "severity")  # not ``wnid``: the class folder
    target_only = True

    def __init__(self, root_dir: str | None = None, corruptions: Sequence[str] | None = None,
                 severities: Sequence[int] | None = None):
        super().__init__()
        self.root = Path(root_dir or self.default_root).expanduser()
        command = self.download_command.replace("<root_dir>", str(self.root))
        unknown = sorted(set(corruptions or ()) - set(CORRUPTIONS))
        if unknown:
            raise ShiftbenchError(f"unknown corruptions {unknown}; valid corruptions: {', '.join(CORRUPTIONS)}")
        wanted = [c for c in (corruptions or CORRUPTIONS) if (self.root / c).is_dir()]
        if not wanted:
            raise MissingDataError(f"{self.name} corruption folders (<corruption>/<severity>/<wnid>/)", str(self.root),
                                   command, self.size)
        folders = [(c, int(s), self.root / c / str(s)) for c in wanted for s in (severities or SEVERITIES)
                   if (self.root / c / str(s)).is_dir()]
        if not folders:
            raise MissingDataError(f"{self.name} severity folders (<corruption>/<severity>/)", str(self.root / wanted[0]),
                                   command, self.size)
        self.class_names = sorted(p.name for p in folders[0][2].iterdir() if p.is_dir())
        self.n_classes = len(self.class_names)
        self.grouper = Grouper(["y"])
        label = {w: i for i, w in enumerate(self.class_names)}
        for corruption, severity, folder in folders:
            self._add_split(corruption, severity, folder, label)

    @classmethod
    def download(cls, root_dir: str | None = None, yes: bool = False) -> None:
        """Not fetched by shiftbench: say how (``shiftbench data download`` would otherwise report that
        nothing needs downloading). ``root_dir`` is the dataset's folder (``data/ImageNet-C``) or the data
        folder above it (``data``, the command's default)."""
        folder = Path(cls.default_root).name
        root = Path(root_dir or cls.default_root).expanduser()
        root = str(root if root.name == folder else root / folder)
        raise ShiftbenchError(f"fetch {cls.name} by hand ({cls.size}): {cls.download_command.replace('<root_dir>', root)}")

    def disjoint_pools(self) -> list[list[str]]:
        """None: every split holds the same validation images under another corruption."""
        return []

    def _add_split(self, corruption: str, severity: int, folder: Path, label: dict[str, int]) -> None:
        paths, wnids = [], []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if class_dir.name not in label:
                raise ShiftbenchError(f"class folder {class_dir} is not among the {len(label)} class folders of the "
                                      "first split; every <corruption>/<severity>/ must hold the same classes")
            files = sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            paths += files
            wnids += [class_dir.name] * len(files)
        order = sorted(range(len(paths)), key=lambda i: (paths[i].name, wnids[i]))
        paths, wnids = [paths[i] for i in order], [wnids[i] for i in order]
        key = f"{corruption}/{severity}"
        y = np.array([label[w] for w in wnids], dtype=np.int64)
        meta = pd.DataFrame({"corruption": corruption, "severity": severity, "wnid": wnids, "y": y})
        files = np.array(paths, dtype=object)
        fingerprint = stable_hash([self.name, key, [str(p.relative_to(self.root)) for p in paths]])
        self.splits[key] = Split(key, y, meta, load_inputs=lambda index, f=files: read_images(list(np.atleast_1d(f[index]))),
                                 fingerprint=fingerprint)


class TinyImageNetC(ImageNetC):
    """Tiny-ImageNet-C: the 10,000 Tiny-ImageNet validation images (64x64, 200 classes) under each corruption."""

    name = "tiny-imagenet-c"
    default_root = "data/Tiny-ImageNet-C"
    download_command = ("curl -L --create-dirs https://zenodo.org/record/2536630/files/Tiny-ImageNet-C.tar "
                        "-o <root_dir>.tar && python -m shiftbench.safe_io <root_dir>.tar $(dirname <root_dir>) "
                        "&& rm <root_dir>.tar")
    size = "about 2 GB"
