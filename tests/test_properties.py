"""Property-based tests (hypothesis) of the public function API.

Each test draws valid inputs of random shapes and dtypes (float32, float64, integer, torch), then
either leaves them valid or spoils exactly one argument (NaN, inf, object dtype, wrong shape, values
out of range, a wrong hyperparameter type). The contract checked:

- a spoilt argument raises a :class:`ShiftbenchError` whose message names that argument;
- valid, empty and single-row inputs give a correct result (checked by cheap mathematical
  properties, never NaN) or a :class:`ShiftbenchError` naming one of the call's arguments;
- nothing else: any other exception type fails the test.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shiftbench.corruptions import corrupt
from shiftbench.errors import ShiftbenchError
from shiftbench.methods.cbpe import CBPE
from shiftbench.methods.double_weighting import DoubleWeighting
from shiftbench.methods.label_shift import bbse_weights, em_prior
from shiftbench.methods.lame import lame

settings.register_profile("properties", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROPERTIES = settings.get_profile("properties")

#: a mutation: (argument name, function of the valid value giving an invalid one)
Mutation = tuple[str, Callable[[Any], Any]]


# ----------------------------------------------------------------------------- helpers


def names(exc: BaseException, argument: str) -> bool:
    """Whether the message of ``exc`` mentions ``argument`` as a word."""
    return re.search(rf"(?<![\w]){re.escape(argument)}(?![\w])", str(exc)) is not None


def outcome(call: Callable[[], Any], arguments: Sequence[str], spoilt: str | None) -> Any:
    """Run ``call``; return its result, or None after a ShiftbenchError naming the right argument.

    With ``spoilt`` set the call must raise, naming it; otherwise a ShiftbenchError is allowed but
    must name one of ``arguments``. Any other exception propagates (and fails the test).
    """
    if spoilt is not None:
        with pytest.raises(ShiftbenchError) as info:
            call()
        assert names(info.value, spoilt), f"message does not name {spoilt!r}: {info.value}"
        event(f"{spoilt} spoilt: raised")
        return None
    try:
        result = call()
    except ShiftbenchError as exc:
        assert any(names(exc, a) for a in arguments), f"message names none of {list(arguments)}: {exc}"
        event(f"valid input: raised {str(exc)[:40]}")
        return None
    event("valid input: result checked")
    return result


def size(rng: np.random.Generator, largest: int) -> int:
    """A row count, uniform in 0..largest (hypothesis' own integers would mostly be the edge cases 0 and 1)."""
    return int(rng.integers(0, largest + 1))


def as_kind(a: np.ndarray, kind: str) -> Any:
    """``a`` as float64, float32, integers (values must already be integral) or a torch tensor."""
    return {"float64": lambda: a.astype(np.float64), "float32": lambda: a.astype(np.float32),
            "int": lambda: a.astype(np.int64), "torch": lambda: torch.as_tensor(a, dtype=torch.float32)}[kind]()


def random_probs(rng: np.random.Generator, n: int, k: int, kind: str) -> Any:
    """(n, k) probabilities: Dirichlet rows, or one-hot rows for the integer kind."""
    if kind == "int":
        return np.eye(k, dtype=np.int64)[rng.integers(0, k, n)]
    return as_kind(rng.dirichlet(np.full(k, 0.5), size=n), kind)


def with_value(a: Any, value: float) -> np.ndarray:
    """A float copy of ``a`` with ``value`` in its last entry."""
    out = np.array(np.asarray(a), dtype=np.float64)
    out.reshape(-1)[-1] = value
    return out


def as_strings(a: Any) -> np.ndarray:
    """``a`` as an object array of strings."""
    return np.asarray(a).astype(str).astype(object)


#: spoil any numeric array argument
ARRAY_MUTATIONS: list[tuple[str, Callable[[Any], Any]]] = [
    ("nan", lambda a: with_value(a, np.nan)),
    ("inf", lambda a: with_value(a, np.inf)),
    ("-inf", lambda a: with_value(a, -np.inf)),
    ("object", as_strings),
    ("3-D", lambda a: np.asarray(a)[None]),
]
#: spoil probabilities, a matrix or (CBPE) a 1-D binary score (beyond ARRAY_MUTATIONS)
SCORE_MUTATIONS = ARRAY_MUTATIONS + [
    ("logits", lambda a: np.log(np.asarray(a, dtype=np.float64) + 1e-3) - 1.0),
    ("above one", lambda a: np.asarray(a, dtype=np.float64) + 1.1),
]
#: spoil a probability matrix
PROBS_MUTATIONS = SCORE_MUTATIONS + [
    ("unnormalised", lambda a: np.asarray(a, dtype=np.float64) * 0.5),
    ("1-D", lambda a: np.asarray(a)[0]),
]
#: spoil a label vector
LABEL_MUTATIONS: list[tuple[str, Callable[[Any], Any]]] = [
    ("fractional", lambda y: np.asarray(y) + 0.5),
    ("negative", lambda y: np.asarray(y) - np.asarray(y).max() - 1),
    ("nan", lambda y: with_value(y, np.nan)),
    ("object", as_strings),
    ("2-D", lambda y: np.asarray(y)[:, None]),
    ("short", lambda y: np.asarray(y)[:-1]),
]
#: spoil a hyperparameter that must be a positive integer
POSITIVE_INT_MUTATIONS: list[Callable[[Any], Any]] = [
    lambda v: 0, lambda v: -3, lambda v: 2.7, lambda v: "a", lambda v: True, lambda v: None, lambda v: float("nan"),
]


@st.composite
def mutation(draw: st.DrawFn, table: dict[str, list[Callable[[Any], Any]]], enabled: bool = True) -> Mutation | None:
    """None (keep every argument valid) or one (argument, spoiler) drawn from ``table``."""
    if not enabled or draw(st.booleans()):
        return None
    argument = draw(st.sampled_from(sorted(table)))
    return argument, draw(st.sampled_from(table[argument]))


def apply(args: dict[str, Any], spoil: Mutation | None) -> tuple[dict[str, Any], str | None]:
    """``args`` with the spoilt argument replaced, and that argument's name (None if none)."""
    if spoil is None:
        return args, None
    name, spoiler = spoil
    return {**args, name: spoiler(args[name])}, name


def fns(mutations: list[tuple[str, Callable[[Any], Any]]]) -> list[Callable[[Any], Any]]:
    """The spoilers of a named mutation list (the names document what each one does)."""
    return [f for _, f in mutations]


def assert_probability_rows(p: np.ndarray, n: int, k: int, atol: float = 1e-4) -> None:
    assert p.shape == (n, k)
    assert np.isfinite(p).all()
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=atol)


