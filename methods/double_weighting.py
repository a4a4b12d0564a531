"""Double-weighting for general covariate shift (DW-GCS), Segovia-Martin, Mazuelas & Liu (ICML 2023).

Two stages, both on the given source sample (n points, labelled) and target sample (t points):

1. **DW-KMM** weights: training weights beta and testing weights alpha from

       min  || (1/n) sum_i beta_i Psi(x_i) - (1/t) sum_j alpha_j Psi(x'_j) ||^2     (RBF kernel feature map)
       s.t. 0 <= beta <= B / sqrt(D),  0 <= alpha <= 1,
            | sum(beta)/n - sum(alpha)/t | <= 1 - 1/sqrt(n),
            || alpha - 1 ||_2 <= (1 - 1/sqrt(D)) sqrt(t).

   D = 1 forces alpha = 1 (plain kernel mean matching); larger D lets the test weights move
   away from one. Solved by a dense primal-dual interior-point method written for this programme
   (``_dw_kmm_ipm``: Mehrotra predictor-corrector, the ball as a smooth concave constraint, one
   LAPACK Cholesky factorisation of the m x m Newton matrix per iteration, about 15-22 iterations
   to relative residuals 1e-8 and gap 1e-9; where the plain predictor-corrector cycles, as on kernels
   with many duplicated points, one restart with a centring floor of 0.3), on the objective in x = [beta, alpha]
   multiplied by n t, with the kernel computed once and shared by every D and a 1e-10 ridge so
   that singular or rounding-indefinite kernels (duplicated points) stay strictly convex. It reaches
   lower objectives than Clarabel at its default tolerances (which stops at an absolute gap of 1e-8
   on objectives of 1e-4 to 1e-8) and costs about a tenth of its CPU time at m = n + t = 500-2000.
   (A low-rank kernel factor did not pay: RBF kernels of these data have numerical rank about m/2.)

2. **Minimax risk classifier** (MRC) with feature map phi(x, y) = e_y (x) [1?, x]:
   mean vector tau = (1/n) sum_i beta_i phi(x_i, y_i); confidence vector lambda = u + 1e-6 where
   (p, u) solves the linear programme min sum u s.t. |E_p[alpha phi] - tau| <= u over target label
   distributions p. The programme is degenerate (with two classes the residuals of a feature's two
   class blocks sum to a constant, and every split of it between them is optimal): HiGHS returns a
   vertex (one block's lambda at delta), an interior-point solver without crossover (the authors'
   MOSEK, or Clarabel) a point near the analytic centre of the optimal face, and the minimax risks,
   the chosen D and the classifier follow that choice. We take the analytic centre of the optimal face
   (log barrier on p >= 0, u - r >= 0 and u + r >= 0 with r = E_p[alpha phi] - tau), computed by our
   own damped-Newton path following (``confidence_vector``); the LP solver only supplies the optimal
   value, so that the confidence vector does not depend on which solver that is. Classifier parameters mu minimise
   ``-tau.mu + lambda.|mu| + (1/t) sum_j Loss_j(alpha_j phi(x'_j, .) mu)`` where for the 0-1 loss
   Loss_j = 1 + psi(a) with psi(a) = max_C (sum_{y in C} a_y - 1)/|C| (an LP through
   psi(a) = min{theta : sum_y (a_y - theta)_+ <= 1}, HiGHS) and for the log loss
   Loss_j = logsumexp(a) (exponential cones, Clarabel). The optimum is the minimax risk.

The classifier's rule at a target point is the projection of its scores onto the simplex (0-1
loss) or their softmax (log loss). It is transductive: it predicts only the target sample it
was fitted with. With ``D="auto"`` it fits every D in {1/(1-k/10)^2, k=0..9} and keeps the one
with the lowest minimax risk (no labels needed); a D whose programmes fail is skipped (``failed_D_``).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from shiftbench.arrays import check_labels, check_matrix
from shiftbench.errors import ShiftbenchError
from shiftbench.families import DomainAdapter
from shiftbench.hyperparameters import Bool, Choice, Float, Int
from shiftbench.methods._common import source_subset, standardise
from shiftbench.methods._dw_kmm_ipm import Ball, solve_box_qp
from shiftbench.validation import check_bool, check_number

D_GRID = tuple(1.0 / (1.0 - k / 10.0) ** 2 for k in range(10))
CONFIDENCE_DELTA = 1e-6
#: floor on the interior point's centring parameter when DW-KMM is solved again after a failure
RESTART_CENTRING = 0.3
#: the optimal face of the confidence LP is widened to sum u <= v* + slack (v* + |tau|_1), with the first
#: of these slacks for which rounding lets the central path reach it
CENTRE_SLACKS = (1e-6, 1e-5, 1e-4)
#: a centring stops once the squared Newton decrement is below this (its rounding floor is about 1e-12)
CENTRE_DECREMENT = 1e-10
#: damped Newton steps per centring at most
CENTRE_STEPS = 200


def knn_bandwidth(X: np.ndarray, k: int = 50) -> float:
    """RBF bandwidth of the paper's experiments: mean distance to the k-th nearest neighbour."""
    k = min(k, len(X) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    sigma = float(dist[:, k].mean())
    if sigma <= 0:
        raise ShiftbenchError("all points of X_source and X_target coincide with their neighbours; cannot choose an "
                              "RBF bandwidth (pass sigma)")
    return sigma


def rbf_kernel(X: np.ndarray, sigma: float) -> np.ndarray:
    """RBF kernel matrix exp(-||x - x'||^2 / (2 sigma^2)) of the rows of X."""
    sq = np.einsum("ij,ij->i", X, X)
    return np.exp(-np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0) / (2 * sigma**2))


