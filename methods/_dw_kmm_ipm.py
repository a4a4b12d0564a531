"""Dense primal-dual interior-point method for the DW-KMM quadratic programme.

Solves

    min  (1/2) x^T P x + q^T x
    s.t. 0 <= x <= upper                                  (box, kept strictly feasible)
         G x <= h                                         (a few dense rows)
         || x[ball] - centre ||_2 <= radius               (optional Euclidean ball on a block)

for a dense positive definite P (the DW-KMM kernel matrix with its ridge). The ball is treated as the
smooth concave constraint c(x) = (radius^2 - ||x[ball] - centre||^2) / (2 radius) >= 0; it and the
rows of G get slacks s >= 0 and duals z >= 0 (infeasible start); the lower bounds get duals zl >= 0
and the upper bounds slacks w = upper - x >= 0 (their own variables, so that a bound active at 1 is
not lost to the rounding of 1 - x) with duals zu >= 0.

Each Newton system reduces to one symmetric positive definite m x m system

    (P + diag(zl/x + zu/w) + (z_ball/radius) I_ball + J^T diag(z/s) J) dx = rhs

where J (k x m, k <= 3) holds the gradients of the rows and the ball: the dense matrix plus a
rank-k term, added in place (O(k m^2)) and factored once per iteration by LAPACK's Cholesky, with a
ridge at rounding level and iterative refinement. Mehrotra's predictor-corrector reuses the
factorisation for both directions, with one step length for primal and dual variables.

Why not Sherman-Morrison-Woodbury for the rank-k term: P + diag alone has condition numbers up
to about 1e12 for these kernels (numerical rank about m/2, eigenvalues down to the ridge), and
Woodbury through it stalled or failed on 3 (m = 400) and 8 (m = 1000) of 33 test problems, and
still on some when only the weights beyond P's scale were sent through Woodbury. Adding the term to the matrix is accurate until the very end, where
the weight z/s of an active constraint (~1/mu) can swamp the matrix so that Cholesky fails; the
iterate is then accepted within 100 times the tolerances (as Clarabel's AlmostSolved), which
happened in 2 of 33 test problems at m = 2000 after they had reached gaps of 5e-8 relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from shiftbench.errors import ShiftbenchError

STEP_FRACTION = 0.995  # fraction of the step to the boundary of the positive orthant
REFINEMENT_STEPS = 3  # at most this many iterative-refinement steps per Newton solve


@dataclass(frozen=True)
class Ball:
    """The constraint || x[start:] - centre || <= radius on the trailing block of x."""

    start: int
    centre: float
    radius: float


@dataclass
class IPMResult:
    """Primal solution, iteration count and the final residuals of the interior-point method."""

    x: np.ndarray
    iterations: int
    primal_residual: float
    dual_residual: float
    gap: float


@dataclass
class _Point:
    """Primal-dual iterate (or direction): x, its upper-bound slacks w and box duals; slacks and duals
    of the rows of G and the ball."""

    x: np.ndarray
    w: np.ndarray
    zl: np.ndarray
    zu: np.ndarray
    s: np.ndarray
    z: np.ndarray


class _Problem:
    """The data of the programme and the evaluation of its general constraints c(x) >= 0."""

    def __init__(self, P: np.ndarray, q: np.ndarray, upper: np.ndarray, G: np.ndarray, h: np.ndarray,
                 ball: Ball | None, constant: float):
        self.P, self.q, self.upper, self.G, self.h, self.ball, self.constant = P, q, upper, G, h, ball, constant
        self.m, self.k = len(q), len(h) + (ball is not None)

    def constraints(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values c(x) (k,) of the rows h - G x and the ball, and their gradients J (k, m)."""
        c, J = self.h - self.G @ x, -self.G
        if self.ball is not None:
            b = self.ball
            dev = x[b.start:] - b.centre
            grad = np.zeros(self.m)
            grad[b.start:] = -dev / b.radius
            c = np.append(c, (b.radius**2 - dev @ dev) / (2 * b.radius))
            J = np.vstack([J, grad])
        return c, J


