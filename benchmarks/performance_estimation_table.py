"""Label-free performance estimation: MAE between estimated and realised accuracy per chunk.

Settings (reference = a labelled held-out split of the source; targets are chunked):
- NYC flights 2013: logistic regression on the first 4 months (arrival delay > 15 min), reference
  = ``id_val`` (months 1-4), one chunk per later month (5..12); covariates = the tabular features;
- digits under corruption: the harness's ``small_cnn`` (seed 0) on MNIST, reference = ``id_val``,
  targets = ``id_test`` corrupted (gaussian/shot noise, contrast, brightness) at severity 1..5,
  chunks of 250 images; covariates = the network's penultimate features;
- digits natural shift: scikit-learn digits (``test``), chunks of 250;
- label-shifted digits: ``id_test`` resampled to Dirichlet(alpha) class priors (4 draws each).

Writes ``results/performance_estimation.{md,csv}`` and a monitoring plot of the flights months.
Regenerate: ``.venv/bin/python benchmarks/performance_estimation_table.py`` (trains/caches the
digits CNN under ``SHIFTBENCH_CACHE_DIR``; a few minutes on 2 cores).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from shiftbench import datasets, methods
from shiftbench.cache import ArrayCache, default_cache_dir
from shiftbench.methods.cbpe import CBPE, MCBPE
from shiftbench.models import build_model
from shiftbench.monitoring import Chunks, chunk_by_period, plot_estimates, realised_metrics
from shiftbench.scenarios import Scenario

RESULTS = Path(__file__).resolve().parents[1] / "results"
CHUNK = 250
CORRUPTIONS = ("gaussian_noise", "shot_noise", "contrast", "brightness")


@dataclass
class Outputs:
    """What an estimator may see (probs, covariates) and, for the reference only, labels."""

    probs: np.ndarray
    X: np.ndarray
    y: np.ndarray


def per_chunk_plugin(name: str, **hyper) -> Callable[[Outputs, Outputs, Chunks], np.ndarray]:
    """A runner plugin applied chunk by chunk (features passed when it uses them)."""

    def run(ref: Outputs, tgt: Outputs, chunks: Chunks) -> np.ndarray:
        est = methods.load(name, **hyper)
        if est.uses_features:
            est.fit(ref.probs, ref.y, reference_feats=ref.X)
            return np.array([est.estimate_accuracy(tgt.probs[i], feats=tgt.X[i]) for i in chunks.members()])
        est.fit(ref.probs, ref.y)
        return np.array([est.estimate_accuracy(tgt.probs[i]) for i in chunks.members()])

    return run


def cbpe(ref: Outputs, tgt: Outputs, chunks: Chunks) -> np.ndarray:
    return CBPE(metrics=("accuracy",)).fit(ref.probs, ref.y).estimate(tgt.probs, periods=chunks.ids)["accuracy"].to_numpy()


def mcbpe(classifier: str) -> Callable[[Outputs, Outputs, Chunks], np.ndarray]:
    def run(ref: Outputs, tgt: Outputs, chunks: Chunks) -> np.ndarray:
        est = MCBPE(metrics=("accuracy",), classifier=classifier).fit(ref.X, ref.probs, ref.y)
        return est.estimate(tgt.X, tgt.probs, periods=chunks.ids)["accuracy"].to_numpy()

    return run


def reference_accuracy(ref: Outputs, tgt: Outputs, chunks: Chunks) -> np.ndarray:
    """The no-shift baseline: every chunk is assumed to perform like the reference."""
    return np.full(len(chunks), np.mean(ref.probs.argmax(1) == ref.y))


ESTIMATORS: dict[str, Callable[[Outputs, Outputs, Chunks], np.ndarray]] = {
    "reference accuracy (no estimation)": reference_accuracy,
    "CBPE": cbpe,
    "M-CBPE (logistic ratio)": mcbpe("logistic"),
    "ATC (max confidence)": per_chunk_plugin("atc", score="max_confidence"),
    "ATC (negative entropy)": per_chunk_plugin("atc", score="negative_entropy"),
    "DoC": per_chunk_plugin("doc"),
    "IW (logistic ratio)": per_chunk_plugin("iw_estimator"),
}


# ----------------------------------------------------------------------------- settings


def flights_setting() -> tuple[Outputs, Outputs, pd.Series]:
    """Reference (id_val) and months 1..12 (id_test for the source months, then val and test)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = datasets.load("nycflights")
    train = d.split("train")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train.x, train.y)
    bundle = lambda s: Outputs(model.predict_proba(s.x), s.x.astype(np.float64), s.y)
    targets = [d.split(k) for k in ("id_test", "val", "test")]
    target = Outputs(*(np.concatenate(a) for a in zip(*[(b.probs, b.X, b.y) for b in map(bundle, targets)])))
    months = pd.concat([s.metadata["month"] for s in targets], ignore_index=True)
    return bundle(d.split("id_val")), target, months