@dataclass
class KMMWeights:
    """Solution of the DW-KMM programme: training weights beta (n,), testing weights alpha (t,)."""

    beta: np.ndarray
    alpha: np.ndarray
    objective: float


def dw_kmm(kernel: np.ndarray, n: int, D: float, B: float = 1000.0, ridge: float = 1e-10) -> KMMWeights:
    """Solve DW-KMM for a kernel matrix whose first ``n`` rows are source points, the rest target.

    Variables x = [beta, alpha] with w = (beta/n, -alpha/t); objective w^T (K + ridge I) w
    (the ridge keeps a singular or rounding-indefinite kernel strictly convex; its effect on the
    objective is below ridge * ||w||^2). With D = 1 alpha is fixed to one and eliminated (a linear
    term). One dense interior-point solve (``_dw_kmm_ipm``) on the objective multiplied by n t;
    if Mehrotra's rule does not converge (it can cycle on kernels with many duplicated points), one
    restart with the centring floor ``RESTART_CENTRING``; a ShiftbenchError if that fails too.
    """
    if D < 1:
        raise ShiftbenchError(f"D must be >= 1 (D = 1 is kernel mean matching); got {D}")
    if not (np.isfinite(B) and B > 0):
        raise ShiftbenchError(f"B must be a positive finite number; got {B}")
    t = len(kernel) - n
    fixed_alpha = D == 1.0
    objective_scale = float(n * t)  # brings the objective's Hessian to entries of order K
    scale = np.concatenate([np.full(n, 1 / n), np.full(t, -1 / t)])
    H = (kernel + ridge * np.eye(len(kernel))) * np.outer(scale, scale * objective_scale)
    beta_upper = B / np.sqrt(D)
    eps = 1 - 1 / np.sqrt(n)
    if fixed_alpha:
        P, q, const = 2 * H[:n, :n], 2 * H[:n, n:].sum(1), float(H[n:, n:].sum())
        upper, mean_row, mean_offset, ball = np.full(n, beta_upper), np.full(n, 1 / n), -1.0, None
        x0 = np.full(n, min(1.0, beta_upper / 2))
    else:
        P, q, const = 2 * H, np.zeros(n + t), 0.0
        upper, mean_row, mean_offset = np.concatenate([np.full(n, beta_upper), np.ones(t)]), scale, 0.0
        ball = Ball(start=n, centre=1.0, radius=(1 - 1 / np.sqrt(D)) * np.sqrt(t))
        alpha0 = 1 - (1 - 1 / np.sqrt(D)) / 2  # inside the ball and the box
        x0 = np.concatenate([np.full(n, min(alpha0, beta_upper / 2)), np.full(t, alpha0)])
    # |mean_row . x + mean_offset| <= eps as two rows of G x <= h
    G = np.vstack([mean_row, -mean_row])
    h = np.array([eps - mean_offset, eps + mean_offset])
    try:
        x = solve_box_qp(P, q, upper, G, h, ball, x0, constant=const).x
    except ShiftbenchError:
        x = solve_box_qp(P, q, upper, G, h, ball, x0, constant=const, min_centring=RESTART_CENTRING).x
    beta = np.clip(x[:n], 0, beta_upper)
    alpha = np.ones(t) if fixed_alpha else np.clip(x[n:], 0, 1)
    objective = (0.5 * x @ (P @ x) + q @ x + const) / objective_scale
    return KMMWeights(beta, alpha, float(objective))


