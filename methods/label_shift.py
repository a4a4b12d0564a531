"""Label-shift correction: EM prior estimation (Saerens et al. 2002), BBSE (Lipton et al. 2018),
bias-corrected temperature scaling (BCTS, Alexandari et al. 2020) and the posterior correction
p_t(y|x) ∝ w_y p_s(y|x), with the semantics of kundajelab/abstention:

* ``em_prior`` starts from the source prior, alternates "reweight the posteriors by
  prior_t / prior_s and renormalise" and "prior_t = mean reweighted posterior", and stops when no
  class frequency moves by more than ``tol`` (or after ``max_iter`` iterations), returning the
  last update. Pass as ``source_prior`` the mean of the (calibrated) source-validation
  posteriors, as abstention does, so that EM on the source distribution itself finds no shift.
* ``bbse_weights`` solves C w = mu with the joint (unnormalised) confusion matrix
  C[i, j] = P_source(prediction i, label j) and mu the target's prediction frequencies (hard:
  argmax one-hots; soft: probabilities), then zeroes negative weights. A class that is never
  predicted on the source validation makes C singular: that raises a clear error (use
  ``soft=True``, which predicts every class with some probability, or merge the class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.optimize

from shiftbench.arrays import check_labels, check_probs, softmax, to_numpy
from shiftbench.errors import ShiftbenchError
from shiftbench.families import Batch, OutputAdapter, Task
from shiftbench.hyperparameters import Bool, Choice
from shiftbench.validation import check_bool, check_int, check_number


def correct_posteriors(probs, weights) -> np.ndarray:
    """Posterior correction under label shift: p_t(y|x) ∝ w_y p_s(y|x), rows renormalised."""
    probs = check_probs(probs, "probs")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (probs.shape[1],) or (w < 0).any() or not np.isfinite(w).all():
        raise ShiftbenchError(f"class weights must be {probs.shape[1]} finite non-negative numbers; got {w}")
    unnorm = probs * w[None, :]
    total = unnorm.sum(1, keepdims=True)
    if (total <= 0).any():
        raise ShiftbenchError("the class weights give every class of some example zero probability; "
                              "at least one class with non-zero posterior needs a positive weight")
    return unnorm / total


def em_prior(target_probs, source_prior, tol: float = 1e-6, max_iter: int = 100) -> np.ndarray:
    """Target class prior by EM on source-model posteriors of target examples (Saerens et al. 2002)."""
    check_number(tol, "tol", "em_prior", at_least=0)
    check_int(max_iter, "max_iter", "em_prior")
    probs = check_probs(target_probs, "target_probs", min_rows=1)
    source = to_numpy(source_prior, "source_prior")
    if (source.shape != (probs.shape[1],) or not np.issubdtype(source.dtype, np.number)
            or not np.isfinite(source).all() or (source <= 0).any()):
        raise ShiftbenchError(f"source_prior must hold {probs.shape[1]} positive finite class frequencies; got {source}")
    source = source.astype(np.float64)
    source = source / source.sum()
    current, update = source, None
    for _ in range(max_iter):
        if update is not None:
            if not (np.abs(update - current) > tol).any():
                break
            current = update
        update = correct_posteriors(probs, current / source).mean(0)
    return update


def bbse_weights(source_probs, source_labels, target_probs, soft: bool = False) -> np.ndarray:
    """Class weights w = prior_t / prior_s by black-box shift estimation (Lipton et al. 2018)."""
    check_bool(soft, "soft", "bbse_weights")
    sp_ = check_probs(source_probs, "source_probs", min_rows=1)
    k = sp_.shape[1]
    y = check_labels(source_labels, k, "source_labels", n=len(sp_))
    tp = check_probs(target_probs, "target_probs", min_rows=1)
    if tp.shape[1] != k:
        raise ShiftbenchError(f"target_probs has {tp.shape[1]} classes but source_probs has {k}")
    onehot = np.eye(k)
    src_pred, tgt_pred = (sp_, tp) if soft else (onehot[sp_.argmax(1)], onehot[tp.argmax(1)])
    confusion = src_pred.T @ onehot[y] / len(y)  # C[i, j] = P(prediction i, label j)
    never = np.flatnonzero(confusion.sum(1) == 0)
    if len(never):
        raise ShiftbenchError(
            f"BBSE: class(es) {never.tolist()} are never predicted on the source validation data (source_probs), so the "
            "confusion matrix is singular; use soft=True (expected confusion) or more validation data")
    absent = np.flatnonzero(confusion.sum(0) == 0)
    if len(absent):
        raise ShiftbenchError(f"BBSE: class(es) {absent.tolist()} have no source validation labels (source_labels); "
                              "their weight cannot be estimated")
    if np.linalg.cond(confusion) > 1e12:
        raise ShiftbenchError("BBSE: the confusion matrix of source_probs is numerically singular (classes predicted "
                              "indistinguishably); use soft=True or more validation data")
    w = np.linalg.solve(confusion, tgt_pred.mean(0))
    return np.maximum(w, 0.0)


@dataclass
class TemperatureBias:
    """Calibration map softmax(log p / T + b) of bias-corrected temperature scaling."""

    temperature: float
    bias: np.ndarray

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        return softmax(np.log(np.clip(probs, 1e-300, None)) / self.temperature + self.bias[None, :])


def fit_bcts(probs, labels) -> TemperatureBias:
    """Bias-corrected temperature scaling (Alexandari et al. 2020): T and per-class bias b minimising
    the NLL of softmax(log p / T + b) on labelled source validation (log-probabilities as logits)."""
    probs = check_probs(probs, "validation probs")
    k = probs.shape[1]
    y = check_labels(labels, k, "validation labels", n=len(probs))
    logp = np.log(np.clip(probs, 1e-300, None))
    logp = logp - logp.max(1, keepdims=True)

    def nll(params: np.ndarray) -> tuple[float, np.ndarray]:
        inv_t, b = params[0], params[1:]
        z = logp * inv_t + b
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        loss = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)))
        g_z = p.copy()
        g_z[np.arange(len(y)), y] -= 1
        g_z /= len(y)
        return loss, np.concatenate([[np.sum(g_z * logp)], g_z.sum(0)])

    res = scipy.optimize.minimize(nll, np.r_[1.0, np.zeros(k)], jac=True, method="L-BFGS-B",
                                  bounds=[(1e-3, 1e3)] + [(None, None)] * k)
    return TemperatureBias(1.0 / res.x[0], res.x[1:] - res.x[1:].mean())


CALIBRATIONS = {"bcts": fit_bcts, "none": lambda probs, labels: (lambda p: p)}


class PriorCorrection(OutputAdapter):
    """Estimate class weights on the target outputs and correct each batch's posteriors.

    Uses the labelled source validation outputs (``id_val``, else ``train``) to calibrate and to
    get the source prior (mean calibrated posterior). ``online=True`` (the honest streaming
    version) corrects each batch with weights estimated on all target batches seen so far,
    the current one included; ``online=False`` estimates once on the whole target split.
    """

    abstract = True
    hyperparameters = {
        "calibration": Choice("bcts", tuple(CALIBRATIONS), doc="calibration fitted on labelled source outputs"),
        "online": Bool(True, doc="weights from the batches seen so far (else from the whole target at once)"),
    }

    def estimate_weights(self, target_probs: np.ndarray) -> np.ndarray:
        """Class weights prior_t / prior_s from calibrated target posteriors."""
        raise NotImplementedError

    def prepare(self, task: Task) -> None:
        """Fit the calibration and the source statistics on labelled source validation outputs (``id_val``,
        else ``train``); offline, estimate the weights once on the whole target's calibrated outputs."""
        src = task.source_outputs("id_val" if "id_val" in task.source_splits else "train")
        self.calibrate_ = CALIBRATIONS[self.calibration](src.probs, src.y)
        self.source_probs_ = self.calibrate_(src.probs)
        self.source_labels_ = src.y
        self.source_prior_ = self.source_probs_.mean(0)
        self.seen_: list[np.ndarray] = []
        self.weights_ = None if self.online else self.estimate_weights(self.calibrate_(task.target_outputs().probs))

    def process(self, batch: Batch) -> np.ndarray:
        """The batch's corrected posteriors; online, with weights estimated on every batch seen so far."""
        calibrated = self.calibrate_(batch.probs)
        if self.online:
            self.seen_.append(calibrated)
            self.weights_ = self.estimate_weights(np.concatenate(self.seen_))
        return correct_posteriors(calibrated, self.weights_)


class EMCorrection(PriorCorrection):
    """Saerens EM prior estimation on BCTS-calibrated posteriors, then posterior correction."""

    name: ClassVar[str] = "em_correction"
    grid: ClassVar[dict] = {"calibration": ["bcts", "none"]}

    def estimate_weights(self, target_probs: np.ndarray) -> np.ndarray:
        return em_prior(target_probs, self.source_prior_) / self.source_prior_


class BBSECorrection(PriorCorrection):
    """Black-box shift estimation (hard or soft confusion) on calibrated posteriors, then correction."""

    name: ClassVar[str] = "bbse_correction"
    hyperparameters = {"soft": Bool(False, doc="expected (soft) confusion matrix instead of argmax counts")}
    grid: ClassVar[dict] = {"soft": [False, True], "calibration": ["bcts"]}

    def estimate_weights(self, target_probs: np.ndarray) -> np.ndarray:
        return bbse_weights(self.source_probs_, self.source_labels_, target_probs, soft=self.soft)
