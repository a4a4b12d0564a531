"""A tiny MetaShift in the real format: ``full-candidate-subsets.pkl`` (a ``collections.defaultdict(set)``
``"class(context)"`` -> set of image ids, pickled by Python 3, as the MetaShift README describes it) naming
every subset the MetaShift tasks use, and ``allImages/images/<id>.jpg``.

Each subset gets three images of its own; the subsets of a community share one more image (so the
overlap graph has edges) and the dog communities are chained by bridge images; ``cat(dog)`` holds two
images that are also in cat and dog subsets (the ambiguous images MetaShift drops). Cats are reddish,
dogs bluish. Image ids are numbers in a shuffled order, as Visual Genome's are: they say nothing of the class.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from shiftbench.datasets import metashift as ms

COMMUNITIES = [ms.CAT_TRAIN, ms.DOG_TRAIN, ms.CAT_TEST, ms.DOG_TEST, ms.DOG_ADDITIONAL_TEST]
GROUPS = {"cat(indoor)": ms.CAT_INDOOR, "cat(outdoor)": ms.CAT_OUTDOOR, "dog(indoor)": ms.DOG_INDOOR,
          "dog(outdoor)": ms.DOG_OUTDOOR}
DUPES = ["dupe_0", "dupe_1"]


def build(root: Path, images: bool = True) -> dict[str, set[str]]:
    """Write the pickle and the images under ``root``; return the subsets dict."""
    nodes = sorted(set().union(*(n for c in COMMUNITIES for n in c.values()), *GROUPS.values()))
    subsets = {node: {f"{node.split('(')[0]}_{k}_{i}" for i in range(3)} for k, node in enumerate(nodes)}
    for c, scheme in enumerate(COMMUNITIES):
        for community, members in scheme.items():
            shared = f"{community.split('(')[0]}_shared_{c}_{community.split('(')[1][:-1].replace(' ', '_')}"
            for node in members:
                subsets[node].add(shared)
    # chain the dog communities with bridge images of different sizes: a connected overlap graph
    # with distinct Laplacian eigenvalues, so the spectral distances are well defined
    chain = sorted(ms.DOG_TRAIN) + sorted(ms.DOG_TEST) + sorted(ms.DOG_ADDITIONAL_TEST)
    scheme = {**ms.DOG_TRAIN, **ms.DOG_TEST, **ms.DOG_ADDITIONAL_TEST}
    for i, (a, b) in enumerate(zip(chain[:-1], chain[1:])):
        bridge = {f"dog_bridge_{i}_{j}" for j in range(3 + i)}
        subsets[min(scheme[a])] |= bridge
        subsets[min(scheme[b])] |= bridge
    subsets["cat(dog)"] = set(DUPES)
    subsets["cat(sofa)"] |= {DUPES[0]}
    subsets["dog(bed)"] |= {DUPES[1]}
    subsets["dog(shelf)"] |= {DUPES[0]}
    subsets, cats = _numbered(subsets)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ms.SUBSETS_FILE, "wb") as f:
        pickle.dump(defaultdict(set, subsets), f)
    if images:
        folder = root / ms.IMAGE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for image_id in sorted(set().union(*subsets.values())):
            base = np.array([200, 50, 50] if image_id in cats else [50, 50, 200], dtype=float)
            pixels = np.clip(base + rng.normal(0, 15, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{image_id}.jpg", format="JPEG")
    return subsets


def _numbered(subsets: dict[str, set[str]]) -> tuple[dict[str, set[str]], set[str]]:
    """The subsets with every image (but the named ``DUPES``) renamed to a number, numbers dealt in a
    seeded random order; and the new ids of the cat images (whose names start with ``cat``)."""
    names = sorted(set().union(*subsets.values()) - set(DUPES))
    new = {n: str(2_300_000 + k) for n, k in zip(names, np.random.default_rng(0).permutation(len(names)))}
    new.update({d: d for d in DUPES})
    return {node: {new[i] for i in ids} for node, ids in subsets.items()}, {new[n] for n in names if n.startswith("cat")}