class _NewtonSystem:
    """The reduced Newton matrix P + diag(d) + J^T diag(w) J of one iteration, factored once.

    ``d`` gathers the box barrier terms and the ball's curvature, ``w = z / s`` weighs the rank-k term.
    A tiny ridge keeps the factorisation numerically positive definite; ``solve`` removes its effect by
    iterative refinement against the exact matrix.
    """

    def __init__(self, P: np.ndarray, buffer: np.ndarray, d: np.ndarray, J: np.ndarray, w: np.ndarray,
                 ridge: float):
        self.P, self.d, self.J, self.w = P, d, J, w
        np.copyto(buffer, P.T)  # P is symmetric: its transpose is the contiguous F-ordered copy LAPACK wants
        m = len(d)
        buffer[np.arange(m), np.arange(m)] += d + ridge
        for weight, row in zip(w, J):
            scipy.linalg.blas.dsyr(weight, row, lower=1, a=buffer, overwrite_a=1)  # lower triangle, in place
        self.factor = scipy.linalg.cho_factor(buffer, lower=True, overwrite_a=True, check_finite=False)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """The solution of the unregularised system (to about 1e-12 relative residual where reachable)."""
        dx = scipy.linalg.cho_solve(self.factor, rhs, check_finite=False)
        for _ in range(REFINEMENT_STEPS):
            residual = rhs - (self.P @ dx + self.d * dx + self.J.T @ (self.w * (self.J @ dx)))
            if np.abs(residual).max() <= 1e-12 * np.abs(rhs).max():
                break
            dx += scipy.linalg.cho_solve(self.factor, residual, check_finite=False)
        return dx


def _max_step(v: np.ndarray, dv: np.ndarray) -> float:
    """Largest step a <= 1 keeping v + a dv >= 0 (v > 0)."""
    neg = dv < 0
    return min(1.0, float(np.min(-v[neg] / dv[neg]))) if neg.any() else 1.0


def solve_box_qp(P: np.ndarray, q: np.ndarray, upper: np.ndarray, G: np.ndarray, h: np.ndarray,
                 ball: Ball | None, x0: np.ndarray, constant: float = 0.0, tol_feas: float = 1e-8,
                 tol_gap: float = 1e-9, max_iter: int = 100, min_centring: float = 0.0) -> IPMResult:
    """Solve the programme of the module docstring from a starting x0 strictly inside the box.

    Stops when the primal residual max |c(x) - s| and the relative dual residual
    ||P x + q - zl + zu - J^T z||_inf / (1 + ||P x||_inf + ||q||_inf) are below ``tol_feas`` and the
    complementarity gap is below ``tol_gap`` max(1, |objective + constant|) (``constant``, the part of
    the objective that does not depend on x, only sets the scale of the gap); if rounding stops the
    iterations first (a Newton matrix that cannot be factored), 100 times these tolerances are
    accepted. Raises ShiftbenchError otherwise, after ``max_iter`` iterations or on divergence.

    ``min_centring`` is a floor on Mehrotra's centring parameter sigma = (mu_aff / mu)^3: 0 keeps the
    plain predictor-corrector (fastest); about 0.3 keeps the iterates nearer the central path, which
    costs a few iterations but avoids the cycles the plain rule can fall into on kernels with many
    duplicated points (the iterates then circle with a primal residual of about 0.3).

    BLAS runs on one thread: most of an iteration is memory-bound matrix-vector work, and a second
    thread made the solve about three times more expensive in CPU time (and slower in wall time) on
    the two-core machine this was measured on.
    """
    if not (np.all(x0 > 0) and np.all(x0 < upper)):
        raise ValueError("x0 must lie strictly inside the box")
    with threadpool_limits(limits=1, user_api="blas"):
        return _interior_point(_Problem(P, q, upper, G, h, ball, constant), x0, tol_feas, tol_gap, max_iter,
                               min_centring)