def class_score_matrix(F: np.ndarray, alpha: np.ndarray, n_classes: int) -> sp.csr_matrix:
    """Sparse S (t*K, K*d) with (S mu)[(i, y)] = alpha_i F_i . mu_y: weighted scores of every (point, class)."""
    t, d = F.shape
    AF = alpha[:, None] * F
    rows = np.repeat(np.arange(t * n_classes), d)
    cols = (np.tile(np.arange(n_classes), t)[:, None] * d + np.arange(d)[None, :]).ravel()
    vals = np.repeat(AF, n_classes, axis=0).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(t * n_classes, n_classes * d))


def solve_lp(c: np.ndarray, A_ub, b_ub, A_eq=None, b_eq=None, bounds=None, what: str = "LP") -> scipy.optimize.OptimizeResult:
    """HiGHS linear programme (its default choice of method; if that stops on a numerical solve error,
    the dual simplex), with a clear error when it fails."""
    res = scipy.optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if res.status == 4:  # HiGHS "solve error": numerical trouble in the method it chose
        res = scipy.optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs-ds")
    if res.status != 0:
        raise ShiftbenchError(f"{what} failed in HiGHS: {res.message}")
    return res


LabelDistribution = Callable[[sp.csr_matrix, np.ndarray, int], np.ndarray]


def vertex_label_distribution(S: sp.csr_matrix, tau: np.ndarray, n_classes: int) -> np.ndarray:
    """An optimal target label distribution p (t*K, each point's row summing to 1/t) of the confidence LP
    min sum u s.t. |S^T p - tau| <= u, from HiGHS (a vertex of the optimal face)."""
    tK, m = S.shape
    t = tK // n_classes
    E = S.T.tocsr()  # (m, t*K): expectation of alpha*phi under p (p_iy sums to 1/t per point)
    I = sp.identity(m, format="csr")
    A_ub = sp.vstack([sp.hstack([E, -I]), sp.hstack([-E, -I])], format="csr")
    b_ub = np.concatenate([tau, -tau])
    A_eq = sp.hstack([sp.kron(sp.identity(t), np.ones((1, n_classes))), sp.csr_matrix((t, m))], format="csr")
    c = np.concatenate([np.zeros(tK), np.ones(m)])
    return solve_lp(c, A_ub, b_ub, A_eq, np.full(t, 1.0 / t), bounds=(0, None), what="the confidence-vector LP").x[:tK]