def digits_settings() -> dict[str, tuple[Outputs, list[Outputs]]]:
    """Reference and target scenarios per digits setting (each scenario chunked separately)."""
    d = datasets.load("digits")
    cache_root = default_cache_dir()
    cache = ArrayCache(cache_root)
    model = build_model("small_cnn", d, 0, cache_root)

    def outputs(split) -> Outputs:
        out = model.outputs(split, cache)
        z = out["logits"].astype(np.float64)
        p = np.exp(z - z.max(1, keepdims=True))
        return Outputs(p / p.sum(1, keepdims=True), out["feats"].astype(np.float64), split.y)

    scen = lambda **kw: outputs(Scenario(**kw).target_split(d, cache, seed=kw.pop("seed", 0)))
    settings = {f"digits, corruption severity {s}": [scen(target="id_test", corruption=c, severity=s)
                                                      for c in CORRUPTIONS] for s in range(1, 6)}
    settings["digits -> sklearn digits (natural shift)"] = [outputs(d.split("test"))]
    for alpha in (10.0, 1.0, 0.1):
        settings[f"digits, label shift Dirichlet({alpha:g})"] = [
            outputs(Scenario(target="id_test", label_shift=alpha).target_split(d, cache, seed)) for seed in range(4)]
    ref = outputs(d.split("id_val"))
    return {name: (ref, targets) for name, targets in settings.items()}


def stack(targets: list[Outputs]) -> tuple[Outputs, Chunks]:
    """Concatenate scenarios, each cut into chunks of ``CHUNK`` rows (chunks never span scenarios)."""
    ids, offset = [], 0
    for t in targets:
        local = np.arange(len(t.y)) // CHUNK
        ids.append(local + offset)
        offset += local.max() + 1
    ids = np.concatenate(ids)
    merged = Outputs(*(np.concatenate(a) for a in zip(*[(t.probs, t.X, t.y) for t in targets])))
    return merged, Chunks(ids, [str(i) for i in range(offset)])


# ----------------------------------------------------------------------------- evaluation


def evaluate(setting: str, ref: Outputs, tgt: Outputs, chunks: Chunks) -> list[dict]:
    realised = realised_metrics(tgt.y, tgt.probs, tgt.probs.argmax(1), chunks, ("accuracy",))["accuracy"].to_numpy()
    rows = []
    for name, estimator in ESTIMATORS.items():
        t0 = time.perf_counter()
        err = np.abs(estimator(ref, tgt, chunks) - realised)
        rows.append({"setting": setting, "estimator": name, "chunks": len(chunks),
                     "realised_acc": float(realised.mean()), "mae": float(err.mean()), "max_ae": float(err.max()),
                     "seconds": time.perf_counter() - t0})
        print(f"{setting:45s} {name:36s} MAE {err.mean():.4f}", flush=True)
    return rows


def flights_rows() -> list[dict]:
    ref, target, months = flights_setting()
    chunks = chunk_by_period(months)
    est = CBPE(metrics=("accuracy",)).fit(ref.probs, ref.y).estimate(target.probs, periods=months)
    realised = realised_metrics(target.y, target.probs, target.probs.argmax(1), chunks, ("accuracy",))["accuracy"]
    plot_estimates(est.assign(key=[f"2013-{m:02d}" for m in sorted(months.unique())]), "accuracy", realised,
                   RESULTS / "performance_estimation_nycflights.png",
                   title="NYC flights 2013 (model trained on Jan-Apr): CBPE vs realised accuracy")
    later = (months > 4).to_numpy()
    sub = Outputs(target.probs[later], target.X[later], target.y[later])
    return evaluate("NYC flights 2013, months 5-12", ref, sub, chunk_by_period(months[later]))


def markdown(table: pd.DataFrame) -> str:
    wide = table.pivot(index="setting", columns="estimator", values="mae").loc[table["setting"].unique()]
    wide = wide[list(ESTIMATORS)]
    info = table.groupby("setting", sort=False)[["chunks", "realised_acc"]].first()
    lines = ["# Label-free performance estimation: MAE of estimated vs realised accuracy per chunk", "",
             "Lower is better; the best estimator per row is in bold. `realised` = mean realised accuracy of the "
             "chunks. Regenerate with `.venv/bin/python benchmarks/performance_estimation_table.py`.", "",
             "| setting | chunks | realised | " + " | ".join(wide.columns) + " |",
             "|---|---:|---:|" + "---:|" * len(wide.columns)]
    for setting, row in wide.iterrows():
        best = row.min()
        cells = [f"**{v:.4f}**" if v == best else f"{v:.4f}" for v in row]
        lines.append(f"| {setting} | {info.loc[setting, 'chunks']} | {info.loc[setting, 'realised_acc']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    rows = flights_rows()
    for setting, (ref, targets) in digits_settings().items():
        tgt, chunks = stack(targets)
        rows += evaluate(setting, ref, tgt, chunks)
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "performance_estimation.csv", index=False, float_format="%.5f")
    (RESULTS / "performance_estimation.md").write_text(markdown(table))
    print(markdown(table))


if __name__ == "__main__":
    main()
