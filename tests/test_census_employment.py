"""The census employment dataset: the dataset contract, a source model that does not see age, test chunks
selected by age, and the controlled covariate shift on which M-CBPE beats CBPE by more than the sampling
error of the realised chunk accuracies (a small version of the performance_estimation experiment's figure)."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench.dataset_contract import check_dataset
from shiftbench.datasets import load
from shiftbench.families import Outputs
from shiftbench.methods.cbpe import CBPE, MCBPE
from shiftbench.models.tabular import TabularLogistic


@pytest.fixture(scope="module")
def census():
    return load("census_employment")


@pytest.fixture(scope="module")
def source_model(census, tmp_path_factory):
    return TabularLogistic().build(census, 0, tmp_path_factory.mktemp("models"))


def test_census_employment_passes_the_dataset_contract(census):
    failed = {r.check: r.message for r in check_dataset(census) if r.status == "failed"}
    assert not failed, failed


def test_the_source_model_does_not_see_age(census, source_model):
    assert (census.split("train").inputs()[:, 0] == 0).all()
    assert census.split("id_val").inputs()[:, 0].std() > 0.5
    assert source_model.head.weight[:, 0].abs().max().item() == 0.0  # the age column has no weight


def test_test_chunks_are_age_deciles_and_val_chunks_survey_years(census):
    test, val = census.split("test"), census.split("val")
    ages = test.inputs()[:, 0]
    bands = test.metadata["age_decile"].to_numpy()
    assert sorted(np.unique(bands)) == list(range(1, 11))
    assert all(ages[bands == b].max() <= ages[bands == b + 1].min() for b in range(1, 10))  # selected by age alone
    assert sorted(np.unique(val.metadata["year"])) == [2016, 2017, 2018]


def outputs(model, x: np.ndarray) -> Outputs:
    """The model's features and probabilities of raw inputs, as the runner hands them to estimators."""
    out = model.forward_arrays(x)
    return Outputs(out["feats"], out["logits"])


def test_mcbpe_beats_cbpe_by_more_than_the_sampling_error_on_the_age_shift(census, source_model):
    """A 4000-row reference and 600 rows of every other age decile (the experiment uses all of both)."""
    rng = np.random.default_rng(0)
    reference, test = census.split("id_val"), census.split("test")
    rows = rng.choice(len(reference), 4000, replace=False)
    ref = outputs(source_model, reference.inputs(rows))
    cbpe = CBPE(metrics=("accuracy",)).fit(ref.probs, reference.y[rows])
    mcbpe = MCBPE(metrics=("accuracy",), classifier="gbm", n_folds=2).fit(ref.feats, ref.probs, reference.y[rows])
    bands = test.metadata["age_decile"].to_numpy()
    errors, standard_errors = {"cbpe": [], "mcbpe": []}, []
    for band in range(1, 11, 2):
        chunk = rng.choice(np.flatnonzero(bands == band), 600, replace=False)
        out = outputs(source_model, test.inputs(chunk))
        realised = np.mean(out.probs.argmax(1) == test.y[chunk])
        standard_errors.append(np.sqrt(realised * (1 - realised) / len(chunk)))
        errors["cbpe"].append(abs(cbpe.estimate(out.probs)["accuracy"].iloc[0] - realised))
        errors["mcbpe"].append(abs(mcbpe.estimate(out.feats, out.probs)["accuracy"].iloc[0] - realised))
    mae = {name: np.mean(e) for name, e in errors.items()}
    assert mae["cbpe"] - mae["mcbpe"] > np.mean(standard_errors), (mae, np.mean(standard_errors))