# ----------------------------------------------------------------------------- lame


LAME_MUTATIONS = {
    "probs": fns(PROBS_MUTATIONS),
    "feats": fns(ARRAY_MUTATIONS) + [lambda f: np.asarray(f)[:-1]],
    "affinity": [lambda v: "cosine", lambda v: None, lambda v: ["knn"], lambda v: 1],
    "k": POSITIVE_INT_MUTATIONS,
    "max_iter": POSITIVE_INT_MUTATIONS,
}


@PROPERTIES
@given(st.data())
def test_lame_gives_probability_rows_or_names_the_argument(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, k, d = size(rng, 12), data.draw(st.integers(2, 5)), data.draw(st.integers(1, 6))
    feats = rng.integers(-2, 3, (n, d)) if data.draw(st.booleans()) else rng.normal(size=(n, d))  # ties or not
    args = {"probs": random_probs(rng, n, k, data.draw(st.sampled_from(["float64", "float32", "int", "torch"]))),
            "feats": as_kind(feats, data.draw(st.sampled_from(["float64", "float32", "int", "torch"]))),
            "affinity": (affinity := data.draw(st.sampled_from(["knn", "rbf", "linear"]))),
            "k": data.draw(st.integers(2 if affinity == "rbf" else 1, 7)),  # rbf with k=1: tests/test_tta_lame.py
            "max_iter": data.draw(st.integers(1, 50))}
    args, spoilt = apply(args, data.draw(mutation(LAME_MUTATIONS, enabled=n >= 2)))
    out = outcome(lambda: lame(**args), list(args), spoilt)
    if out is not None:
        assert_probability_rows(out, n, k)


# ----------------------------------------------------------------------------- label shift


EM_MUTATIONS = {
    "target_probs": fns(PROBS_MUTATIONS),
    "source_prior": fns(ARRAY_MUTATIONS) + [
        lambda s: np.asarray(s)[:-1], lambda s: with_value(s, 0.0), lambda s: with_value(s, -0.5),
        lambda s: ["a"] * len(s), lambda s: np.asarray(s)[:, None]],
    "tol": [lambda v: -1.0, lambda v: float("nan"), lambda v: "a", lambda v: None],
    "max_iter": POSITIVE_INT_MUTATIONS,
}


@PROPERTIES
@given(st.data())
def test_em_prior_gives_a_probability_vector_or_names_the_argument(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, k = size(rng, 30), data.draw(st.integers(2, 5))
    prior = rng.dirichlet(np.full(k, 2.0))
    args = {"target_probs": random_probs(rng, n, k, data.draw(st.sampled_from(["float64", "float32", "int", "torch"]))),
            "source_prior": data.draw(st.sampled_from([prior, prior.astype(np.float32), list(prior)])),
            "tol": data.draw(st.sampled_from([1e-6, 1e-3, 0.0])), "max_iter": data.draw(st.integers(1, 100))}
    args, spoilt = apply(args, data.draw(mutation(EM_MUTATIONS, enabled=n >= 2)))
    out = outcome(lambda: em_prior(**args), list(args), spoilt)
    if out is not None:
        assert_probability_rows(np.asarray(out)[None], 1, k, atol=1e-5)


BBSE_MUTATIONS = {
    "source_probs": fns(PROBS_MUTATIONS),
    "source_labels": fns(LABEL_MUTATIONS) + [lambda y: np.asarray(y) * 0 + 99],
    "target_probs": fns(PROBS_MUTATIONS) + [lambda p: np.asarray(p)[:, :-1] / np.asarray(p)[:, :-1].sum(1, keepdims=True)],
    "soft": [lambda v: "yes", lambda v: 1, lambda v: None],
}


@PROPERTIES
@given(st.data())
def test_bbse_weights_are_non_negative_with_a_target_prior_or_name_the_argument(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, m, k = size(rng, 40), size(rng, 20), data.draw(st.integers(2, 4))
    source = rng.dirichlet(np.full(k, 0.3), size=n)
    labels = np.array([rng.choice(k, p=row) for row in source], dtype=np.int64)  # calibrated labels
    kind = data.draw(st.sampled_from(["float64", "float32", "torch"]))
    args = {"source_probs": as_kind(source, kind),
            "source_labels": data.draw(st.sampled_from([labels, labels.astype(np.float64), labels.tolist()])),
            "target_probs": random_probs(rng, m, k, data.draw(st.sampled_from(["float64", "float32", "int"]))),
            "soft": data.draw(st.booleans())}
    args, spoilt = apply(args, data.draw(mutation(BBSE_MUTATIONS, enabled=n >= 2 and m >= 2)))
    w = outcome(lambda: bbse_weights(**args), list(args), spoilt)
    if w is not None:
        assert w.shape == (k,) and np.isfinite(w).all() and (w >= 0).all()
        # sum_i (C w)_i = sum_j w_j prior_j = 1 before negative weights are clipped to zero (which only adds mass)
        target_prior = w * np.bincount(labels, minlength=k) / n
        assert target_prior.sum() >= 1 - 1e-6
        if (w > 0).all():
            assert target_prior.sum() == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- corruptions


#: a few fast corruptions and two slower ones (32 px images keep all of them cheap)
CORRUPTION_NAMES = ["brightness", "contrast", "gaussian_noise", "impulse_noise", "pixelate", "jpeg_compression",
                    "saturate", "glass_blur", "frost"]
CORRUPT_MUTATIONS = {
    "images": [lambda x: np.asarray(x).astype(np.float32), lambda x: np.asarray(x).astype(np.int64),
               lambda x: np.asarray(x).astype(bool), as_strings, lambda x: np.asarray(x)[:16, :16],
               lambda x: np.asarray(x).reshape(-1), lambda x: np.asarray(x)[None, None],
               lambda x: np.zeros((1, 32, 32, 4), np.uint8), lambda x: np.zeros((32, 32, 2), np.uint8)],
    "name": [lambda v: "blurry", lambda v: None, lambda v: ["contrast"], lambda v: 3],
    "severity": [lambda v: 0, lambda v: 6, lambda v: 2.0, lambda v: True, lambda v: "3", lambda v: None],
    "preset": [lambda v: "svhn", lambda v: None, lambda v: ["cifar"]],
    "seed": [lambda v: "a", lambda v: 1.5, lambda v: None, lambda v: -1, lambda v: float("nan")],
}


@PROPERTIES
@given(st.data())
def test_corrupt_keeps_shape_and_uint8_or_names_the_argument(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    h, w = data.draw(st.integers(32, 36)), data.draw(st.integers(32, 36))
    shape = data.draw(st.sampled_from([(h, w, 3), (h, w, 1), (h, w), (1, h, w, 3), (2, h, w, 1), (2, h, w), (0, h, w, 3)]))
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    args = {"images": torch.as_tensor(images) if data.draw(st.booleans()) else images,
            "name": data.draw(st.sampled_from(CORRUPTION_NAMES)),
            "severity": data.draw(st.sampled_from([1, 3, 5, np.int64(2)])),
            "preset": data.draw(st.sampled_from(["imagenet", "cifar"])),
            "seed": data.draw(st.sampled_from([0, 7, np.int64(3)]))}
    args, spoilt = apply(args, data.draw(mutation(CORRUPT_MUTATIONS)))
    out = outcome(lambda: corrupt(**args), list(args), spoilt)
    if out is not None:
        assert out.shape == shape and out.dtype == np.uint8


# ----------------------------------------------------------------------------- CBPE


CBPE_MUTATIONS = {
    "metrics": [lambda v: "nope", lambda v: (), lambda v: ("accuracy", 3)],
    "reference_proba": fns(SCORE_MUTATIONS),
    "reference_y": fns(LABEL_MUTATIONS) + [lambda y: np.asarray(y) * 0 + 9],
    "reference_pred": [lambda p: np.zeros(1000, np.int64), lambda p: "a", lambda p: np.full((2, 2), 0.5)],
    "proba": fns(SCORE_MUTATIONS) + [lambda p: np.full((len(p), 4), 0.25)],
    "pred": [lambda p: np.zeros(1, np.int64), lambda p: np.full(3, 9), lambda p: "a"],
    "chunk_size": [lambda v: 0, lambda v: -3, lambda v: 2.7, lambda v: "a", lambda v: True, lambda v: float("nan")],
}


CBPE_FIT_ARGUMENTS = ["metrics", "reference_proba", "reference_y", "reference_pred"]


def undefined_roc_auc(q: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    """Per chunk, whether its estimated ROC AUC is undefined: some score column's calibrated positive mass
    (or negative mass), rounded to 5 decimals as NannyML rounds it, is zero."""
    cols = [1] if q.shape[1] == 2 else list(range(q.shape[1]))
    mass = np.array([q[idx][:, cols].sum(0) for idx in members])
    sizes = np.array([len(idx) for idx in members])[:, None]
    return ((np.round(mass, 5) == 0) | (np.round(sizes - mass, 5) == 0)).any(1)


@PROPERTIES
@given(st.data())
def test_cbpe_estimates_lie_in_0_1_or_name_the_argument(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, m, k = size(rng, 80), size(rng, 40), data.draw(st.integers(2, 3))
    binary_scores = k == 2 and data.draw(st.booleans())
    ref, target = rng.dirichlet(np.full(k, 0.7), size=n), rng.dirichlet(np.full(k, 0.7), size=m)
    y = np.array([rng.choice(k, p=row) for row in ref], dtype=np.int64)
    fit = {"metrics": data.draw(st.sampled_from([("accuracy", "f1", "roc_auc"), ("precision", "recall"), "accuracy"])),
           "reference_proba": ref[:, 1] if binary_scores else as_kind(ref, data.draw(st.sampled_from(["float64", "float32"]))),
           "reference_y": y, "reference_pred": data.draw(st.sampled_from([None, ref.argmax(1)])),
           "proba": target[:, 1] if binary_scores else target, "pred": data.draw(st.sampled_from([None, target.argmax(1)])),
           "chunk_size": data.draw(st.sampled_from([None, 1, 7, 50]))}
    args, spoilt = apply(fit, data.draw(mutation(CBPE_MUTATIONS, enabled=n >= 2 and m >= 2)))
    # a spoilt estimate argument is only reached when the (valid) reference fits
    cbpe = outcome(lambda: CBPE(args["metrics"]).fit(args["reference_proba"], args["reference_y"], args["reference_pred"]),
                   CBPE_FIT_ARGUMENTS, spoilt if spoilt in CBPE_FIT_ARGUMENTS else None)
    if cbpe is None:
        return
    table = outcome(lambda: cbpe.estimate(args["proba"], args["pred"], chunk_size=args["chunk_size"]),
                    ["proba", "pred", "chunk_size"], spoilt)
    if table is None:
        return
    metrics = (fit["metrics"],) if isinstance(fit["metrics"], str) else fit["metrics"]
    chunk = fit["chunk_size"] or m
    assert list(table["n"]) == [min(chunk, m - s) for s in range(0, m, chunk)]
    undefined = undefined_roc_auc(cbpe.calibrate(fit["proba"]), [np.arange(s, min(s + chunk, m)) for s in range(0, m, chunk)])
    for metric in metrics:
        values = table[metric].to_numpy()
        defined = ~undefined if metric == "roc_auc" else np.ones(len(values), bool)
        assert np.isfinite(values[defined]).all() and np.isnan(values[~defined]).all(), metric
        assert ((values[defined] >= 0) & (values[defined] <= 1)).all(), metric
        lower, upper = table[f"{metric}_lower"].to_numpy(), table[f"{metric}_upper"].to_numpy()
        assert np.isfinite(lower).all() and np.isfinite(upper).all() and (0 <= lower).all() and (upper <= 1).all()


# ----------------------------------------------------------------------------- double weighting


DW_MUTATIONS = {
    "X_source": fns(ARRAY_MUTATIONS),
    "y_source": fns(LABEL_MUTATIONS),
    "X_target": fns(ARRAY_MUTATIONS) + [lambda x: np.asarray(x)[:, :-1], lambda x: np.asarray(x)[:, :0]],
    "D": [lambda v: 0.5, lambda v: "x", lambda v: float("nan"), lambda v: float("inf"), lambda v: True, lambda v: None],
    "loss": [lambda v: "hinge", lambda v: None, lambda v: ["log"]],
    "sigma": [lambda v: 0.0, lambda v: -1.0, lambda v: float("nan"), lambda v: "a"],
}


@PROPERTIES
@given(st.data())
def test_double_weighting_fit_gives_probability_rules_or_names_the_argument(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n, t, d = size(rng, 10), size(rng, 8), data.draw(st.integers(1, 3))
    y = rng.integers(0, data.draw(st.integers(1, 3)), n)
    kind = data.draw(st.sampled_from(["float64", "float32", "torch"]))
    args = {"X_source": as_kind(rng.normal(size=(n, d)), kind), "y_source": y,
            "X_target": as_kind(rng.normal(0.5, 1.0, size=(t, d)), kind),
            "D": data.draw(st.sampled_from([1.0, 4.0, 2])), "loss": data.draw(st.sampled_from(["0-1", "log"])),
            "sigma": data.draw(st.sampled_from([None, 0.5, 2.0]))}
    args, spoilt = apply(args, data.draw(mutation(DW_MUTATIONS, enabled=n >= 2 and t >= 2)))

    def run() -> DoubleWeighting:
        model = DoubleWeighting(D=args["D"], loss=args["loss"], sigma=args["sigma"])
        return model.fit(args["X_source"], args["y_source"], args["X_target"])

    model = outcome(run, list(args), spoilt)
    if model is not None:
        k = int(y.max()) + 1
        assert np.isfinite(model.beta_).all() and (model.beta_ >= 0).all()
        assert np.isfinite(model.alpha_).all() and ((model.alpha_ >= 0) & (model.alpha_ <= 1)).all()
        assert np.isfinite(model.risk_)
        assert_probability_rows(model.predict_proba(args["X_target"]), t, k, atol=1e-6)
        pred = model.predict(args["X_target"])
        assert pred.shape == (t,) and ((pred >= 0) & (pred < k)).all()