def confidence_vector(S: sp.csr_matrix, tau: np.ndarray, n_classes: int,
                      label_distribution: LabelDistribution = vertex_label_distribution) -> np.ndarray:
    """lambda = u + delta at the analytic centre of the optimal face of min sum u s.t. |S^T p - tau| <= u.

    ``label_distribution`` (HiGHS by default; any LP solver) gives one optimal p; its projection onto
    the simplices gives the optimal value v* as the value of a feasible point. The face
    {sum u <= v* + slack (v* + |tau|_1)} (slack 1e-6; 1e-5 or 1e-4 where rounding stalls the path) is
    then centred by ``_ConfidenceBarrier``: which optimum the solver returned does not matter.
    Where v* is below that width, tau is attained and lambda = delta.
    """
    tK = S.shape[0]
    t = tK // n_classes
    q = np.clip(label_distribution(S, tau, n_classes), 0, None).reshape(t, n_classes)
    q = (q / q.sum(1, keepdims=True)).ravel()  # label distribution of each target point (rows sum to 1)
    E = (S.T / t).tocsr()  # residual r = E q - tau
    optimum = float(np.abs(E @ q - tau).sum())
    barrier = _ConfidenceBarrier(E, tau, n_classes)
    for slack in CENTRE_SLACKS:
        width = slack * (optimum + np.abs(tau).sum())
        if optimum <= width:
            return np.full(len(tau), CONFIDENCE_DELTA)
        try:
            return barrier.centre_of_face(optimum, optimum + width) + CONFIDENCE_DELTA
        except _Stalled:
            continue
    raise ShiftbenchError("the confidence-vector centring did not converge (rounding stalled it at every width)")


class _Stalled(Exception):
    """A centring that rounding stopped before it converged."""


