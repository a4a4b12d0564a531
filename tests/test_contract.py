"""The plugin contract: every registered method passes it, and each check catches the flaw it names."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench import methods
from shiftbench.arrays import check_probs
from shiftbench.cli import main
from shiftbench.contract import CHECKS, check_method
from shiftbench.dataset import Dataset
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter, OutputAdapter
from shiftbench.hyperparameters import Float, Hyperparameter

#: plugins whose contract run takes tens of seconds on two cores (they train or solve something per run)
SLOW = {"label_shift_adapter", "dwgcs", "mcbpe"}


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
