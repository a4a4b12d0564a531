"""The plugin contract: every registered method passes it, and each check catches the flaw it names."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench import methods
from shiftbench.arrays import check_probs
from shiftbench.cli import main
from shiftbench.contract import CHECKS, check_method
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter, OutputAdapter

#: plugins whose contract run takes tens of seconds on two cores (they train or solve something per run)
SLOW = {"label_shift_adapter", "dwgcs", "mcbpe"}


def _params():
    # the plugins shipped in methods/ (test modules register their own stand-ins by hand; they are not plugins)
    shipped = {n: c for n, c in methods.registry.scan_all().items() if c.__module__.startswith("shiftbench.methods.")}
    for name in shipped:
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", _params())
def test_registered_method_passes_the_contract(name):
    results = {r.check: r for r in check_method(methods.registry.get(name))}
    assert set(results) == set(CHECKS)
    failed = {c: r.message for c, r in results.items() if r.status == "failed"}
    assert not failed, "\n".join(f"{c}: {m}" for c, m in failed.items())


# --- plugins that break one rule each: the contract must catch them ---------------------------------------


class Sharpen(OutputAdapter):
    """A correct output adapter the broken ones below derive from."""

    name = "contract_sharpen"
    grid = {"power": [1.0, 2.0]}

    def __init__(self, power: float = 1.0):
        self.power = power

    def adapt(self, probs, feats):
        p = check_probs(probs) ** self.power
        return p / p.sum(1, keepdims=True)


class Unseeded(Sharpen):
    name = "contract_unseeded"

    def adapt(self, probs, feats):
        noisy = super().adapt(probs, feats) + np.random.default_rng().random(probs.shape)  # fresh entropy each call
        return noisy / noisy.sum(1, keepdims=True)


class Peeking(Sharpen):
    """Reads the target labels through the split behind the label-free view (a harness back door)."""

    name = "contract_peeking"

    def run(self, task):
        y = task.target._inputs.__self__.y
        return np.eye(task.n_classes)[y]


class SwallowsNaN(DomainAdapter):
    """Replaces NaN by zeros silently."""

    name = "contract_swallows_nan"

    def fit(self, X_source, y_source, X_target):
        self.k = int(np.max(y_source)) + 1
        return self

    def predict_proba(self, X_target):
        X = np.nan_to_num(np.asarray(X_target, dtype=float))
        return np.full((len(X), self.k), 1.0 / self.k)


class CrashesOnOne(Sharpen):
    name = "contract_crashes_on_one"

    def adapt(self, probs, feats):
        if len(probs) == 1:
            raise RuntimeError("index 1 is out of bounds")
        return super().adapt(probs, feats)


class RefusesOne(Sharpen):
    name = "contract_refuses_one"

    def adapt(self, probs, feats):
        if len(probs) == 1:
            raise ShiftbenchError(f"{self.name} needs batches of at least 2 examples")
        return super().adapt(probs, feats)


class GridNotInInit(Sharpen):
    name = "contract_grid_not_in_init"
    grid = {"temperature": [1.0]}


class NotStored(Sharpen):
    name = "contract_not_stored"

    def __init__(self, power: float = 1.0):
        self._p = power


class TupleGrid(Sharpen):
    name = "contract_tuple_grid"
    grid = {"power": [(1.0, 2.0)]}


@pytest.mark.parametrize("plugin,check", [
    (Unseeded, "determinism"), (Peeking, "no_target_labels"), (SwallowsNaN, "nan_inputs"),
    (CrashesOnOne, "batch_size_1"), (GridNotInInit, "interface"), (NotStored, "interface"),
    (TupleGrid, "config_roundtrip")])
def test_each_check_catches_its_flaw(plugin, check):
    result = check_method(plugin, [check])[0]
    assert result.status == "failed", result
    assert check_method(Sharpen, [check])[0].status == "passed"


def test_an_explained_refusal_of_batch_size_1_is_allowed():
    assert check_method(RefusesOne, ["batch_size_1"])[0].status == "passed"


def test_unknown_check_is_a_clear_error():
    with pytest.raises(ShiftbenchError, match="valid: interface"):
        check_method(Sharpen, ["speed"])


def test_cli_check_method(capsys):
    assert main(["check-method", "source_only"]) == 0
    out = capsys.readouterr().out
    assert "PASS  determinism" in out and "6/6 checks" in out
    if CrashesOnOne.name not in methods.registry.names():
        methods.registry.register(CrashesOnOne)
    assert main(["check-method", CrashesOnOne.name, "--check", "batch_size_1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  batch_size_1" in out and "crashed with RuntimeError: index 1 is out of bounds" in out
