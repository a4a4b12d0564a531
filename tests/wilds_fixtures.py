"""Tiny copies of WILDS datasets in the exact on-disk layouts the ``wilds`` classes read.

Each builder writes ``<root>/<name>_v<version>/`` with ``RELEASE_v<version>.txt``, the metadata
files and the input files (8x8 images, whose colour depends on the label so that a model can
learn them) under the file names the WILDS class derives from the metadata. Nothing is committed:
tests build them under ``tmp_path``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

IDENTITIES = ["male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white"]
AUXILIARY = ["identity_any", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit"]


def _release(root: Path, name: str, version: str) -> Path:
    data_dir = root / f"{name}_v{version}"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / f"RELEASE_v{version}.txt").write_text(f"{name} {version} (shiftbench test fixture)\n")
    return data_dir


def _image(path: Path, label: int, rng: np.random.Generator, size: int = 8, fmt: str = "PNG") -> None:
    """A small RGB image, reddish for label 0 and bluish otherwise, with noise."""
    base = np.array([200, 40, 40] if label == 0 else [40, 40, 200], dtype=np.float64)
    pixels = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


def camelyon17(root: Path, seed: int = 0) -> Path:
    """camelyon17_v1.0: metadata.csv (index column, patient as zero-padded text) and patches/*.png.
    Hospitals 0, 3, 4 are train/id_val (split column 0/1), 1 is val and 2 is test (by centre)."""
    rng = np.random.default_rng(seed)
    data_dir = _release(root, "camelyon17", "1.0")
    rows = []
    for center, slide0 in [(0, 0), (3, 30), (4, 40), (1, 10), (2, 20)]:
        for k in range(6):
            rows.append({"patient": f"{center * 10 + k % 2:03d}", "node": k % 2, "x_coord": 100 + k, "y_coord": 200 + k,
                         "tumor": k % 2, "slide": slide0 + k % 2, "center": center, "split": int(k >= 4)})
    df = pd.DataFrame(rows)
    df.to_csv(data_dir / "metadata.csv")
    for r in rows:
        p, n = r["patient"], r["node"]
        _image(data_dir / f"patches/patient_{p}_node_{n}/patch_patient_{p}_node_{n}_x_{r['x_coord']}_y_{r['y_coord']}.png",
               r["tumor"], rng)
    return data_dir


def waterbirds(root: Path, seed: int = 0) -> Path:
    """waterbirds_v1.0: metadata.csv (img_filename, y, place, split 0/1/2) and the images it names;
    every (bird, background) group in every split."""
    rng = np.random.default_rng(seed)
    data_dir = _release(root, "waterbirds", "1.0")
    rows = []
    for split in range(3):
        for y in range(2):
            for place in range(2):
                for k in range(2):
                    name = f"{100 + y:03d}.{'Water' if y else 'Land'}_bird/bird_{split}_{place}_{k}.jpg"
                    rows.append({"img_id": len(rows) + 1, "img_filename": name, "y": y, "split": split,
                                 "place": place, "place_filename": f"/p/{place}.jpg"})
                    _image(data_dir / name, y, rng, fmt="JPEG")
    pd.DataFrame(rows).to_csv(data_dir / "metadata.csv", index=False)
    return data_dir


def iwildcam(root: Path, seed: int = 0) -> Path:
    """iwildcam_v2.0: metadata.csv (split names, filename, contiguous y / location / sequence ids,
    datetime with microseconds) and train/<filename> JPEGs."""
    rng = np.random.default_rng(seed)
    data_dir = _release(root, "iwildcam", "2.0")
    rows = []
    splits = ["train", "train", "train", "id_val", "id_test", "val", "test"]
    for i in range(21):
        split = splits[i % len(splits)]
        location = {"val": 3, "test": 4}.get(split, i % 3)
        rows.append({"split": split, "filename": f"{i:04d}.jpg", "y": i % 3, "location_remapped": location,
                     "sequence_remapped": i // 2, "datetime": f"2013-0{1 + i % 9}-1{i % 10} 0{i % 10}:1{i % 6}:00.000",
                     "image_id": f"id{i}"})
        _image(data_dir / "train" / f"{i:04d}.jpg", int(i % 3 != 0), rng, fmt="JPEG")
    pd.DataFrame(rows).to_csv(data_dir / "metadata.csv", index=False)
    return data_dir


def fmow(root: Path, seed: int = 0) -> Path:
    """fmow_v1.1: rgb_metadata.csv (split, UTC timestamp, country, category), country_code_mapping.csv
    and images/rgb_img_<row>.png. Before 2013 is in-distribution, 2013-2015 OOD val, 2016+ OOD test;
    'seq' rows are dropped by WILDS; one country is unmapped (region 'Other')."""
    from wilds.datasets.fmow_dataset import categories

    rng = np.random.default_rng(seed)
    data_dir = _release(root, "fmow", "1.1")
    countries = ["FRA", "KEN", "USA", "XXX"]  # XXX is not in the mapping -> region "Other"
    plan = [("train", 2010)] * 8 + [("val", 2011)] * 3 + [("test", 2012)] * 3 + [("val", 2014)] * 4 + \
           [("test", 2016)] * 4 + [("seq", 2012)] * 2
    rows = []
    for i, (split, year) in enumerate(plan):
        rows.append({"split": split, "img_filename": f"x/{i}.jpg", "img_path": f"x/{i}.jpg",
                     "spatial_reference": "WGS84", "epsg": 4326, "category": categories[i % 2],
                     "visible": True, "img_width": 8, "img_height": 8, "country_code": countries[i % 4],
                     "cloud_cover": 0, "timestamp": f"{year}-0{1 + i % 9}-15T10:00:00Z", "polygon": "[]"})
        _image(data_dir / "images" / f"rgb_img_{i}.png", i % 2, rng)
    pd.DataFrame(rows).to_csv(data_dir / "rgb_metadata.csv", index=False)
    pd.DataFrame({"name": ["France", "Kenya", "United States"], "alpha-2": ["FR", "KE", "US"],
                  "alpha-3": ["FRA", "KEN", "USA"], "region": ["Europe", "Africa", "Americas"]}
                 ).to_csv(data_dir / "country_code_mapping.csv", index=False)
    return data_dir


def _comments(n: int, rng: np.random.Generator) -> pd.DataFrame:
    toxicity = np.tile([0.1, 0.8], n // 2 + 1)[:n]
    frame = {"comment_text": [f"comment number {i} {'you idiot' if t > 0.5 else 'thanks'}" for i, t in enumerate(toxicity)],
             "toxicity": toxicity}
    for j, column in enumerate(IDENTITIES + AUXILIARY):
        frame[column] = np.round(((np.arange(n) + j) % 3 == 0) * 0.9 + rng.uniform(0, 0.05, n), 3)
    return pd.DataFrame(frame)


def civilcomments(root: Path, seed: int = 0) -> Path:
    """civilcomments_v1.0: all_data_with_identities.csv (index column; comment_text, toxicity, split
    names, identity and auxiliary scores), plus civilcomments_unlabeled_v1.0 (extra_unlabeled)."""
    rng = np.random.default_rng(seed)
    data_dir = _release(root, "civilcomments", "1.0")
    df = _comments(36, rng)
    df["split"] = np.repeat(["train", "val", "test"], 12)
    df.to_csv(data_dir / "all_data_with_identities.csv")
    unlabeled_dir = _release(root, "civilcomments_unlabeled", "1.0")
    _comments(10, rng).to_csv(unlabeled_dir / "unlabeled_data_with_identities.csv")
    return data_dir


def amazon(root: Path, seed: int = 0) -> Path:
    """amazon_v2.1: reviews.csv written with QUOTE_NONNUMERIC (as WILDS reads it) and
    splits/user.csv (0 train, 1 val, 2 id_val, 3 test, 4 id_test, -1 not in the dataset)."""
    data_dir = _release(root, "amazon", "2.1")
    rows, splits = [], []
    plan = {0: ["u0", "u1", "u2"], 2: ["u0", "u1", "u2"], 4: ["u0", "u1"], 1: ["u3", "u4"], 3: ["u5", "u6"]}
    for split, users in plan.items():
        for user in users:
            for k in range(3):
                stars = 1 + (len(rows) % 5)
                rows.append({"reviewerID": user, "asin": f"B{k:03d}", "reviewTime": "01 1, 2015",
                             "unixReviewTime": 1420070400 + len(rows), "reviewText": f"{'great' if stars > 3 else 'bad'} item {len(rows)}",
                             "summary": "ok", "verified": True, "category": ["Books", "Toys"][k % 2],
                             "reviewYear": 2014 + k, "overall": float(stars)})
                splits.append(split)
    rows.append({**rows[-1], "reviewerID": "u9"})  # a review outside the dataset (split -1)
    splits.append(-1)
    pd.DataFrame(rows).to_csv(data_dir / "reviews.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    (data_dir / "splits").mkdir()
    pd.DataFrame({"split": splits}).to_csv(data_dir / "splits" / "user.csv", index=False)
    return data_dir


def globalwheat(root: Path, seed: int = 0) -> Path:
    """globalwheat_v1.1: official_{train,val,test}.csv and fixed_train_{val,test}.csv (image_name,
    BoxesString 'x1 y1 x2 y2;...' or 'no_box', domain = session index), metadata_domain.csv
    (';'-separated, one row per WILDS session) and images/*.png."""
    from wilds.datasets.globalwheat_dataset import COUNTRIES, LOCATIONS, SESSIONS, STAGES

    rng = np.random.default_rng(seed)
    data_dir = _release(root, "globalwheat", "1.1")
    pd.DataFrame({"name": SESSIONS, "country": COUNTRIES[0], "location": LOCATIONS[0],
                  "development_stage": STAGES[0]}).to_csv(data_dir / "metadata_domain.csv", sep=";", index=False)
    files = {"official_train.csv": [0, 1], "fixed_train_val.csv": [0, 1], "fixed_train_test.csv": [0, 1],
             "official_val.csv": [12, 13], "official_test.csv": [20, 21]}
    k = 0
    for file, sessions in files.items():
        rows = []
        for session in sessions:
            for _ in range(3):
                n_boxes = k % 4
                corners = rng.integers(0, 900, (n_boxes, 2))
                boxes = [f"{x} {y} {x + w} {y + h}" for (x, y), (w, h) in zip(corners, rng.integers(20, 100, (n_boxes, 2)))]
                rows.append({"image_name": f"wheat_{k}.png", "BoxesString": ";".join(boxes) or "no_box",
                             "domain": session})
                _image(data_dir / "images" / f"wheat_{k}.png", int(n_boxes > 1), rng)
                k += 1
        pd.DataFrame(rows).to_csv(data_dir / file, index=False)
    return data_dir


def poverty(root: Path, seed: int = 0) -> Path:
    """poverty_v1.1: dhs_metadata.csv (country, urban, wealthpooled) and images/landsat_poverty_img_<row>.npz
    holding 'x' (8 bands x 4 x 4 here, 224 x 224 in WILDS). WILDS holds out 2,000 in-country rows for
    id_val / id_test before train, hence 2,060 rows; fold A's OOD countries give val and test."""
    from wilds.datasets.poverty_dataset import SURVEY_NAMES

    rng = np.random.default_rng(seed)
    data_dir = _release(root, "poverty", "1.1")
    fold = SURVEY_NAMES["2009-17A"]
    countries = [fold["train"][0]] * 2040 + [fold["val"][0]] * 10 + [fold["test"][0]] * 10
    urban = rng.random(len(countries)) < 0.4
    wealth = np.round(rng.normal(0, 1, len(countries)) + urban, 4)
    pd.DataFrame({"country": countries, "urban": urban, "wealthpooled": wealth}).to_csv(data_dir / "dhs_metadata.csv",
                                                                                       index=False)
    (data_dir / "images").mkdir()
    for i, w in enumerate(wealth):
        np.savez(data_dir / "images" / f"landsat_poverty_img_{i}.npz", x=np.full((8, 4, 4), w, dtype=np.float32))
    return data_dir


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "camelyon17": camelyon17, "waterbirds": waterbirds, "iwildcam": iwildcam, "fmow": fmow,
    "civilcomments": civilcomments, "amazon": amazon, "globalwheat": globalwheat, "poverty": poverty,
}
CLASSIFICATION = ["amazon", "camelyon17", "civilcomments", "fmow", "iwildcam", "waterbirds"]
