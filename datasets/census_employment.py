"""US census employment in Massachusetts (ACS PUMS, as NannyML packages it), with a controlled covariate shift
in a covariate the source model does not see.

Predict whether a person is employed (folktables' ACSEmployment task) from age and 15 categorical census
attributes (schooling, marital status, relationship, disability, ..., sex, race), one-hot encoded; age enters
as one column, standardised by the ``train`` split. **The source model does not see age**: ``train`` holds it
at 0 (its mean there), so a model fitted on ``train`` cannot use it (a logistic model's age weight stays 0),
while every other split carries each person's age. Employment depends strongly on age, so the model's
calibration holds on the reference as a whole but not within an age band.

Splits, from the 2015 survey (seeded, stratified 40/20/10/30): ``train``, ``id_val`` (the reference of the
performance estimators), ``id_test``, and ``test``: the remaining 30% with metadata ``age_decile`` (1-10, by
the deciles of the 2015 ages): chunked by it (``chunk_by: age_decile``) it is a covariate shift selected by
age alone, where CBPE's calibration does not carry over and density ratios over the covariates (M-CBPE) can
correct it. ``val``: 6000 people of each of the 2016, 2017 and 2018 surveys, metadata ``year``: chunked by
year, a mild real shift. Metadata ``person`` is the example's row in the table.

Data: ``shipped/census_employment/census_employment_ma.csv.gz`` (shipped in the package): the rows and columns
of NannyML 0.13.1's ``employment_MA_reference.pq`` (2015, all 68,785 rows) and a seeded sample of 6000 rows per
year of ``employment_MA_analysis.pq`` with its targets (2016-2018); NannyML (Apache License 2.0,
Copyright NannyML) built them from the US Census Bureau's American Community Survey public-use microdata with
folktables. The folder's NOTICE and LICENSE files hold the attribution and the licence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.dataset import Dataset, Grouper, Split
from shiftbench.datasets._sampling import labelled_parts

DATA_FILE = Path(__file__).parent / "shipped" / "census_employment" / "census_employment_ma.csv.gz"
#: the categorical census attributes (one-hot encoded); age is the one numeric covariate
CATEGORICAL = ["SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY", "DEAR", "DEYE", "DREM",
               "SEX", "RAC1P"]
HIDDEN = "AGEP"
SOURCE_YEAR = 2015
N_BANDS = 10


def age_deciles(age: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Band 1..10 of each age, by the deciles of the ``reference`` ages."""
    edges = np.quantile(reference, np.arange(1, N_BANDS) / N_BANDS)
    return 1 + np.searchsorted(edges, age, side="right")


def design_matrix(table: pd.DataFrame, age_mean: float, age_std: float) -> np.ndarray:
    """float32 inputs: standardised age, then the one-hot categorical attributes (categories of the whole table)."""
    onehot = [table[c].to_numpy()[:, None] == np.unique(table[c].to_numpy()) for c in CATEGORICAL]
    age = (table[HIDDEN].to_numpy(np.float64) - age_mean) / age_std
    return np.hstack([age[:, None], *onehot]).astype(np.float32)


class CensusEmployment(Dataset):
    """Census employment (Massachusetts): a model without age; test chunks by age decile, val by survey year."""

    name = "census_employment"
    input_kind = "tabular"
    visible_metadata = ("age_decile", "year")
    id_column = "person"
    seed_option = "split_seed"

    def __init__(self, split_seed: int = 0):
        super().__init__()
        table = pd.read_csv(DATA_FILE)
        y = table["employed"].to_numpy(np.int64)
        year, age = table["year"].to_numpy(), table[HIDDEN].to_numpy(np.float64)
        source = np.flatnonzero(year == SOURCE_YEAR)
        index = labelled_parts({"train": 0.4, "id_val": 0.2, "id_test": 0.1, "test": 0.3}, source, y, split_seed)
        index["val"] = np.flatnonzero(year != SOURCE_YEAR)
        train_age = age[index["train"]]
        x = design_matrix(table, train_age.mean(), train_age.std())
        meta = pd.DataFrame({"age_decile": age_deciles(age, age[source]), "year": year, "person": np.arange(len(y))})
        self.n_classes, self.class_names = 2, ["not_employed", "employed"]
        self.grouper = Grouper(["age_decile"])
        for key, idx in index.items():
            inputs = x[idx]  # a copy
            if key == "train":
                inputs[:, 0] = 0.0  # the source model does not see age
            self.splits[key] = Split(key, y[idx], meta.iloc[idx], x=inputs)