class _ConfidenceBarrier:
    """Log barrier of {q_i in the simplex (t points, K classes), u >= |E q - tau|}, plus s sum(u) or,
    with a cut, -log(cut - sum u); damped-Newton centring on it.

    The Newton system eliminates u (its Hessian block is diagonal plus, with the cut, rank one) and
    keeps every q_i on its simplex by projecting per point, so that one step costs O(t K m^2).
    """

    def __init__(self, E: sp.csr_matrix, tau: np.ndarray, n_classes: int):
        self.E, self.Et, self.tau, self.K = E, E.T.tocsr(), tau, n_classes
        self.t = E.shape[1] // n_classes

    def _project(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """diag(w) x minus its per-point multiple of w: the inverse of diag(1/w) on {sum_y dq_iy = 0}."""
        X = x.reshape(self.t, self.K, -1)
        W = w.reshape(self.t, self.K, 1)
        return (W * (X - (W * X).sum(1, keepdims=True) / W.sum(1, keepdims=True))).reshape(x.shape)

    def newton(self, q: np.ndarray, u: np.ndarray, s: float, cut: float | None) -> tuple[np.ndarray, np.ndarray, float]:
        """Newton direction (dq, du), with sum_y dq_iy = 0, and the squared Newton decrement.

        With a = u - r, b = u + r the u-block of the Hessian is diag(1/a^2 + 1/b^2) (plus 11^T / g^2
        with the cut, g = cut - sum u); its Schur complement on r is diag(4 / (a^2 + b^2)) + gamma c c^T
        with c = (a^2 - b^2) / (a^2 + b^2), written so that nothing cancels when a or b is tiny.
        """
        r = self.E @ q - self.tau
        a, b = u - r, u + r
        ia, ib = 1 / a, 1 / b
        s_eff = s + (1 / (cut - u.sum()) if cut is not None else 0.0)
        d_inv = (a * b) ** 2 / (a**2 + b**2)  # inverse of the diagonal of the u block
        c = (a**2 - b**2) / (a**2 + b**2)
        g_u = s_eff - ia - ib
        g_q = -1 / q + self.Et @ (ia - ib)
        rho = (ia - ib) * (s_eff * (ia + ib) - 2 * ia * ib) / (ia**2 + ib**2)  # r-gradient less c g_u
        columns = [np.diag(np.sqrt(4 / (a**2 + b**2)))]
        gamma = 0.0
        if cut is not None:
            gamma = 1 / ((cut - u.sum()) ** 2 + d_inv.sum())
            rho = rho + c * gamma * (d_inv @ g_u)
            columns.append(np.sqrt(gamma) * c[:, None])
        V = self.Et @ np.hstack(columns)  # E^T (Schur complement) E = V V^T
        rhs = -(-1 / q + self.Et @ rho)
        w = q * q
        PV, Pr = self._project(V, w), self._project(rhs, w)
        dq = Pr - PV @ np.linalg.solve(np.eye(V.shape[1]) + V.T @ PV, V.T @ Pr)
        y = d_inv * g_u + c * (self.E @ dq)
        du = -(y - d_inv * gamma * y.sum())
        return dq, du, float(-(g_q @ dq + g_u @ du))

    def _max_step(self, q: np.ndarray, u: np.ndarray, dq: np.ndarray, du: np.ndarray, cut: float | None) -> float:
        """The largest step keeping q, u - r, u + r (and cut - sum u) positive."""
        r, dr = self.E @ q - self.tau, self.E @ dq
        pairs = [(q, dq), (u - r, du - dr), (u + r, du + dr)]
        if cut is not None:
            pairs.append((np.array([cut - u.sum()]), np.array([-du.sum()])))
        step = np.inf
        for v, dv in pairs:
            neg = dv < 0
            if neg.any():
                step = min(step, float(np.min(-v[neg] / dv[neg])))
        return step

    def centre(self, q: np.ndarray, u: np.ndarray, s: float, cut: float | None,
               decrement: float = CENTRE_DECREMENT) -> tuple[np.ndarray, np.ndarray]:
        """Minimise the barrier from a strictly feasible (q, u): damped Newton (self-concordant: step
        1 / (1 + decrement), full steps once the squared decrement is below 1/16), at most 0.99 of the
        way to the boundary, until the squared decrement is below ``decrement``."""
        for _ in range(CENTRE_STEPS):
            dq, du, dec = self.newton(q, u, s, cut)
            if dec <= decrement:
                return q, u
            step = min(1.0 if dec < 1 / 16 else 1 / (1 + np.sqrt(dec)), 0.99 * self._max_step(q, u, dq, du, cut))
            q, u = q + step * dq, u + step * du
            q = q / q.reshape(self.t, self.K).sum(1).repeat(self.K)  # rounding drift off the simplices
        raise _Stalled

    def centre_of_face(self, optimum: float, cut: float) -> np.ndarray:
        """u at the analytic centre of {sum u <= cut}: near the central path of min sum u (s = 1, 30,
        900, ..., each centred roughly: only the last centring, with the cut, decides the point) from q
        uniform until sum u is half-way from ``optimum`` to ``cut``, then centring with the cut."""
        q = np.full(self.E.shape[1], 1.0 / self.K)
        u = np.abs(self.E @ q - self.tau) + 1.0
        s = 1.0
        while u.sum() >= optimum + 0.5 * (cut - optimum):
            if s > 1e14:
                raise _Stalled
            q, u = self.centre(q, u, s, None, decrement=0.1)
            s *= 30
        return self.centre(q, u, 0.0, cut)[1]


def mrc_zero_one(S: sp.csr_matrix, tau: np.ndarray, lam: np.ndarray, n_classes: int) -> tuple[np.ndarray, float]:
    """0-1-loss MRC: mu and the minimax risk 1 - tau.mu + lambda.|mu| + mean_j psi(a_j) (an LP)."""
    tK, m = S.shape
    t = tK // n_classes
    # variables [mu+, mu-, theta (free), u >= 0]; rows: S mu - theta_j - u_jy <= 0 ; sum_y u_jy <= 1
    theta_cols = sp.kron(sp.identity(t), np.ones((n_classes, 1)), format="csr")
    A1 = sp.hstack([S, -S, -theta_cols, -sp.identity(tK)], format="csr")
    A2 = sp.hstack([sp.csr_matrix((t, 2 * m + t)), sp.kron(sp.identity(t), np.ones((1, n_classes)))], format="csr")
    c = np.concatenate([lam - tau, lam + tau, np.full(t, 1.0 / t), np.zeros(tK)])
    bounds = [(0, None)] * (2 * m) + [(None, None)] * t + [(0, None)] * tK
    res = solve_lp(c, sp.vstack([A1, A2], format="csr"), np.concatenate([np.zeros(tK), np.ones(t)]),
                   bounds=bounds, what="the 0-1 minimax risk LP")
    return res.x[:m] - res.x[m:2 * m], 1.0 + float(res.fun)


def mrc_log(S: sp.csr_matrix, tau: np.ndarray, lam: np.ndarray, n_classes: int) -> tuple[np.ndarray, float]:
    """Log-loss MRC: mu minimising -tau.mu + lambda.|mu| + mean_j logsumexp(a_j), as an exponential-cone
    programme: variables [mu+, mu-, s (t), v (t*K)] with exp(a_jy - s_j) <= v_jy and sum_y v_jy <= 1."""
    import clarabel

    tK, m = S.shape
    t = tK // n_classes
    nv = 2 * m + t + tK
    s_of_row = sp.kron(sp.identity(t), np.ones((n_classes, 1)), format="csr")
    # exponential cone triples (a_jy - s_j, 1, v_jy) = b - A x, interleaved row by row
    first = sp.hstack([-S, S, s_of_row, sp.csr_matrix((tK, tK))], format="csr")
    third = sp.hstack([sp.csr_matrix((tK, 2 * m + t)), -sp.identity(tK)], format="csr")
    second = sp.csr_matrix((tK, nv))
    triples = sp.vstack([first, second, third], format="csr")
    order = np.arange(3 * tK).reshape(3, tK).T.ravel()
    A_exp, b_exp = triples[order], np.tile([0.0, 1.0, 0.0], tK)
    A_sum = sp.hstack([sp.csr_matrix((t, 2 * m + t)), sp.kron(sp.identity(t), np.ones((1, n_classes)))])
    A_pos = sp.hstack([-sp.identity(2 * m), sp.csr_matrix((2 * m, t + tK))])
    A = sp.vstack([A_pos, A_sum, A_exp], format="csc")
    b = np.concatenate([np.zeros(2 * m), np.ones(t), b_exp])
    c = np.concatenate([lam - tau, lam + tau, np.full(t, 1.0 / t), np.zeros(tK)])
    cones = [clarabel.NonnegativeConeT(2 * m + t)] + [clarabel.ExponentialConeT()] * tK
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solution = clarabel.DefaultSolver(sp.csc_matrix((nv, nv)), c, A, b, cones, settings).solve()
    x = np.asarray(solution.x)
    if not np.isfinite(x).all():
        raise ShiftbenchError(f"the log-loss minimax risk programme failed (Clarabel status {solution.status})")
    # any mu is a classifier: its risk is evaluated from the definition, so an early stop only costs optimality
    mu = x[:m] - x[m:2 * m]
    a = (S @ mu).reshape(t, n_classes)
    amax = a.max(1)
    lse = amax + np.log(np.exp(a - amax[:, None]).sum(1))
    return mu, float(-tau @ mu + lam @ np.abs(mu) + lse.mean())


def simplex_projection(a: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean projection onto the probability simplex: (a - psi(a))_+ (the 0-1 MRC rule)."""
    s = -np.sort(-a, axis=1)
    cums = np.cumsum(s, axis=1) - 1
    k = np.arange(1, a.shape[1] + 1)
    rho = (s - cums / k > 0).sum(1)
    theta = cums[np.arange(len(a)), rho - 1] / rho
    return np.maximum(a - theta[:, None], 0)


def softmax_rule(a: np.ndarray) -> np.ndarray:
    """Row-wise softmax (the log-loss MRC rule)."""
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@dataclass(frozen=True)
class Loss:
    """A loss of the minimax risk classifier: how to solve for mu and the classification rule."""

    solve: Callable[[sp.csr_matrix, np.ndarray, np.ndarray, int], tuple[np.ndarray, float]]
    rule: Callable[[np.ndarray], np.ndarray]


LOSSES = {"0-1": Loss(mrc_zero_one, simplex_projection), "log": Loss(mrc_log, softmax_rule)}


def _fingerprint(X: np.ndarray) -> str:
    X = np.ascontiguousarray(X, dtype=np.float64)
    return hashlib.sha256(f"{X.shape}".encode() + X.tobytes()).hexdigest()


@dataclass
class MinimaxFit:
    """The minimax risk classifier of one pair of weights: mean and confidence vectors, mu and its risk."""

    tau: np.ndarray
    lam: np.ndarray
    mu: np.ndarray
    risk: float


def fit_minimax_classifier(Fs: np.ndarray, onehot: np.ndarray, F_target: np.ndarray, beta: np.ndarray,
                           alpha: np.ndarray, loss: str) -> MinimaxFit:
    """The double-weighted MRC of source features ``Fs`` with one-hot labels and target features
    ``F_target``, training weights beta and testing weights alpha (both one: the unweighted MRC)."""
    n_classes = onehot.shape[1]
    tau = ((onehot * beta[:, None]).T @ Fs / len(Fs)).ravel()
    S = class_score_matrix(F_target, alpha, n_classes)
    lam = confidence_vector(S, tau, n_classes)
    mu, risk = LOSSES[loss].solve(S, tau, lam, n_classes)
    return MinimaxFit(tau, lam, mu, risk)


@dataclass
class _Fit:
    D: float
    weights: KMMWeights
    mrc: MinimaxFit


def check_hyperparameters(owner: str, D: float | str, loss: str, fit_intercept: bool) -> None:
    """Raise a ShiftbenchError naming ``owner`` and the first invalid DW-GCS hyperparameter (for ``__init__``)."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ShiftbenchError(f"{owner}: unknown loss {loss!r}; valid losses: {', '.join(LOSSES)}")
    if not (D == "auto" or (isinstance(D, numbers.Real) and not isinstance(D, bool) and math.isfinite(D) and D >= 1)):
        raise ShiftbenchError(f"{owner}: D must be a number >= 1 or 'auto'; got {D!r}")
    check_bool(fit_intercept, "fit_intercept", owner)


class DoubleWeighting:
    """DW-GCS: DW-KMM weights and a double-weighted minimax risk classifier (transductive)."""

    def __init__(self, D: float | str = 4.0, loss: str = "0-1", sigma: float | None = None,
                 B: float = 1000.0, fit_intercept: bool = False):
        check_hyperparameters("DoubleWeighting", D, loss, fit_intercept)
        check_number(sigma, "sigma", "DoubleWeighting", above=0, allow_none=True)
        check_number(B, "B", "DoubleWeighting", above=0)
        self.D, self.loss, self.sigma, self.B, self.fit_intercept = D, loss, sigma, B, fit_intercept

    def _features(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(X)), X]) if self.fit_intercept else X

    def fit(self, X_source, y_source, X_target) -> DoubleWeighting:
        """Weights, mean and confidence vectors and classifier for this source/target pair."""
        Xs = check_matrix(X_source, "X_source", min_rows=2).astype(np.float64)
        Xt = check_matrix(X_target, "X_target", n_cols=Xs.shape[1], min_rows=2).astype(np.float64)
        y = check_labels(y_source, name="y_source", n=len(Xs))
        self.n_classes_ = int(y.max()) + 1
        X = np.vstack([Xs, Xt])
        self.sigma_ = float(self.sigma) if self.sigma is not None else knn_bandwidth(X)
        kernel = rbf_kernel(X, self.sigma_)
        Fs, self.F_target_ = self._features(Xs), self._features(Xt)
        onehot = np.eye(self.n_classes_)[y]
        grid = D_GRID if self.D == "auto" else (float(self.D),)
        fits, self.failed_D_ = [], {}
        for D in grid:
            try:
                fits.append(self._fit_one(D, kernel, len(Xs), Fs, onehot))
            except ShiftbenchError as error:  # one failed D leaves the others to choose from
                self.failed_D_[D] = str(error)
        if not fits:
            raise ShiftbenchError(f"DoubleWeighting: every D failed; the first: {next(iter(self.failed_D_.values()))}")
        self.risks_ = {f.D: f.mrc.risk for f in fits}
        best = min(fits, key=lambda f: f.mrc.risk)
        self.D_, self.beta_, self.alpha_ = best.D, best.weights.beta, best.weights.alpha
        self.tau_, self.lambda_, self.mu_, self.risk_ = best.mrc.tau, best.mrc.lam, best.mrc.mu, best.mrc.risk
        self._target_fingerprint = _fingerprint(Xt)
        return self

    def _fit_one(self, D: float, kernel: np.ndarray, n: int, Fs: np.ndarray, onehot: np.ndarray) -> _Fit:
        weights = dw_kmm(kernel, n, D, self.B)
        return _Fit(D, weights, fit_minimax_classifier(Fs, onehot, self.F_target_, weights.beta, weights.alpha, self.loss))

    def _check_target(self, X_target) -> None:
        if not hasattr(self, "mu_"):
            raise ShiftbenchError("DoubleWeighting is not fitted; call fit(X_source, y_source, X_target) first")
        X = check_matrix(X_target, "X_target")
        if _fingerprint(X) != self._target_fingerprint:
            raise ShiftbenchError(
                "DoubleWeighting is transductive: it can only predict the target sample it was fitted with "
                "(same rows, same order). Refit with fit(X_source, y_source, X_new) to predict other points."
            )

    def predict_proba(self, X_target) -> np.ndarray:
        """The minimax rule h(y|x) at every fitted target point (t, K).

        A target point with alpha = 0 carries no weight in the minimax risk, so every rule is
        optimal there; we use its unweighted scores (alpha = 1), as the authors' deterministic rule does.
        """
        self._check_target(X_target)
        alpha = np.where(self.alpha_ > 1e-9, self.alpha_, 1.0)
        scores = alpha[:, None] * (self.F_target_ @ self.mu_.reshape(self.n_classes_, -1).T)
        return LOSSES[self.loss].rule(scores)

    def predict(self, X_target) -> np.ndarray:
        """Deterministic prediction: the class with the highest score (argmax of the rule)."""
        self._check_target(X_target)
        return (self.F_target_ @ self.mu_.reshape(self.n_classes_, -1).T).argmax(1)