def _interior_point(prob: _Problem, x0: np.ndarray, tol_feas: float, tol_gap: float, max_iter: int,
                    min_centring: float) -> IPMResult:
    """Mehrotra predictor-corrector iterations of ``solve_box_qp``."""
    P, q, upper, ball, m = prob.P, prob.q, prob.upper, prob.ball, prob.m
    n_pairs = 2 * m + prob.k  # complementarity pairs: lower and upper bounds, rows and ball
    # start: complementarity products all equal to mu0, so that the initial gap is the objective at x0
    # (an upper bound on its distance to the optimum when the objective is non-negative)
    c0, _ = prob.constraints(x0)
    s0 = np.maximum(c0, 1.0)
    mu0 = max(float(0.5 * x0 @ (P @ x0) + q @ x0) + prob.constant, 1.0) / n_pairs
    w0 = upper - x0
    pt = _Point(x0.copy(), w0, mu0 / x0, mu0 / w0, s0, mu0 / s0)
    # Cholesky's rounding error is about m eps ||P||: a ridge of a few times that keeps the Newton
    # matrix numerically positive definite when P's smallest eigenvalues are at the kernel's ridge
    ridge = 4 * m * np.finfo(float).eps * float(np.abs(P).sum(1).max())
    buffer = np.empty((m, m), order="F")
    for iteration in range(max_iter + 1):
        x, w, zl, zu, s, z = pt.x, pt.w, pt.zl, pt.zu, pt.s, pt.z
        r_u = x + w - upper
        c, J = prob.constraints(x)
        Px = P @ x
        r_d = Px + q - zl + zu - J.T @ z
        r_p = c - s
        gap = float(x @ zl + w @ zu + s @ z)
        primal_res = max(float(np.abs(r_p).max()) if prob.k else 0.0, float(np.abs(r_u).max()))
        dual_res = float(np.abs(r_d).max() / (1.0 + np.abs(Px).max() + np.abs(q).max()))
        objective = float(0.5 * x @ Px + q @ x) + prob.constant
        if primal_res <= tol_feas and dual_res <= tol_feas and gap <= tol_gap * max(1.0, abs(objective)):
            return IPMResult(x, iteration, primal_res, dual_res, gap)
        if iteration == max_iter:
            break
        d = zl / x + zu / w
        if ball is not None:
            d[ball.start:] += z[-1] / ball.radius  # -z_ball times the ball's Hessian -I / radius
        try:
            system = _NewtonSystem(P, buffer, d, J, z / s, ridge)
        except np.linalg.LinAlgError:
            # rounding has caught up (an active constraint's weight z/s ~ 1/mu swamps the matrix):
            # accept the iterate if it is within 100 times the tolerances, as Clarabel's AlmostSolved
            if primal_res <= 100 * tol_feas and dual_res <= 100 * tol_feas and gap <= 100 * tol_gap * max(1.0, abs(objective)):
                return IPMResult(x, iteration, primal_res, dual_res, gap)
            break

        def direction(rl: np.ndarray, ru: np.ndarray, rz: np.ndarray) -> _Point:
            """Newton direction whose complementarity increments are x zl: rl, w zu: ru, s z: rz."""
            dx = system.solve(-r_d + rl / x - (ru + zu * r_u) / w + J.T @ ((rz - z * r_p) / s))
            dw = -r_u - dx
            ds = J @ dx + r_p
            return _Point(dx, dw, (rl - zl * dx) / x, (ru - zu * dw) / w, ds, (rz - z * ds) / s)

        def step_length(dp: _Point) -> float:
            """Largest step in [0, 1] keeping every slack and dual non-negative."""
            return min(_max_step(x, dp.x), _max_step(w, dp.w), _max_step(s, dp.s),
                       _max_step(zl, dp.zl), _max_step(zu, dp.zu), _max_step(z, dp.z))

        affine = direction(-x * zl, -w * zu, -s * z)
        a_aff = step_length(affine)
        mu_aff = float((x + a_aff * affine.x) @ (zl + a_aff * affine.zl)
                       + (w + a_aff * affine.w) @ (zu + a_aff * affine.zu)
                       + (s + a_aff * affine.s) @ (z + a_aff * affine.z)) / n_pairs
        mu = gap / n_pairs
        target = max((mu_aff / mu) ** 3, min_centring) * mu  # Mehrotra's sigma mu, sigma = (mu_aff / mu)^3
        step = direction(target - x * zl - affine.x * affine.zl,
                         target - w * zu - affine.w * affine.zu,
                         target - s * z - affine.s * affine.z)
        a = STEP_FRACTION * step_length(step)
        pt = _Point(x + a * step.x, w + a * step.w, zl + a * step.zl, zu + a * step.zu, s + a * step.s, z + a * step.z)
        if not (np.all(pt.x > 0) and np.all(pt.w > 0) and np.isfinite(a * step.zl + a * step.zu).all()):
            break  # diverging (an infeasible programme) or lost to rounding
    raise ShiftbenchError(
        f"DW-KMM interior point did not converge (stopped after {iteration} iterations; primal residual {primal_res:.1e}, "
        f"dual residual {dual_res:.1e}, gap {gap:.1e}); the constraints may be infeasible (B too small for D?)")
