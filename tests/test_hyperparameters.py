"""Hyperparameter declarations: one declaration gives a plugin its keyword arguments, defaults, validation,
signature and get_params, and subclasses extend it."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, OutputAdapter
from shiftbench.hyperparameters import Bool, Choice, Float, Int


class Scaled(OutputAdapter):
    name = "test_scaled"
    hyperparameters = {"power": Float(1.0, above=0), "mode": Choice("plain", ("plain", "sharp")), "steps": Int(1)}

    @classmethod
    def check_together(cls, values: dict) -> None:
        if values["mode"] == "plain" and values["steps"] > 1:
            raise ShiftbenchError("test_scaled: steps > 1 needs mode='sharp'")

    def process(self, batch: Batch) -> np.ndarray:
        p = batch.probs ** self.power
        return p / p.sum(1, keepdims=True)


class ScaledTwice(Scaled):
    name = "test_scaled_twice"
    hyperparameters = {"power": Float(2.0, above=0), "renormalise": Bool(True)}


def test_the_declaration_gives_defaults_signature_and_params_in_declaration_order():
    assert Scaled.default_hyperparameters() == {"power": 1.0, "mode": "plain", "steps": 1}
    assert str(inspect.signature(Scaled)) == "(power=1.0, mode='plain', steps=1)"
    m = Scaled(0.5, steps=1, mode="sharp")  # positional arguments bind in declaration order
    assert m.get_params() == {"power": 0.5, "mode": "sharp", "steps": 1}
    assert type(m)(**m.get_params()).get_params() == m.get_params()


def test_a_subclass_extends_and_overrides_its_bases_declaration():
    assert ScaledTwice.default_hyperparameters() == {"power": 2.0, "mode": "plain", "steps": 1, "renormalise": True}
    assert list(ScaledTwice.declared()) == ["power", "mode", "steps", "renormalise"]
    assert Scaled.default_hyperparameters()["power"] == 1.0  # the base's declaration is untouched


@pytest.mark.parametrize("given,message", [
    ({"power": 0}, r"test_scaled: power must be a finite number > 0; got 0 \(int\)"),
    ({"power": True}, r"power must be a finite number > 0; got True \(bool\)"),
    ({"mode": "blunt"}, r"test_scaled: unknown mode 'blunt'; valid: plain, sharp"),
    ({"steps": 2.0}, r"steps must be an integer >= 1; got 2.0 \(float\)"),
    ({"mode": "plain", "steps": 3}, r"steps > 1 needs mode='sharp'"),
    ({"powr": 2}, r"method 'test_scaled' has no hyperparameter powr; its hyperparameters: power, mode, steps"),
])
def test_bad_values_are_one_line_errors_when_built_and_when_checked_up_front(given, message):
    with pytest.raises(ShiftbenchError, match=message) as built:
        Scaled(**given)
    assert "\n" not in str(built.value)
    with pytest.raises(ShiftbenchError, match=message):
        Scaled.check_setting(given)  # the same check, without building the method


def test_positional_misuse_is_refused():
    with pytest.raises(ShiftbenchError, match="at most 3 positional"):
        Scaled(1.0, "plain", 1, 4)
    with pytest.raises(ShiftbenchError, match="power given both by position and by name"):
        Scaled(1.0, power=2.0)


def test_check_setting_fills_in_the_defaults():
    assert Scaled.check_setting({"power": 3.0}) == {"power": 3.0, "mode": "plain", "steps": 1}


@pytest.mark.parametrize("declaration,text", [
    (Float(None, above=0, at_most=1, allow_none=True), "number > 0 and <= 1 or None"),
    (Float(1.0), "number"),
    (Float("auto", at_least=1, words=("auto",)), "number >= 1 or 'auto'"),
    (Int(5, at_least=2), "integer >= 2"),
    (Bool(False), "true or false"),
    (Choice("a", ("a", "b")), "one of a, b"),
])
def test_each_declaration_says_what_values_it_takes(declaration, text):
    assert declaration.describe() == text


def test_a_word_or_a_number_where_a_float_takes_words():
    auto = Float("auto", at_least=1, words=("auto",))
    assert auto.check("auto", "D", "x") == "auto" and auto.check(4.0, "D", "x") == 4.0
    with pytest.raises(ShiftbenchError, match="unknown D 'automatic'"):
        auto.check("automatic", "D", "x")
    with pytest.raises(ShiftbenchError, match="D must be a finite number >= 1"):
        auto.check(0.5, "D", "x")


def test_process_answers_from_the_declared_hyperparameters():
    probs = np.array([[0.6, 0.4], [0.2, 0.8]])
    sharp = Scaled(power=2.0).process(Batch.from_arrays(probs=probs))
    np.testing.assert_allclose(sharp, [[0.36 / 0.52, 0.16 / 0.52], [0.04 / 0.68, 0.64 / 0.68]])
