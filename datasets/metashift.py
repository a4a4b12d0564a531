"""MetaShift (Liang & Zou, ICLR 2022) built from its official meta-data and the Visual Genome images.

Data layout under ``root_dir`` (default ``data/metashift``):

- ``full-candidate-subsets.pkl`` — MetaShift's meta-data (``dataset/meta_data/`` of the MetaShift
  repository): a dict ``"class(context)" -> set of Visual Genome image ids``;
- ``allImages/images/<id>.jpg`` — the Visual Genome / GQA images.

Datasets (images are uint8 (N, S, S, 3), RGB, resized to ``image_size``, read lazily; metadata
has ``image_id``, ``y``, ``class`` and ``context``; rows are in image-id order, never by class;
methods see only the columns each dataset declares in ``visible_metadata``: ``class`` is the label,
and ``context`` is visible only where it does not reveal the class):

- ``metashift/catdog-d0.44`` / ``-d0.71`` / ``-d1.12`` / ``-d1.43`` — the paper's Cat-vs-Dog domain
  generalisation experiments: train on cat(sofa + bed) and one pair of dog communities, test on
  dog(shelf). Communities are the unions of context subsets the MetaShift release lists; images
  with both a cat and a dog (the ``cat(dog)`` subset) are dropped and training excludes every test
  image. ``distance`` holds the subset distance recomputed from the meta-data, ``paper_distance``
  the published one.
- ``metashift/catdog-indoor-outdoor`` — the subpopulation-shift version: cat vs dog where indoor
  cats and outdoor dogs dominate training (``num_minority`` images of each minority group), and a
  balanced ``test`` split; groups are class x context, ``acc_wg`` is the worst-group accuracy.
- ``metashift/contexts`` — any classes, their contexts as domains: images of ``test_context``
  form ``test``, the others train / id_val / id_test; every example carries its context and the
  subset distance from that context to the test context.

Subset distance (as the MetaShift code computes it): subsets are nodes of a graph whose edge
weights are the overlap coefficient |A & B| / min(|A|, |B|), edges below 0.2 dropped; nodes are
embedded by the spectral layout (the eigenvectors of the 2nd..6th smallest eigenvalues of the
graph Laplacian, centred and scaled to a unit maximum coordinate); the distance between subsets is
the Euclidean distance of their embeddings (for a pair of communities, the mean of both).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from shiftbench.cache import stable_hash
from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.datasets._options import as_flag
from shiftbench.errors import MissingDataError, ShiftbenchError
from shiftbench.safe_io import restricted_load

SUBSETS_FILE = "full-candidate-subsets.pkl"
IMAGE_FOLDER = Path("allImages") / "images"
DOWNLOAD_COMMAND = ("download full-candidate-subsets.pkl from github.com/Weixin-Liang/MetaShift (dataset/meta_data/) "
                    "and the GQA images (https://downloads.cs.stanford.edu/nlp/data/gqa/images.zip), unzipped "
                    "into <root_dir>/allImages/images/")
IMAGES_SIZE = "about 20 GB"
EDGE_THRESHOLD = 0.2
EMBEDDING_DIM = 5
MIN_SUBSET_SIZE = 25
_NODE = re.compile(r"^(?P<subject>[^()]+)\((?P<context>.+)\)$")

#: The communities of the MetaShift release (union of context subsets), by task.
CAT_TRAIN = {
    "cat(sofa)": {"cat(cup)", "cat(sofa)", "cat(chair)"},
    "cat(bed)": {"cat(bed)", "cat(comforter)", "cat(sheet)", "cat(blanket)", "cat(remote control)", "cat(pillow)",
                 "cat(couch)"},
}
DOG_TRAIN = {
    "dog(cabinet)": {"dog(floor)", "dog(clothes)", "dog(towel)", "dog(door)", "dog(rug)", "dog(cabinet)"},
    "dog(bed)": {"dog(blanket)", "dog(bed)", "dog(sheet)", "dog(remote control)", "dog(pillow)", "dog(lamp)",
                 "dog(couch)", "dog(books)", "dog(curtain)"},
    "dog(bag)": {"dog(bag)", "dog(backpack)", "dog(purse)"},
    "dog(box)": {"dog(box)", "dog(container)", "dog(food)", "dog(table)", "dog(plate)", "dog(cup)"},
    "dog(bench)": {"dog(bench)", "dog(trash can)"},
    "dog(bike)": {"dog(basket)", "dog(woman)", "dog(bike)", "dog(bicycle)"},
    "dog(boat)": {"dog(frisbee)", "dog(rope)", "dog(flag)", "dog(trees)", "dog(boat)"},
    "dog(surfboard)": {"dog(water)", "dog(surfboard)", "dog(sand)"},
}
CAT_TEST = {"cat(shelf)": {"cat(container)", "cat(shelf)", "cat(vase)", "cat(bowl)"}}
DOG_TEST = {"dog(shelf)": {"dog(desk)", "dog(screen)", "dog(laptop)", "dog(shelf)", "dog(picture)", "dog(chair)"}}
DOG_ADDITIONAL_TEST = {
    "dog(sofa)": {"dog(sofa)", "dog(television)", "dog(carpet)", "dog(phone)", "dog(book)"},
    "dog(grass)": {"dog(house)", "dog(grass)", "dog(horse)", "dog(cow)", "dog(sheep)", "dog(animal)"},
    "dog(vehicle)": {"dog(car)", "dog(motorcycle)", "dog(truck)", "dog(bike)", "dog(basket)", "dog(bicycle)",
                     "dog(skateboard)"},
    "dog(cap)": {"dog(cap)", "dog(scarf)", "dog(jacket)", "dog(toy)", "dog(collar)", "dog(tie)"},
}
CAT_INDOOR = {f"cat({c})" for c in (
    "speaker", "computer", "screen", "laptop", "computer mouse", "keyboard", "monitor", "desk", "sheet", "bed",
    "blanket", "remote control", "comforter", "pillow", "couch", "books", "book", "television", "bookshelf", "blinds",
    "sink", "bottle", "faucet", "towel", "counter", "curtain", "toilet", "pot", "carpet", "toy", "floor", "plate", "rug",
    "food", "table", "box", "paper", "suitcase", "bag", "container", "vase", "shelf", "bowl", "picture", "papers",
    "lamp", "cup", "sofa")}
CAT_OUTDOOR = {f"cat({c})" for c in ("car", "fence", "grass", "roof", "bench", "bird", "house")}
DOG_INDOOR = {f"dog({c})" for c in (
    "screen", "shelf", "desk", "picture", "laptop", "remote control", "blanket", "bed", "sheet", "lamp", "books",
    "pillow", "curtain", "container", "table", "cup", "plate", "food", "box", "rug", "floor", "cabinet", "towel", "bowl",
    "television", "carpet", "sofa")}
DOG_OUTDOOR = {f"dog({c})" for c in (
    "house", "grass", "horse", "fence", "cow", "sheep", "dirt", "car", "motorcycle", "truck", "helmet", "snow", "flag",
    "boat", "rope", "trees", "frisbee", "bike", "bicycle", "sand", "surfboard", "water", "fire hydrant", "pole",
    "skateboard", "bench", "trash can")}


# ---- meta-data ------------------------------------------------------------------------------------

def load_subsets(path: Path) -> dict[str, set[str]]:
    """The ``"class(context)" -> image ids`` dict, validated: a malformed entry names the file and key."""
    if not path.exists():
        raise MissingDataError("MetaShift meta-data", str(path), DOWNLOAD_COMMAND, "18 MB")
    try:
        subsets = restricted_load(path)  # plain data only: a pickle naming any class or function is refused
    except ShiftbenchError:
        raise
    except Exception as exc:
        raise ShiftbenchError(f"malformed MetaShift meta-data {path}: cannot unpickle ({exc})") from exc
    if not isinstance(subsets, dict):
        raise ShiftbenchError(f"malformed MetaShift meta-data {path}: expected a dict 'class(context)' -> set of image "
                              f"ids, got {type(subsets).__name__}")
    for row, (key, ids) in enumerate(subsets.items()):
        if not isinstance(key, str) or not _NODE.match(key):
            raise ShiftbenchError(f"malformed MetaShift meta-data {path}: entry {row} has key {key!r}, expected "
                                  f"'class(context)'")
        if not isinstance(ids, (set, frozenset, list, tuple)) or not all(isinstance(i, str) for i in ids):
            raise ShiftbenchError(f"malformed MetaShift meta-data {path}: entry {row} ({key!r}) must be a set of image "
                                  f"id strings")
    return {k: set(v) for k, v in subsets.items()}


def community_images(subsets: dict[str, set[str]], scheme: dict[str, set[str]], exclude: set[str],
                     path: Path) -> dict[str, set[str]]:
    """Images of each community (union of its subsets) minus ``exclude``; an unknown subset is an error."""
    out = {}
    for community, nodes in scheme.items():
        missing = sorted(n for n in nodes if n not in subsets)
        if missing:
            raise ShiftbenchError(f"MetaShift meta-data {path} lacks the subsets {missing} of community {community!r}; "
                                  f"is it the official full-candidate-subsets.pkl?")
        out[community] = set().union(*(subsets[n] for n in nodes)) - exclude
    return out


# ---- subset distance ----------------------------------------------------------------------------

def overlap_graph(sets: list[set[str]], threshold: float = EDGE_THRESHOLD) -> np.ndarray:
    """Adjacency matrix: overlap coefficient |A & B| / min(|A|, |B|) between subsets, below ``threshold`` -> 0."""
    n = len(sets)
    adjacency = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            smaller = min(len(sets[i]), len(sets[j]))
            weight = len(sets[i] & sets[j]) / smaller if smaller else 0.0
            adjacency[i, j] = adjacency[j, i] = weight if weight >= threshold else 0.0
    return adjacency


def spectral_embedding(adjacency: np.ndarray, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """Nodes embedded by the eigenvectors of the 2nd..(dim+1)th smallest Laplacian eigenvalues, centred
    and scaled so that the largest absolute coordinate is 1 (networkx' spectral layout)."""
    laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
    values, vectors = np.linalg.eigh(laplacian)
    pos = vectors[:, np.argsort(values, kind="stable")[1:dim + 1]]
    pos = pos - pos.mean(axis=0)
    scale = np.abs(pos).max()
    return pos / scale if scale > 0 else pos


def subset_distances(names: list[str], sets: list[set[str]]) -> pd.DataFrame:
    """Pairwise MetaShift subset distances (spectral embedding of the overlap graph)."""
    pos = spectral_embedding(overlap_graph(sets), min(EMBEDDING_DIM, max(len(names) - 1, 1)))
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    return pd.DataFrame(dist, index=names, columns=names)


# ---- shared machinery ----------------------------------------------------------------------------

class MetaShiftDataset(Dataset):
    """Base of the MetaShift datasets: meta-data, image folder, lazy image loading, splits."""

    abstract = True
    download_command = DOWNLOAD_COMMAND
    input_kind = "image"
    class_order: ClassVar[tuple[str, ...]] = ("cat", "dog")
    id_column = "image_id"

    def __init__(self, root_dir: str = "data/metashift", image_size: int = 224, seed: int = 0):
        super().__init__()
        self.root_dir = Path(root_dir).expanduser()
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.subsets_path = self.root_dir / SUBSETS_FILE
        self.subsets = load_subsets(self.subsets_path)
        self.image_dir = self.root_dir / IMAGE_FOLDER
        if not self.image_dir.is_dir():
            raise MissingDataError("MetaShift images (Visual Genome / GQA)", str(self.image_dir),
                                   DOWNLOAD_COMMAND.replace("<root_dir>", str(self.root_dir)), IMAGES_SIZE)

    @classmethod
    def download(cls, root_dir: str = "data/metashift", yes: bool = False) -> None:
        """MetaShift cannot be fetched automatically (its images are not on a package registry): say how."""
        raise ShiftbenchError(f"fetch MetaShift by hand ({IMAGES_SIZE}): "
                              f"{DOWNLOAD_COMMAND.replace('<root_dir>', str(root_dir))}")

    def _load_images(self, ids: np.ndarray) -> Callable[[Any], np.ndarray]:
        from PIL import Image

        size, folder = self.image_size, self.image_dir

        def load(index: Any) -> np.ndarray:
            chosen = np.atleast_1d(ids[index])
            out = np.empty((len(chosen), size, size, 3), dtype=np.uint8)
            for k, image_id in enumerate(chosen):
                path = folder / f"{image_id}.jpg"
                if not path.exists():
                    raise MissingDataError(f"MetaShift image {image_id}", str(path), DOWNLOAD_COMMAND, IMAGES_SIZE)
                with Image.open(path) as image:
                    out[k] = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
            return out

        return load

    def _add_split(self, name: str, frame: pd.DataFrame) -> None:
        """A split from a frame with columns ``image_id``, ``y`` and metadata, rows in image-id order (Visual
        Genome ids say nothing of the class)."""
        frame = frame.sort_values("image_id", kind="stable").reset_index(drop=True)
        ids = frame["image_id"].to_numpy()
        fp = stable_hash({"dataset": self.name, "split": name, "size": self.image_size,
                          "rows": frame.astype(str).to_numpy().tolist()})
        self.splits[name] = Split(name, frame["y"].to_numpy(), frame, load_inputs=self._load_images(ids), fingerprint=fp)

    def _frame(self, images: dict[str, set[str]], extra: dict[str, Any] | None = None) -> pd.DataFrame:
        """Rows (image_id, y, class) for ``{class: ids}``; an image in two classes is dropped."""
        owners: dict[str, list[str]] = {}
        for cls, ids in images.items():
            for i in ids:
                owners.setdefault(i, []).append(cls)
        rows = [{"image_id": i, "y": self.class_order.index(c[0]), "class": c[0], **(extra or {})}
                for i, c in owners.items() if len(c) == 1]
        return pd.DataFrame(rows, columns=["image_id", "y", "class", *(extra or {})])

    def _holdout(self, frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A seeded, class-stratified holdout of ``fraction`` of the rows."""
        frame = frame.sort_values("image_id").reset_index(drop=True)
        rng = np.random.default_rng(self.seed)
        held = np.zeros(len(frame), dtype=bool)
        for rows in frame.groupby("y").indices.values():
            held[rng.permutation(rows)[: int(round(fraction * len(rows)))]] = True
        return frame[~held], frame[held]


# ---- Cat vs Dog domain generalisation ---------------------------------------------------------------

class _CatDogDomainGeneralisation(MetaShiftDataset):
    abstract = True
    # nothing visible: ``context`` is a function of the class in training (sofa+bed <-> cat)
    visible_metadata = ()
    seed_option = "seed"  # the seeded holdout of the training communities
    dog_pair: ClassVar[tuple[str, str]]
    paper_distance: ClassVar[float]

    def __init__(self, root_dir: str = "data/metashift", image_size: int = 224, seed: int = 0,
                 holdout_fraction: float = 0.2, test_cats: bool = False):
        super().__init__(root_dir=root_dir, image_size=image_size, seed=seed)
        path = self.subsets_path
        dupes = self.subsets.get("cat(dog)", set())
        test = community_images(self.subsets, {**CAT_TEST, **DOG_TEST}, dupes, path)
        test_ids = set().union(*test.values())
        dog_scheme = {k: DOG_TRAIN[k] for k in self.dog_pair}
        train = community_images(self.subsets, {**CAT_TRAIN, **dog_scheme}, test_ids | dupes, path)
        frame = self._frame({"cat": train["cat(sofa)"] | train["cat(bed)"],
                             "dog": set().union(*(train[k] for k in self.dog_pair))})
        frame["context"] = frame["class"].map({"cat": "sofa+bed", "dog": "+".join(_context(k) for k in self.dog_pair)})
        fit, held = self._holdout(frame, float(holdout_fraction))
        self._add_split("train", fit)
        self._add_split("id_val", held)
        cats = {"cat": test["cat(shelf)"]} if as_flag(test_cats) else {}
        test_frame = self._frame({"dog": test["dog(shelf)"], **cats})
        test_frame["context"] = "shelf"
        self._add_split("test", test_frame)
        self.n_classes, self.class_names = 2, list(self.class_order)
        self.grouper = Grouper(["y", "context"])
        self.distance = self._dog_distance(dupes)

    def _dog_distance(self, dupes: set[str]) -> float:
        """The subset distance between the dog training pair and dog(shelf), over the dog communities."""
        names = sorted(DOG_TRAIN) + sorted(DOG_TEST) + sorted(DOG_ADDITIONAL_TEST)
        communities = community_images(self.subsets, {**DOG_TRAIN, **DOG_TEST, **DOG_ADDITIONAL_TEST}, dupes,
                                       self.subsets_path)
        distances = subset_distances(names, [communities[n] for n in names])
        return float(np.mean([distances.loc[k, "dog(shelf)"] for k in self.dog_pair]))


def _context(node: str) -> str:
    return _NODE.match(node)["context"]


class CatDogD044(_CatDogDomainGeneralisation):
    """MetaShift Cat vs Dog, dogs trained on cabinet + bed (paper distance to dog(shelf): 0.44)."""

    name, dog_pair, paper_distance = "metashift/catdog-d0.44", ("dog(cabinet)", "dog(bed)"), 0.44


class CatDogD071(_CatDogDomainGeneralisation):
    """MetaShift Cat vs Dog, dogs trained on bag + box (paper distance to dog(shelf): 0.71)."""

    name, dog_pair, paper_distance = "metashift/catdog-d0.71", ("dog(bag)", "dog(box)"), 0.71


class CatDogD112(_CatDogDomainGeneralisation):
    """MetaShift Cat vs Dog, dogs trained on bench + bike (paper distance to dog(shelf): 1.12)."""

    name, dog_pair, paper_distance = "metashift/catdog-d1.12", ("dog(bench)", "dog(bike)"), 1.12


class CatDogD143(_CatDogDomainGeneralisation):
    """MetaShift Cat vs Dog, dogs trained on boat + surfboard (paper distance to dog(shelf): 1.43)."""

    name, dog_pair, paper_distance = "metashift/catdog-d1.43", ("dog(boat)", "dog(surfboard)"), 1.43


# ---- subpopulation shift -------------------------------------------------------------------------

class CatDogIndoorOutdoor(MetaShiftDataset):
    """MetaShift Cat vs Dog subpopulation shift: indoor cats / outdoor dogs dominate training; worst-group accuracy.

    As the MetaShift release builds it: each group's images are sorted, shuffled by ``random.Random(42)``
    and truncated (minority groups cat(outdoor), dog(indoor) to ``minority_size``; majority groups to
    ``majority_size``); ``test_size`` images per group are held out (scikit-learn ``train_test_split``,
    random_state 42) for the balanced ``test`` split; training takes the first ``num_minority`` minority
    images and the majority images from position ``num_minority`` on.
    """

    name = "metashift/catdog-indoor-outdoor"
    # indoor / outdoor, the attribute the groups are made of; both classes occur in both
    visible_metadata = ("context",)

    def __init__(self, root_dir: str = "data/metashift", image_size: int = 224, seed: int = 0,
                 num_minority: int = 100, minority_size: int = 294, majority_size: int = 994, test_size: int = 144):
        super().__init__(root_dir=root_dir, image_size=image_size, seed=seed)
        from sklearn.model_selection import train_test_split

        path = self.subsets_path
        dupes = self.subsets.get("cat(dog)", set())
        test_side = community_images(self.subsets, {"cat(outdoor)": CAT_OUTDOOR, "dog(indoor)": DOG_INDOOR}, dupes, path)
        excluded = dupes | test_side["cat(outdoor)"] | test_side["dog(indoor)"]
        train_side = community_images(self.subsets, {"cat(indoor)": CAT_INDOOR, "dog(outdoor)": DOG_OUTDOOR}, excluded, path)

        def shuffled(ids: set[str], n: int) -> list[str]:
            order = sorted(ids)
            random.Random(42).shuffle(order)
            return order[:n]

        groups = {"cat(outdoor)": shuffled(test_side["cat(outdoor)"], minority_size),
                  "dog(indoor)": shuffled(test_side["dog(indoor)"], minority_size),
                  "cat(indoor)": shuffled(train_side["cat(indoor)"], majority_size),
                  "dog(outdoor)": shuffled(train_side["dog(outdoor)"], majority_size)}
        try:
            cat_out_tr, cat_out_te, dog_in_tr, dog_in_te = train_test_split(
                groups["cat(outdoor)"], groups["dog(indoor)"], test_size=test_size, random_state=42)
            cat_in_tr, cat_in_te, dog_out_tr, dog_out_te = train_test_split(
                groups["cat(indoor)"], groups["dog(outdoor)"], test_size=test_size, random_state=42)
        except ValueError as exc:
            raise ShiftbenchError(f"MetaShift indoor/outdoor: too few images for test_size={test_size} per group "
                                  f"(group sizes {[len(g) for g in groups.values()]}): {exc}") from exc
        m = int(num_minority)
        train = [("cat", "outdoor", cat_out_tr[:m]), ("cat", "indoor", cat_in_tr[m:]),
                 ("dog", "indoor", dog_in_tr[:m]), ("dog", "outdoor", dog_out_tr[m:])]
        test = [("cat", "outdoor", cat_out_te), ("cat", "indoor", cat_in_te),
                ("dog", "indoor", dog_in_te), ("dog", "outdoor", dog_out_te)]
        self._add_split("train", self._group_frame(train))
        self._add_split("test", self._group_frame(test))
        self.n_classes, self.class_names = 2, list(self.class_order)
        self.grouper = Grouper(["y", "context"])

    def _group_frame(self, parts: list[tuple[str, str, list[str]]]) -> pd.DataFrame:
        return pd.DataFrame([{"image_id": i, "y": self.class_order.index(c), "class": c, "context": ctx}
                             for c, ctx, ids in parts for i in ids], columns=["image_id", "y", "class", "context"])


# ---- any classes, contexts as domains ----------------------------------------------------------------

class MetaShiftContexts(MetaShiftDataset):
    """Any MetaShift classes with their contexts as domains; images of ``test_context`` are the shifted test split.

    Each image carries its context (its largest subset, the test context first) and the subset
    distance from that context to the test context; ``context_distances[class]`` has all pairs.
    """

    name = "metashift/contexts"
    # nothing visible: many contexts (and so their distances) exist for one class only
    visible_metadata = ()
    seed_option = "seed"  # the seeded holdouts of the source contexts

    def __init__(self, root_dir: str = "data/metashift", image_size: int = 224, seed: int = 0,
                 classes: list[str] | tuple[str, ...] = ("cat", "dog"), test_context: str = "shelf",
                 min_size: int = MIN_SUBSET_SIZE, holdout_fraction: float = 0.2):
        super().__init__(root_dir=root_dir, image_size=image_size, seed=seed)
        self.class_order = tuple(classes)
        other = set(classes)
        rows, self.context_distances = [], {}
        for cls in classes:
            nodes = sorted(k for k, ids in self.subsets.items() if _NODE.match(k)["subject"] == cls
                           and len(ids) >= min_size and _context(k) not in other)
            target = f"{cls}({test_context})"
            if target not in nodes:
                raise ShiftbenchError(f"MetaShift has no subset {target!r} with at least {min_size} images; "
                                      f"contexts of {cls!r}: {', '.join(_context(n) for n in nodes[:40])}")
            distances = subset_distances(nodes, [self.subsets[n] for n in nodes])
            self.context_distances[cls] = distances
            # each image's context: its largest subset (ties by name); the test context wins if present
            by_size = sorted(nodes, key=lambda n: (n != target, -len(self.subsets[n]), n))
            seen: set[str] = set()
            for node in by_size:
                for image_id in sorted(self.subsets[node] - seen):
                    rows.append({"image_id": image_id, "y": self.class_order.index(cls), "class": cls,
                                 "context": _context(node), "distance": float(distances.loc[node, target])})
                seen |= self.subsets[node]
        frame = pd.DataFrame(rows)
        frame = frame[~frame["image_id"].duplicated(keep=False)]  # images of two classes are ambiguous
        test = frame[frame["context"] == test_context]
        source = frame[frame["context"] != test_context]
        fit, held = self._holdout(source, float(holdout_fraction))
        valid, test_id = self._holdout(held, 0.5)
        self._add_split("train", fit)
        self._add_split("id_val", valid)
        self._add_split("id_test", test_id)
        self._add_split("test", test)
        self.n_classes, self.class_names = len(classes), list(classes)
        self.grouper = Grouper(["context"])
