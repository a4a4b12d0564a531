"""The plugin contract: every registered method passes it, and each check catches the flaw it names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftbench import methods
from shiftbench.arrays import check_probs
from shiftbench.cli import main
from shiftbench.contract import CHECKS, ContractImageDataset, check_method
from shiftbench.dataset import Dataset
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter, ModelAdapter, OutputAdapter
from shiftbench.hyperparameters import Float, Hyperparameter

#: plugins whose contract run takes tens of seconds on two cores (they train or solve something per run)
SLOW = {"label_shift_adapter", "dwgcs", "mcbpe"}
#: the checks a shipped plugin skips, and a phrase of the reason it gives; every other check runs on every plugin
#: (cotta, rotta, deyo and memo on the image task). memo takes 8-bit images only, which cannot hold NaN; DASVM is
#: binary and the contract's tasks have 3 classes.
EXPECTED_SKIPS = {
    "memo": {"nan_inputs": "refuses float32 target images even without NaN"},
    "skada_dasvm": {c: "DASVM is binary" for c in ("determinism", "no_target_labels", "batch_size_1", "nan_inputs")},
}


def _params():
    # the plugins shipped in methods/ (test modules register their own stand-ins by hand; they are not plugins)
    shipped = {n: c for n, c in methods.registry.scan_all().items() if c.__module__.startswith("shiftbench.methods.")}
    for name in shipped:
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_registered_method_passes_the_contract(name):
    results = {r.check: r for r in check_method(methods.registry.get(name))}
    assert set(results) == set(CHECKS)
    failed = {c: r.message for c, r in results.items() if r.status == "failed"}
    assert not failed, "\n".join(f"{c}: {m}" for c, m in failed.items())
    skipped = {c: r.message for c, r in results.items() if r.status == "skipped"}
    expected = EXPECTED_SKIPS.get(name, {})
    assert set(skipped) == set(expected), f"skipped: {skipped}"
    assert all(expected[c] in message for c, message in skipped.items()), skipped


# --- plugins that break one rule each: the contract must catch them ---------------------------------------


class Sharpen(OutputAdapter):
    """A correct output adapter the broken ones below derive from."""

    name = "contract_sharpen"
    hyperparameters = {"power": Float(1.0, above=0)}
    grid = {"power": [1.0, 2.0]}

    def process(self, batch):
        p = check_probs(batch.probs) ** self.power
        return p / p.sum(1, keepdims=True)


class Unseeded(Sharpen):
    name = "contract_unseeded"

    def process(self, batch):
        noisy = super().process(batch) + np.random.default_rng().random(batch.probs.shape)  # fresh entropy each call
        return noisy / noisy.sum(1, keepdims=True)


class Peeking(Sharpen):
    """Reads the target labels through a back door of the label-free view (:func:`leaky_views` opens one)."""

    name = "contract_peeking"

    def prepare(self, task):
        self.labels_ = np.eye(task.n_classes)[task.target.leaked_y]

    def process(self, batch):
        return self.labels_[batch.index]


class SwallowsNaN(DomainAdapter):
    """Replaces NaN by zeros silently."""

    name = "contract_swallows_nan"

    def fit(self, X_source, y_source, X_target):
        self.k_ = int(np.max(y_source)) + 1
        return self

    def predict_proba(self, X_target):
        X = np.nan_to_num(np.asarray(X_target, dtype=float))
        return np.full((len(X), self.k_), 1.0 / self.k_)


class CrashesOnOne(Sharpen):
    name = "contract_crashes_on_one"

    def process(self, batch):
        if len(batch) == 1:
            raise RuntimeError("index 1 is out of bounds")
        return super().process(batch)


class RefusesOne(Sharpen):
    name = "contract_refuses_one"

    def process(self, batch):
        if len(batch) == 1:
            raise ShiftbenchError(f"{self.name} needs batches of at least 2 examples")
        return super().process(batch)


class GridNotDeclared(Sharpen):
    name = "contract_grid_not_declared"
    grid = {"temperature": [1.0]}


class InvalidGridValue(Sharpen):
    name = "contract_invalid_grid_value"
    grid = {"power": [1.0, -0.5]}


class InvalidDefault(Sharpen):
    name = "contract_invalid_default"
    hyperparameters = {"power": Float(0.0, above=0)}


class OwnInit(Sharpen):
    """The old API: hyperparameters as a hand-written __init__ instead of a declaration."""

    name = "contract_own_init"

    def __init__(self, power: float = 1.0):
        self.power = power


class OverridesRun(Sharpen):
    name = "contract_overrides_run"

    def run(self, task):
        return task.target_outputs().probs


class OldHook(OutputAdapter):
    """The old output-adapter hook, adapt(probs, feats), instead of process(batch)."""

    name = "contract_old_hook"

    def adapt(self, probs, feats):
        return probs


class ForgetsParams(Sharpen):
    """get_params drops a hyperparameter, so a record could not rebuild the method."""

    name = "contract_forgets_params"

    def get_params(self):
        return {}


class TupleGrid(Sharpen):
    name = "contract_tuple_grid"
    hyperparameters = {"pair": Hyperparameter((1.0, 2.0))}
    grid = {"pair": [(1.0, 2.0)]}


class FlipAverage(ModelAdapter):
    """A correct image-only test-time method the broken image ones below derive from: the logits of each batch
    averaged with those of its horizontal mirror (refusing NaN, as check_matrix would for a matrix)."""

    name = "contract_flip_average"
    hyperparameters = {"weight": Float(0.25, at_least=0, at_most=1)}
    grid = {"weight": [0.25, 0.5]}  # at 0.5 the average is the same for an image and its mirror

    def not_applicable(self, model, data):
        return None if data.input_kind == "image" else f"it mirrors images; {data.name!r} has {data.input_kind} inputs"

    def prepare(self, task):
        self.network = task.network()

    @torch.no_grad()
    def process(self, batch):
        x = self.images(batch)
        if not torch.isfinite(x).all():
            raise ShiftbenchError(f"{self.name}: the target images contain NaN or infinite values")
        return (1 - self.weight) * self.network(x) + self.weight * self.network(x.flip(-1))

    def images(self, batch):
        return batch.inputs


class UnseededFlips(FlipAverage):
    name = "contract_unseeded_flips"

    def images(self, batch):
        flip = torch.as_tensor(np.random.default_rng().random(len(batch)) < 0.5)  # fresh entropy each call
        return torch.where(flip[:, None, None, None], batch.inputs.flip(-1), batch.inputs)


class ZeroesNaNPixels(FlipAverage):
    name = "contract_zeroes_nan_pixels"

    def images(self, batch):
        return torch.nan_to_num(batch.inputs)


class CrashesOnOneImage(FlipAverage):
    name = "contract_crashes_on_one_image"

    def images(self, batch):
        if len(batch) == 1:
            raise RuntimeError("expected more than 1 value per channel")
        return batch.inputs


class EightBitOnly(FlipAverage):
    """Refuses target images that are not uint8 (as MEMO does), so no NaN can reach it."""

    name = "contract_eight_bit_only"

    def prepare(self, task):
        dtype = np.asarray(task.target.inputs(np.arange(1))).dtype
        if dtype != np.uint8:
            raise ShiftbenchError(f"{self.name} takes 8-bit images; the target inputs are {dtype} arrays")
        super().prepare(task)


class RefusesFloatWithNaN(FlipAverage):
    """Refuses float images only when they hold NaN, without saying so: not a format it refuses outright."""

    name = "contract_refuses_odd_floats"

    def prepare(self, task):
        raw = np.asarray(task.target.inputs())
        if raw.dtype != np.uint8 and np.isnan(raw).any():
            raise ShiftbenchError(f"{self.name}: unsupported target images")
        super().prepare(task)


class NeverApplicable(Sharpen):
    name = "contract_never_applicable"

    def not_applicable(self, model, data):
        return f"it needs a model called 'imagenet'; this one is {model.name!r}"


def test_an_image_method_runs_every_check_on_the_image_task():
    results = check_method(FlipAverage)
    assert [r.status for r in results] == ["passed"] * len(CHECKS), results
    assert ContractImageDataset().splits["test"].x.dtype == np.uint8


@pytest.mark.parametrize("plugin,check,says", [
    (UnseededFlips, "determinism", "random_state"), (ZeroesNaNPixels, "nan_inputs", "without an error"),
    (CrashesOnOneImage, "batch_size_1", "expected more than 1 value per channel"),
    (RefusesFloatWithNaN, "nan_inputs", "unsupported target images")])
def test_each_check_catches_its_flaw_on_the_image_task(plugin, check, says):
    result = check_method(plugin, [check])[0]
    assert result.status == "failed", result
    assert says in result.message


def test_a_method_refusing_float_images_outright_skips_the_nan_check_saying_why():
    result = check_method(EightBitOnly, ["nan_inputs"])[0]
    assert result.status == "skipped"
    assert "refuses float32 target images even without NaN" in result.message and "uint8" not in result.message
    assert "takes 8-bit images; the target inputs are float32 arrays" in result.message
    assert [r.status for r in check_method(EightBitOnly, ["determinism", "batch_size_1"])] == ["passed", "passed"]


def test_a_method_applicable_to_no_contract_task_skips_the_behavioural_checks_saying_why():
    results = {r.check: r for r in check_method(NeverApplicable)}
    behavioural = {"determinism", "no_target_labels", "batch_size_1", "nan_inputs"}
    assert {c for c, r in results.items() if r.status == "skipped"} == behavioural
    for check in behavioural:
        message = results[check].message
        assert "tabular task (contract_mlp)" in message and "image task (contract_cnn)" in message
        assert "needs a model called 'imagenet'" in message


@pytest.fixture
def leaky_views(monkeypatch):
    """The harness with a back door the real one does not have: label-free views carry the labels as ``leaked_y``."""
    label_free = Dataset.label_free

    def leaky(self, split):
        view = label_free(self, split)
        view.leaked_y = split.y
        return view

    monkeypatch.setattr(Dataset, "label_free", leaky)


@pytest.mark.parametrize("plugin,check,says", [
    (Unseeded, "determinism", "random_state"),
    (Peeking, "no_target_labels", "reads target labels"), (SwallowsNaN, "nan_inputs", "NaN"), (CrashesOnOne, "batch_size_1", "index 1 is out of bounds"),
    (GridNotDeclared, "hyperparameters", "['temperature']"), (InvalidGridValue, "hyperparameters", "power"),
    (InvalidDefault, "hyperparameters", "default of 'power'"), (ForgetsParams, "hyperparameters", "get_params"),
    (OwnInit, "interface", "declare the hyperparameters"), (OverridesRun, "interface", "prepare(task)"),
    (OldHook, "interface", "adapt -> process(batch)"), (TupleGrid, "config_roundtrip", "JSON")])
def test_each_check_catches_its_flaw(plugin, check, says, leaky_views):
    result = check_method(plugin, [check])[0]
    assert result.status == "failed", result
    assert says in result.message
    assert check_method(Sharpen, [check])[0].status == "passed"


@pytest.mark.parametrize("plugin", [OwnInit, OverridesRun, OldHook, GridNotDeclared, InvalidGridValue])
def test_a_broken_rule_is_one_line_saying_how_to_fix_it(plugin):
    message = next(r.message for r in check_method(plugin, ["interface", "hyperparameters"]) if r.status == "failed")
    assert "\n" not in message and (plugin.__qualname__ in message or plugin.name in message)


def test_an_invalid_grid_value_names_the_hyperparameter_and_the_value():
    message = check_method(InvalidGridValue, ["hyperparameters"])[0].message
    assert "power must be a finite number > 0; got -0.5" in message and '{"power": -0.5}' in message


def test_an_explained_refusal_of_batch_size_1_is_allowed():
    assert check_method(RefusesOne, ["batch_size_1"])[0].status == "passed"


def test_unknown_check_is_a_clear_error():
    with pytest.raises(ShiftbenchError, match="valid: interface"):
        check_method(Sharpen, ["speed"])


def test_cli_check_method(capsys):
    assert main(["check-method", "source_only"]) == 0
    out = capsys.readouterr().out
    assert "PASS  determinism" in out and "PASS  hyperparameters" in out and "7/7 checks" in out
    with methods.registry.temporarily(CrashesOnOne):
        assert main(["check-method", CrashesOnOne.name, "--check", "batch_size_1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  batch_size_1" in out and "crashed with RuntimeError: index 1 is out of bounds" in out
