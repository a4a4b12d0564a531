"""CBPE estimation time: shiftbench's vectorised CBPE against NannyML's CBPE on the same chunks.

Both get the same reference and analysis scores and chunk size, estimate accuracy, precision,
recall, F1 and ROC AUC, and their per-chunk estimates are checked to be identical (max abs diff).
Synthetic cases time fit and estimate apart; the census case times them together: the census_employment
source model's scores on ``id_val`` (reference) and on ``test`` in 30 chunks, the thirds of each age decile
(the performance_estimation experiment chunks ``test`` by age decile), given to NannyML as daily periods;
estimated in one call, and in 30 calls of one chunk each after one fit (as the runner streams chunks).
Run: ``.venv/bin/python benchmarks/bench_cbpe.py`` (needs ``nannyml`` and ``statsmodels``).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Callable

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shiftbench.methods.cbpe import CBPE  # noqa: E402

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]


def best_of(fn: Callable[[], object], repeats: int = 3) -> tuple[float, object]:
    """Fastest wall time of ``repeats`` calls and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def scores(n: int, k: int, seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax scores and labels drawn from a sharpened version of them (so calibration is needed)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    truth = p ** 1.5 / (p ** 1.5).sum(1, keepdims=True)
    return p, (truth.cumsum(1) > rng.random((n, 1))).argmax(1)


def frames(p: np.ndarray, y: np.ndarray | None) -> tuple[pd.DataFrame, dict | str]:
    """NannyML's input layout: score column(s), prediction and (reference) label."""
    if p.shape[1] == 2:
        df, cols = pd.DataFrame({"p": p[:, 1], "pred": p.argmax(1)}), "p"
    else:
        cols = {c: f"p{c}" for c in range(p.shape[1])}
        df = pd.DataFrame({f"p{c}": p[:, c] for c in range(p.shape[1])}).assign(pred=p.argmax(1))
    return (df.assign(y=y) if y is not None else df), cols


def run_case(n_ref: int, n_an: int, k: int, chunk_size: int) -> dict:
    import nannyml as nml

    p_ref, y_ref = scores(n_ref, k, 0, 2.0)
    p_an, _ = scores(n_an, k, 1, 2.5)
    ref_df, cols = frames(p_ref, y_ref)
    an_df, _ = frames(p_an, None)
    problem = "classification_binary" if k == 2 else "classification_multiclass"

    def theirs_fit():
        return nml.CBPE(metrics=METRICS, y_pred_proba=cols, y_pred="pred", y_true="y", problem_type=problem,
                        chunk_size=chunk_size).fit(ref_df)

    def ours_fit():
        return CBPE(metrics=METRICS).fit(p_ref, y_ref)

    t_fit_theirs, est_theirs = best_of(theirs_fit, 1)
    t_fit_ours, est_ours = best_of(ours_fit)
    t_theirs, res_theirs = best_of(lambda: est_theirs.estimate(an_df).filter(period="analysis").to_df(), 2)
    t_ours, res_ours = best_of(lambda: est_ours.estimate(p_an, chunk_size=chunk_size))
    diff = max(float(np.max(np.abs(res_ours[m].to_numpy() - res_theirs[(m, "value")].to_numpy(float))))
               for m in METRICS)
    return {"classes": k, "n_ref": n_ref, "n_analysis": n_an, "chunks": len(res_ours),
            "fit_nannyml_s": t_fit_theirs, "fit_ours_s": t_fit_ours, "fit_ratio": t_fit_theirs / t_fit_ours,
            "estimate_nannyml_s": t_theirs, "estimate_ours_s": t_ours, "estimate_ratio": t_theirs / t_ours,
            "max_abs_diff": diff}


def census_scores() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference scores and labels (``id_val``), analysis scores (``test``) and their 30 chunk labels."""
    import tempfile
    from pathlib import Path

    from shiftbench.datasets import load
    from shiftbench.models.tabular import TabularLogistic

    census = load("census_employment")
    with tempfile.TemporaryDirectory() as cache:
        model = TabularLogistic().build(census, 0, Path(cache))
    reference, test = census.split("id_val"), census.split("test")

    def probs(x: np.ndarray) -> np.ndarray:
        logits = np.asarray(model.forward_arrays(x)["logits"], np.float64)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    deciles = test.metadata["age_decile"].to_numpy()
    order = np.argsort(deciles, kind="stable")
    chunk = np.empty(len(order), np.int64)
    for band in np.unique(deciles):
        rows = np.flatnonzero(deciles[order] == band)
        chunk[rows] = 3 * (band - 1) + np.arange(len(rows)) * 3 // len(rows)
    return probs(reference.inputs()), reference.y, probs(test.inputs())[order], chunk


def census_cases() -> list[dict]:
    import nannyml as nml

    p_ref, y_ref, p_an, chunk = census_scores()
    ref_df = pd.DataFrame({"p": p_ref[:, 1], "pred": p_ref.argmax(1), "y": y_ref, "t": pd.Timestamp("2019-01-01")})
    an_df = pd.DataFrame({"p": p_an[:, 1], "pred": p_an.argmax(1),
                          "t": pd.Timestamp("2020-01-01") + pd.to_timedelta(chunk, "D")})

    def theirs():
        est = nml.CBPE(metrics=METRICS, y_pred_proba="p", y_pred="pred", y_true="y",
                       problem_type="classification_binary", timestamp_column_name="t", chunk_period="D").fit(ref_df)
        return est.estimate(an_df).filter(period="analysis").to_df()

    def theirs_per_chunk():
        est = nml.CBPE(metrics=METRICS, y_pred_proba="p", y_pred="pred", y_true="y",
                       problem_type="classification_binary", timestamp_column_name="t", chunk_period="D").fit(ref_df)
        return pd.concat([est.estimate(an_df[chunk == c]).filter(period="analysis").to_df()
                          for c in np.unique(chunk)])

    def ours_per_chunk():
        est = CBPE(metrics=METRICS).fit(p_ref, y_ref)
        return pd.concat([est.estimate(p_an[chunk == c]) for c in np.unique(chunk)])

    rows = []
    for case, fn_theirs, fn_ours in [
            ("census: fit, estimate 30 chunks", theirs,
             lambda: CBPE(metrics=METRICS).fit(p_ref, y_ref).estimate(p_an, periods=chunk)),
            ("census: fit, 30 one-chunk calls", theirs_per_chunk, ours_per_chunk)]:
        t_theirs, res_theirs = best_of(fn_theirs, 2)
        t_ours, res_ours = best_of(fn_ours, 5)
        diff = max(float(np.max(np.abs(res_ours[m].to_numpy() - res_theirs[(m, "value")].to_numpy(float))))
                   for m in METRICS)
        rows.append({"case": case, "n_ref": len(p_ref), "n_analysis": len(p_an), "chunks": len(res_ours),
                     "nannyml_s": t_theirs, "ours_s": t_ours, "ratio": t_theirs / t_ours, "max_abs_diff": diff})
    return rows


def main() -> None:
    warnings.simplefilter("ignore")
    cases = [(20_000, 100_000, 2, 1_000), (20_000, 100_000, 5, 1_000), (20_000, 100_000, 10, 5_000)]
    rows = [run_case(*c) for c in cases]
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(pd.DataFrame(rows).to_string(index=False))
        print()
        print(pd.DataFrame(census_cases()).to_string(index=False))


if __name__ == "__main__":
    main()
