"""MetaShift datasets on a tiny fabricated meta-data pickle and image folder in the real format."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench.datasets import load
from shiftbench.datasets import metashift as ms
from shiftbench.errors import MissingDataError, ShiftbenchError

sys.path.insert(0, str(Path(__file__).parent))
import metashift_fixtures  # noqa: E402

DG = ["metashift/catdog-d0.44", "metashift/catdog-d0.71", "metashift/catdog-d1.12", "metashift/catdog-d1.43"]
SMALL = {"num_minority": 2, "minority_size": 10, "majority_size": 20, "test_size": 4}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metashift")
    metashift_fixtures.build(path)
    return path


@pytest.fixture(scope="module")
def subsets(root) -> dict[str, set[str]]:
    with open(root / ms.SUBSETS_FILE, "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("name", DG)
def test_domain_generalisation_splits(root, subsets, name):
    ds = load(name, root_dir=str(root), image_size=16)
    assert set(ds.splits) == {"train", "id_val", "test"}
    train_ids = set(ds.split("train").metadata["image_id"]) | set(ds.split("id_val").metadata["image_id"])
    test_ids = set(ds.split("test").metadata["image_id"])
    # test: the dog(shelf) community (dog(desk), dog(screen) ... dog(shelf)), all dogs, without cat+dog images
    shelf = set().union(*(subsets[n] for n in ("dog(desk)", "dog(screen)", "dog(laptop)", "dog(shelf)",
                                                "dog(picture)", "dog(chair)")))
    assert test_ids == shelf - set(metashift_fixtures.DUPES)
    assert (ds.split("test").y == 1).all()
    assert not train_ids & test_ids and not train_ids & set(metashift_fixtures.DUPES)
    # cats come from cat(sofa + bed) only, dogs from the chosen pair of communities only
    cat_nodes = set().union(*ms.CAT_TRAIN.values())
    dog_nodes = set().union(*(ms.DOG_TRAIN[k] for k in type(ds).dog_pair))
    for split in ("train", "id_val"):
        s = ds.split(split)
        for image_id, label in zip(s.metadata["image_id"], s.y):
            nodes = cat_nodes if label == 0 else dog_nodes
            assert any(image_id in subsets[n] for n in nodes)
    assert set(ds.split("train").y) == {0, 1}


def test_cat_shelf_images_join_the_test_split_on_request(root, subsets):
    ds = load("metashift/catdog-d0.44", root_dir=str(root), image_size=16, test_cats="true")
    test = ds.split("test").metadata
    cat_shelf = set().union(*(subsets[n] for n in ("cat(container)", "cat(shelf)", "cat(vase)", "cat(bowl)")))
    assert set(test.loc[test["y"] == 0, "image_id"]) == cat_shelf - set(metashift_fixtures.DUPES)
    assert len(load("metashift/catdog-d0.44", root_dir=str(root), image_size=16, test_cats="false").split("test")) \
        == int((test["y"] == 1).sum())


def test_dog_pairs_differ_and_distance_matches_networkx(root, subsets):
    nx = pytest.importorskip("networkx")
    names = sorted(ms.DOG_TRAIN) + sorted(ms.DOG_TEST) + sorted(ms.DOG_ADDITIONAL_TEST)
    scheme = {**ms.DOG_TRAIN, **ms.DOG_TEST, **ms.DOG_ADDITIONAL_TEST}
    dupes = subsets["cat(dog)"]
    sets = [set().union(*(subsets[n] for n in scheme[c])) - dupes for c in names]
    # the reference construction: overlap-coefficient graph, sparsified below 0.2, spectral layout in 5-D
    adjacency = np.zeros((len(names), len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            w = len(sets[i] & sets[j]) / min(len(sets[i]), len(sets[j]))
            adjacency[i, j] = adjacency[j, i] = w if w >= 0.2 else 0.0
    graph = nx.from_pandas_adjacency(pd.DataFrame(adjacency, index=names, columns=names))
    assert nx.is_connected(graph)
    pos = nx.spectral_layout(graph, dim=5)
    for name in DG:
        ds = load(name, root_dir=str(root), image_size=16)
        a, b = type(ds).dog_pair
        expected = 0.5 * (np.linalg.norm(pos[a] - pos["dog(shelf)"]) + np.linalg.norm(pos[b] - pos["dog(shelf)"]))
        assert ds.distance == pytest.approx(expected, rel=1e-6)
    trains = [set(load(n, root_dir=str(root), image_size=16).split("train").metadata["image_id"]) for n in DG]
    assert len({frozenset(t) for t in trains}) == 4


def test_spectral_embedding_matches_networkx_on_a_random_graph():
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(0)
    weights = np.triu(rng.uniform(0.2, 1.0, (9, 9)) * (rng.random((9, 9)) < 0.6), 1)
    weights[np.arange(8), np.arange(1, 9)] = rng.uniform(0.3, 1, 8)  # a path keeps it connected
    adjacency = weights + weights.T
    ours = ms.spectral_embedding(adjacency, dim=5)
    pos = nx.spectral_layout(nx.from_numpy_array(adjacency), dim=5)
    theirs = np.array([pos[i] for i in range(9)])
    ours_d = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    theirs_d = np.linalg.norm(theirs[:, None] - theirs[None], axis=-1)
    np.testing.assert_allclose(ours_d, theirs_d, atol=1e-9)  # eigenvector signs may differ, distances not


def test_subpopulation_shift_groups_and_worst_group_accuracy(root):
    ds = load("metashift/catdog-indoor-outdoor", root_dir=str(root), image_size=16, **SMALL)
    train = ds.split("train").metadata.groupby(["class", "context"]).size().to_dict()
    # minority groups get num_minority images; majority groups what is left of their training part
    assert train[("cat", "outdoor")] == 2 and train[("dog", "indoor")] == 2
    assert train[("cat", "indoor")] == 20 - 4 - 2 and train[("dog", "outdoor")] == 20 - 4 - 2
    test = ds.split("test").metadata.groupby(["class", "context"]).size()
    assert (test == 4).all() and len(test) == 4
    assert not set(ds.split("train").metadata["image_id"]) & set(ds.split("test").metadata["image_id"])
    assert not set(ds.split("train").metadata["image_id"]) & set(metashift_fixtures.DUPES)
    s = ds.split("test")
    wrong_on_outdoor_cats = np.where((s.metadata["class"] == "cat") & (s.metadata["context"] == "outdoor"), 1, s.y)
    metrics = ds.evaluate("test", wrong_on_outdoor_cats)
    assert metrics["acc_avg"] == pytest.approx(0.75) and metrics["acc_wg"] == 0.0


def test_contexts_as_domains_with_distances(root):
    ds = load("metashift/contexts", root_dir=str(root), image_size=16, min_size=3, test_context="shelf")
    test = ds.split("test").metadata
    assert (test["context"] == "shelf").all() and set(test["class"]) == {"cat", "dog"}
    assert np.allclose(test["distance"], 0.0)
    train = ds.split("train").metadata
    assert "shelf" not in set(train["context"]) and (train["distance"] > 0).any()
    row = train.iloc[0]
    table = ds.context_distances[row["class"]]
    assert row["distance"] == pytest.approx(table.loc[f"{row['class']}({row['context']})", f"{row['class']}(shelf)"])
    assert ds.grouper.columns == ["context"]
    ids = [set(ds.split(k).metadata["image_id"]) for k in ds.splits]
    assert sum(map(len, ids)) == len(set().union(*ids))  # splits are disjoint


def test_unknown_test_context_lists_the_contexts(root):
    with pytest.raises(ShiftbenchError, match="no subset 'cat\\(moon\\)'.*contexts of 'cat'"):
        load("metashift/contexts", root_dir=str(root), min_size=3, test_context="moon")


def test_images_are_loaded_lazily_as_uint8(root):
    ds = load("metashift/catdog-d0.44", root_dir=str(root), image_size=16)
    x = ds.split("train").inputs(np.array([0, 1]))
    assert x.shape == (2, 16, 16, 3) and x.dtype == np.uint8
    y = ds.split("train").y[[0, 1]]
    assert all((img[..., 2].mean() > img[..., 0].mean()) == bool(label) for img, label in zip(x, y))


def test_missing_meta_data_and_images_name_path_and_command(tmp_path):
    with pytest.raises(MissingDataError, match="full-candidate-subsets.pkl.*MetaShift"):
        load("metashift/catdog-d0.44", root_dir=str(tmp_path))
    metashift_fixtures.build(tmp_path, images=False)
    with pytest.raises(MissingDataError) as err:
        load("metashift/catdog-d0.71", root_dir=str(tmp_path))
    assert str(tmp_path / "allImages" / "images") in str(err.value) and "20 GB" in str(err.value)


def test_missing_image_file_is_named(tmp_path):
    metashift_fixtures.build(tmp_path)
    ds = load("metashift/catdog-d1.12", root_dir=str(tmp_path), image_size=16)
    first = ds.split("test").metadata["image_id"][0]
    (tmp_path / "allImages" / "images" / f"{first}.jpg").unlink()
    with pytest.raises(MissingDataError, match=f"{first}.jpg"):
        ds.split("test").inputs()


@pytest.mark.parametrize("content, message", [
    ({"cat(sofa)": {"a"}, "no parentheses": {"b"}}, r"entry 1 has key 'no parentheses'"),
    ({"cat(sofa)": {"a"}, "dog(bed)": {1, 2}}, r"entry 1 \('dog\(bed\)'\) must be a set of image id strings"),
    (["not", "a", "dict"], r"expected a dict"),
])
def test_malformed_meta_data_names_file_and_entry(tmp_path, content, message):
    (tmp_path / "allImages" / "images").mkdir(parents=True)
    with open(tmp_path / ms.SUBSETS_FILE, "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(ShiftbenchError, match=f"full-candidate-subsets.pkl: {message}"):
        load("metashift/catdog-d0.44", root_dir=str(tmp_path))


def test_meta_data_without_the_official_subsets_is_refused(tmp_path):
    (tmp_path / "allImages" / "images").mkdir(parents=True)
    with open(tmp_path / ms.SUBSETS_FILE, "wb") as f:
        pickle.dump({"cat(sofa)": {"a"}}, f)
    with pytest.raises(ShiftbenchError, match="lacks the subsets"):
        load("metashift/catdog-d0.44", root_dir=str(tmp_path))


def test_download_explains_the_manual_steps():
    from shiftbench import datasets

    with pytest.raises(ShiftbenchError, match="images.zip"):
        datasets.registry.get("metashift/catdog-d0.44").download(root_dir="somewhere")