class DWGCS(DomainAdapter):
    """Double-weighting covariate-shift adaptation (DW-GCS) on standardised source-model features."""

    name: ClassVar[str] = "dwgcs"
    hyperparameters = {
        "D": Float("auto", at_least=1, words=("auto",), doc="test-weight freedom (1: kernel mean matching); "
                                                              "'auto' keeps the D of lowest minimax risk"),
        "loss": Choice("0-1", tuple(LOSSES), doc="loss of the minimax risk classifier"),
        "fit_intercept": Bool(True, doc="add a constant feature"),
        "max_source": Int(1000, allow_none=True, doc="source rows kept (a seeded random subset; None: all)"),
    }
    grid: ClassVar[dict] = {"D": ["auto"], "loss": ["0-1", "log"]}

    def fit(self, X_source, y_source, X_target) -> DWGCS:
        idx = source_subset(len(X_source), self.max_source, self.random_state)
        Xs, self._Xt = standardise(np.asarray(X_source)[idx], np.asarray(X_target))
        self.model_ = DoubleWeighting(self.D, self.loss, fit_intercept=self.fit_intercept).fit(Xs, np.asarray(y_source)[idx], self._Xt)
        self._raw_target = _fingerprint(np.asarray(X_target, dtype=np.float64))
        return self

    def predict_proba(self, X_target) -> np.ndarray:
        if _fingerprint(np.asarray(X_target, dtype=np.float64)) != self._raw_target:
            raise ShiftbenchError("dwgcs is transductive: predict_proba needs the target features it was fitted with")
        return self.model_.predict_proba(self._Xt)
