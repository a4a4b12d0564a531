"""DW-GCS against its definition: the DW-KMM programme, the confidence LP and the minimax risk."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.methods import double_weighting as dw


def shifted_sample(n: int = 60, t: int = 50, d: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    Xs = rng.normal(size=(n, d))
    Xt = rng.normal(size=(t, d)) + 0.6
    w = np.array([1.0, -1.0, 0.5])[:d]
    ys = (Xs @ w + 0.3 * rng.normal(size=n) > 0).astype(int)
    return Xs, ys, Xt


def exact_kernel(X: np.ndarray, sigma: float) -> np.ndarray:
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / (2 * sigma**2))


def dwkmm_objective(K: np.ndarray, beta: np.ndarray, alpha: np.ndarray) -> float:
    w = np.concatenate([beta / len(beta), -alpha / len(alpha)])
    return float(w @ K @ w)


def test_singular_kernel_from_duplicated_points_still_solves():
    Xs, ys, Xt = shifted_sample()
    Xs2, ys2 = np.vstack([Xs, Xs[:10]]), np.r_[ys, ys[:10]]  # duplicated rows make K singular
    K = dw.rbf_kernel(np.vstack([Xs2, Xt]), 1.3)
    np.testing.assert_allclose(K, exact_kernel(np.vstack([Xs2, Xt]), 1.3), atol=1e-12)
    assert np.linalg.matrix_rank(K) < len(K)
    weights = dw.dw_kmm(K, len(Xs2), 4.0)
    assert weights.objective >= -1e-9
    assert weights.objective == pytest.approx(tight_reference(K, len(Xs2), 4.0)[0], rel=1e-6)
    assert_feasible(weights, 4.0)
    model = dw.DoubleWeighting(D=4.0, sigma=1.3).fit(Xs2, ys2, Xt)
    assert model.predict_proba(Xt).shape == (len(Xt), 2)


def test_d_one_is_kernel_mean_matching_with_unit_test_weights():
    cp = pytest.importorskip("cvxpy")
    Xs, _, Xt = shifted_sample()
    n, t = len(Xs), len(Xt)
    X = np.vstack([Xs, Xt])
    sigma = dw.knn_bandwidth(X)
    weights = dw.dw_kmm(dw.rbf_kernel(X, sigma), n, 1.0)
    np.testing.assert_array_equal(weights.alpha, np.ones(t))
    # plain KMM (alpha = 1) written directly on the exact kernel
    K = exact_kernel(X, sigma)
    beta = cp.Variable(n)
    w = cp.hstack([beta / n, -np.ones(t) / t])
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(K))),
                         [beta >= 0, beta <= 1000, cp.abs(cp.sum(beta) / n - 1) <= 1 - 1 / np.sqrt(n)])
    problem.solve(solver="CLARABEL")
    assert dwkmm_objective(K, weights.beta, weights.alpha) == pytest.approx(problem.value, rel=1e-4, abs=1e-9)
    assert weights.objective == pytest.approx(problem.value, rel=1e-4, abs=1e-9)


def test_dwkmm_matches_direct_cvxpy_programme_and_its_constraints():
    cp = pytest.importorskip("cvxpy")
    Xs, _, Xt = shifted_sample(seed=3)
    n, t, D = len(Xs), len(Xt), 4.0
    X = np.vstack([Xs, Xt])
    sigma = dw.knn_bandwidth(X)
    ours = dw.dw_kmm(dw.rbf_kernel(X, sigma), n, D)
    K = exact_kernel(X, sigma)
    beta, alpha = cp.Variable(n), cp.Variable(t)
    cons = [beta >= 0, beta <= 1000 / np.sqrt(D), alpha >= 0, alpha <= 1,
            cp.abs(cp.sum(beta) / n - cp.sum(alpha) / t) <= 1 - 1 / np.sqrt(n),
            cp.norm(alpha - 1) <= (1 - 1 / np.sqrt(D)) * np.sqrt(t)]
    ref = cp.Problem(cp.Minimize(cp.quad_form(cp.hstack([beta / n, -alpha / t]), cp.psd_wrap(K))), cons)
    ref.solve(solver="CLARABEL")
    assert dwkmm_objective(K, ours.beta, ours.alpha) == pytest.approx(ref.value, rel=1e-3, abs=1e-9)
    assert np.linalg.norm(ours.alpha - 1) <= (1 - 1 / np.sqrt(D)) * np.sqrt(t) * (1 + 1e-6)
    assert abs(ours.beta.mean() - ours.alpha.mean()) <= 1 - 1 / np.sqrt(n) + 1e-6


def tight_reference(K: np.ndarray, n: int, D: float, B: float = 1000.0, ridge: float = 1e-10):
    """DW-KMM written directly in cvxpy on K + ridge I, solved by Clarabel at tight tolerances."""
    cp = pytest.importorskip("cvxpy")
    t = len(K) - n
    beta, alpha = cp.Variable(n), cp.Variable(t)
    cons = [beta >= 0, beta <= B / np.sqrt(D), alpha >= 0, alpha <= 1,
            cp.abs(cp.sum(beta) / n - cp.sum(alpha) / t) <= 1 - 1 / np.sqrt(n)]
    cons.append(alpha == 1 if D == 1 else cp.norm(alpha - 1) <= (1 - 1 / np.sqrt(D)) * np.sqrt(t))
    w = cp.hstack([beta / n, -alpha / t])
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(K + ridge * np.eye(len(K))))), cons)
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-15, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=400)
    return problem.value, beta.value, alpha.value


def assert_feasible(weights: dw.KMMWeights, D: float, B: float = 1000.0) -> None:
    """The DW-KMM constraints, the mean and ball constraints to the solver's feasibility tolerance 1e-8."""
    n, t = len(weights.beta), len(weights.alpha)
    assert (weights.beta >= 0).all() and (weights.beta <= B / np.sqrt(D)).all()
    assert (weights.alpha >= 0).all() and (weights.alpha <= 1).all()
    assert abs(weights.beta.mean() - weights.alpha.mean()) <= 1 - 1 / np.sqrt(n) + 1e-8
    assert np.linalg.norm(weights.alpha - 1) <= (1 - 1 / np.sqrt(D)) * np.sqrt(t) + 1e-8


def sample_kernel(seed: int, n: int = 80, t: int = 70) -> np.ndarray:
    Xs, _, Xt = shifted_sample(n, t, seed=seed)
    X = np.vstack([Xs, Xt])
    return dw.rbf_kernel(X, dw.knn_bandwidth(X))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("D", [1.0, dw.D_GRID[1], 4.0])
def test_interior_point_reaches_the_tight_clarabel_optimum(seed, D):
    K = sample_kernel(seed)
    ours = dw.dw_kmm(K, 80, D)
    value, _, _ = tight_reference(K, 80, D)
    assert ours.objective == pytest.approx(value, rel=1e-6)
    assert dwkmm_objective(K + 1e-10 * np.eye(len(K)), ours.beta, ours.alpha) == pytest.approx(ours.objective, rel=1e-12)
    assert_feasible(ours, D)


@pytest.mark.parametrize("D", [1.0, dw.D_GRID[1], 4.0, 100.0])
def test_weights_match_the_reference_where_the_optimum_is_unique(D):
    # a ridge of 1e-3 makes the objective strongly convex, so the minimiser is one point
    K = sample_kernel(2)
    ours = dw.dw_kmm(K, 80, D, ridge=1e-3)
    value, beta, alpha = tight_reference(K, 80, D, ridge=1e-3)
    assert ours.objective == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(ours.beta, beta, atol=1e-3)
    np.testing.assert_allclose(ours.alpha, alpha, atol=1e-3)
    assert_feasible(ours, D)


@pytest.mark.parametrize("D", [1.0, 4.0, 100.0])
def test_solution_satisfies_first_order_optimality(D):
    """KKT for this convex programme (Slater holds): the gradient g of the objective at the solution
    x* satisfies g.x* = min g.y over the feasible set, i.e. no feasible direction decreases it."""
    cp = pytest.importorskip("cvxpy")
    K = sample_kernel(3)
    n, t = 80, 70
    ours = dw.dw_kmm(K, n, D)
    assert_feasible(ours, D)
    scale = np.concatenate([np.full(n, 1 / n), np.full(t, -1 / t)])
    H = (K + 1e-10 * np.eye(n + t)) * np.outer(scale, scale)
    x = np.concatenate([ours.beta, ours.alpha])
    g = 2 * H @ x
    g /= np.abs(g).max()  # a well-scaled linear programme
    beta, alpha = cp.Variable(n), cp.Variable(t)
    cons = [beta >= 0, beta <= 1000 / np.sqrt(D), alpha >= 0, alpha <= 1,
            cp.abs(cp.sum(beta) / n - cp.sum(alpha) / t) <= 1 - 1 / np.sqrt(n)]
    cons.append(alpha == 1 if D == 1 else cp.norm(alpha - 1) <= (1 - 1 / np.sqrt(D)) * np.sqrt(t))
    lp = cp.Problem(cp.Minimize(g[:n] @ beta + g[n:] @ alpha), cons)
    lp.solve(solver="CLARABEL")
    assert lp.status == "optimal"
    # the optimality gap g.(x* - y) is tiny next to the objective's own scale |g|.|x*| (up to the
    # linear programme's own 1e-8 absolute accuracy); it can be slightly negative as x* meets the
    # ball and mean constraints to 1e-8
    assert abs(g @ x - lp.value) <= 1e-7 * np.abs(g) @ np.abs(x) + 1e-8


def test_infeasible_programme_raises_a_clear_error():
    # beta <= 1e-6 cannot reach the mean of alpha (>= 1/sqrt(D) ~ 1) within 1 - 1/sqrt(n)
    K = sample_kernel(0)
    with pytest.raises(ShiftbenchError, match="did not converge.*infeasible"):
        dw.dw_kmm(K, 80, 1.0001, B=1e-6)


def test_iteration_limit_raises_a_clear_error():
    from shiftbench.methods import _dw_kmm_ipm as ipm

    m = 5
    P = np.eye(m) + 0.1
    G, h = np.ones((1, m)), np.array([2.0])
    with pytest.raises(ShiftbenchError, match=r"did not converge \(stopped after 2 iterations"):
        ipm.solve_box_qp(P, -np.ones(m), np.ones(m), G, h, None, np.full(m, 0.5), max_iter=2)
    result = ipm.solve_box_qp(P, -np.ones(m), np.ones(m), G, h, None, np.full(m, 0.5))
    np.testing.assert_allclose(result.x, np.full(m, 0.4), atol=1e-7)  # sum = 2 is active: x = 2/5


def test_d_below_one_is_rejected():
    with pytest.raises(ShiftbenchError, match="D must be >= 1"):
        dw.dw_kmm(sample_kernel(0), 80, 0.5)


def test_larger_d_relaxes_the_test_weights():
    # B / sqrt(D) stays inactive on this grid, so the feasible sets grow with D
    Xs, _, Xt = shifted_sample(seed=5)
    X = np.vstack([Xs, Xt])
    L = dw.rbf_kernel(X, dw.knn_bandwidth(X))
    fits = [dw.dw_kmm(L, len(Xs), D) for D in dw.D_GRID]
    objectives = np.array([f.objective for f in fits])
    deviations = np.array([np.linalg.norm(f.alpha - 1) for f in fits])
    assert np.all(np.diff(objectives) <= 1e-7)
    assert np.all(np.diff(deviations) >= -1e-6)
    assert deviations[0] == 0 and deviations[-1] > 0


def test_simplex_projection_is_the_subset_maximum_rule():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 4)) * 2
    h = dw.simplex_projection(a)
    np.testing.assert_allclose(h.sum(1), 1)
    assert (h >= 0).all()
    subsets = [c for r in range(1, 5) for c in itertools.combinations(range(4), r)]
    psi = np.array([max((row[list(c)].sum() - 1) / len(c) for c in subsets) for row in a])
    np.testing.assert_allclose(h, np.maximum(a - psi[:, None], 0), atol=1e-12)


def minimax_risk_01(model: dw.DoubleWeighting) -> float:
    """The 0-1 minimax risk at the fitted mu, from the definition (subsets enumerated)."""
    K = model.n_classes_
    mu = model.mu_
    a = model.alpha_[:, None] * (model.F_target_ @ mu.reshape(K, -1).T)
    subsets = [c for r in range(1, K + 1) for c in itertools.combinations(range(K), r)]
    psi = np.array([max((row[list(c)].sum() - 1) / len(c) for c in subsets) for row in a])
    return float(1 - model.tau_ @ mu + model.lambda_ @ np.abs(mu) + psi.mean())


def test_zero_one_mrc_is_optimal_against_direct_cvxpy():
    cp = pytest.importorskip("cvxpy")
    Xs, ys, Xt = shifted_sample(seed=7)
    model = dw.DoubleWeighting(D=4.0, loss="0-1").fit(Xs, ys, Xt)
    assert model.risk_ == pytest.approx(minimax_risk_01(model), abs=1e-7)
    K, t = model.n_classes_, len(Xt)
    mu = cp.Variable(model.tau_.size)
    a = cp.reshape(model.F_target_ @ cp.reshape(mu, (K, -1), order="C").T, (t, K), order="C")
    a = cp.multiply(model.alpha_[:, None], a)
    subsets = [c for r in range(1, K + 1) for c in itertools.combinations(range(K), r)]
    psi = cp.max(cp.hstack([cp.reshape((cp.sum(a[:, list(c)], axis=1) - 1) / len(c), (t, 1), order="C") for c in subsets]), axis=1)
    ref = cp.Problem(cp.Minimize(1 - model.tau_ @ mu + model.lambda_ @ cp.abs(mu) + cp.sum(psi) / t))
    ref.solve(solver="CLARABEL")
    # ours is the risk at a concrete mu (checked above), so the optimum is no higher; Clarabel stops
    # up to about 1e-5 above it when lambda has components at delta
    assert ref.value - 2e-5 <= model.risk_ <= ref.value + 1e-6


def test_log_mrc_is_optimal_against_direct_cvxpy():
    cp = pytest.importorskip("cvxpy")
    Xs, ys, Xt = shifted_sample(seed=8)
    model = dw.DoubleWeighting(D=2.0, loss="log").fit(Xs, ys, Xt)
    K, t = model.n_classes_, len(Xt)
    mu = cp.Variable(model.tau_.size)
    scores = cp.multiply(model.alpha_[:, None], model.F_target_ @ cp.reshape(mu, (K, -1), order="C").T)
    ref = cp.Problem(cp.Minimize(-model.tau_ @ mu + model.lambda_ @ cp.abs(mu) + cp.sum(cp.log_sum_exp(scores, axis=1)) / t))
    ref.solve(solver="CLARABEL")
    assert model.risk_ == pytest.approx(ref.value, abs=1e-5)
    np.testing.assert_allclose(model.predict_proba(Xt).sum(1), 1)


def test_confidence_vector_covers_tau():
    Xs, ys, Xt = shifted_sample(seed=9)
    model = dw.DoubleWeighting(D=4.0).fit(Xs, ys, Xt)
    assert (model.lambda_ >= dw.CONFIDENCE_DELTA - 1e-12).all()
    # some target labelling p has |E_p[alpha phi] - tau| <= lambda: the uncertainty set is non-empty,
    # so the minimax risk is a probability
    assert 0 <= model.risk_ <= 1


def test_auto_picks_lowest_minimax_risk_and_predicts():
    Xs, ys, Xt = shifted_sample(seed=11)
    model = dw.DoubleWeighting(D="auto").fit(Xs, ys, Xt)
    assert set(model.risks_) == set(dw.D_GRID)
    assert model.risk_ == min(model.risks_.values()) and model.risks_[model.D_] == model.risk_
    proba = model.predict_proba(Xt)
    assert proba.shape == (len(Xt), 2)
    np.testing.assert_array_equal(model.predict(Xt), proba.argmax(1))


def test_transductive_predictions_on_other_points_raise():
    Xs, ys, Xt = shifted_sample()
    model = dw.DoubleWeighting(D=2.0).fit(Xs, ys, Xt)
    with pytest.raises(ShiftbenchError, match="transductive"):
        model.predict(Xt[::-1])
    with pytest.raises(ShiftbenchError, match="not fitted"):
        dw.DoubleWeighting().predict(Xt)
    with pytest.raises(ShiftbenchError, match="unknown loss"):
        dw.DoubleWeighting(loss="hinge")


def degenerate_confidence_problem():
    """Haberman (shipped with the dw-gcs reproduction), feature-1 shift, repetition 2, at D = 4: a
    confidence LP whose optimal face is wide (HiGHS and Clarabel return optima far apart)."""
    from shiftbench.reproductions import dw_gcs

    X, Z, y = dw_gcs.load("Haberman")
    train, test = dw_gcs.split("Haberman", X, Z, "feature1", np.random.default_rng([2, 0, 2]))
    Zs, Zt = Z[train], Z[test]
    weights = dw.dw_kmm(dw.rbf_kernel(np.vstack([Zs, Zt]), dw_gcs.bandwidth(Z)), len(Zs), 4.0)
    tau = ((np.eye(2)[y[train]] * weights.beta[:, None]).T @ Zs / len(Zs)).ravel()
    return dw.class_score_matrix(Zt, weights.alpha, 2), tau, Zt


def clarabel_label_distribution(S, tau, n_classes):
    """An optimal p of the confidence LP from Clarabel through cvxpy (interior point, no crossover)."""
    cp = pytest.importorskip("cvxpy")
    tK, m = S.shape
    t = tK // n_classes
    p, u = cp.Variable(tK), cp.Variable(m)
    constraints = [p >= 0, cp.sum(cp.reshape(p, (t, n_classes), order="C"), axis=1) == 1 / t,
                   cp.abs(S.T @ p - tau) <= u]
    cp.Problem(cp.Minimize(cp.sum(u)), constraints).solve(solver="CLARABEL")
    return p.value


def test_confidence_vector_does_not_depend_on_the_lp_solver():
    S, tau, Zt = degenerate_confidence_problem()
    highs_p, clarabel_p = dw.vertex_label_distribution(S, tau, 2), clarabel_label_distribution(S, tau, 2)
    highs_u, clarabel_u = np.abs(S.T @ highs_p - tau), np.abs(S.T @ clarabel_p - tau)
    # the same optimal value, optima far apart, and the raw optima give different risks
    assert highs_u.sum() == pytest.approx(clarabel_u.sum(), rel=1e-7)
    assert np.abs(highs_u - clarabel_u).max() > 0.1 * highs_u.max()
    raw_risks = [dw.mrc_zero_one(S, tau, u + dw.CONFIDENCE_DELTA, 2)[1] for u in (highs_u, clarabel_u)]
    assert abs(raw_risks[0] - raw_risks[1]) > 1e-4
    # the canonical point: the same confidence vector, risk and predictions from either solver's optimum
    ours = [dw.confidence_vector(S, tau, 2, label_distribution=solver)
            for solver in (dw.vertex_label_distribution, clarabel_label_distribution)]
    np.testing.assert_allclose(ours[0], ours[1], rtol=0, atol=1e-9)
    fits = [dw.mrc_zero_one(S, tau, lam, 2) for lam in ours]
    assert fits[0][1] == pytest.approx(fits[1][1], abs=1e-9)
    predictions = [(Zt @ mu.reshape(2, -1).T).argmax(1) for mu, _ in fits]
    np.testing.assert_array_equal(predictions[0], predictions[1])
    # and it is optimal: sum(lambda - delta) within the widened face of the LP optimum
    width = dw.CENTRE_SLACKS[0] * (highs_u.sum() + np.abs(tau).sum())
    assert highs_u.sum() - 1e-9 <= (ours[0] - dw.CONFIDENCE_DELTA).sum() <= highs_u.sum() + width
    # it lies inside the face, not at a vertex: every residual is split between the class blocks
    assert (ours[0] - dw.CONFIDENCE_DELTA > 1e-4).all()


def test_confidence_vector_is_the_analytic_centre_of_the_widened_face():
    """Against the analytic centre written directly in cvxpy (exponential cones, Clarabel)."""
    cp = pytest.importorskip("cvxpy")
    S, tau, _ = degenerate_confidence_problem()
    lam = dw.confidence_vector(S, tau, 2)
    p = dw.vertex_label_distribution(S, tau, 2)
    optimum = float(np.abs(S.T @ p - tau).sum())
    cut = optimum + dw.CENTRE_SLACKS[0] * (optimum + np.abs(tau).sum())
    t = S.shape[0] // 2
    q, u = cp.Variable(2 * t), cp.Variable(len(tau))
    r = (S.T / t) @ q - tau
    barrier = cp.sum(cp.log(q)) + cp.sum(cp.log(u - r)) + cp.sum(cp.log(u + r)) + cp.log(cut - cp.sum(u))
    cp.Problem(cp.Maximize(barrier), [cp.sum(cp.reshape(q, (t, 2), order="C"), axis=1) == 1]).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    np.testing.assert_allclose(lam, u.value + dw.CONFIDENCE_DELTA, rtol=0, atol=1e-4)  # Clarabel: ~1e-5


def test_attained_mean_vector_gives_the_smallest_confidence_vector():
    # alpha = 1 and tau = the mean of the target features under some labelling: tau is attained
    rng = np.random.default_rng(0)
    Ft = rng.normal(size=(30, 2))
    labels = rng.integers(0, 2, 30)
    tau = (np.eye(2)[labels].T @ Ft / 30).ravel()
    lam = dw.confidence_vector(dw.class_score_matrix(Ft, np.ones(30), 2), tau, 2)
    np.testing.assert_array_equal(lam, np.full(4, dw.CONFIDENCE_DELTA))


def breast_cancer_cycling_problem():
    """BreastCancer (56 of 200 rows duplicated), feature-1 shift, repetition 2, D = 1.5625: a DW-KMM
    programme on which the plain Mehrotra rule cycles (primal residual about 0.3 after 100 iterations)."""
    from shiftbench.reproductions import dw_gcs

    X, Z, y = dw_gcs.load("BreastCancer")
    train, test = dw_gcs.split("BreastCancer", X, Z, "feature1", np.random.default_rng([1, 0, 2]))
    points = np.vstack([Z[train], Z[test]])
    return dw.rbf_kernel(points, dw_gcs.bandwidth(Z)), len(train), Z[train], y[train], Z[test]


def test_interior_point_restarts_with_centring_where_mehrotra_cycles(monkeypatch):
    kernel, n, Zs, ys, Zt = breast_cancer_cycling_problem()
    points = len(kernel) - len(np.unique(np.round(np.vstack([Zs, Zt]), 12), axis=0))
    assert points >= 40  # many duplicated rows: a singular kernel
    D = dw.D_GRID[2]
    attempts = []
    original = dw.solve_box_qp

    def recording(*args, **kwargs):
        attempts.append(kwargs.get("min_centring", 0.0))
        return original(*args, **kwargs)

    monkeypatch.setattr(dw, "solve_box_qp", recording)
    weights = dw.dw_kmm(kernel, n, D)
    assert attempts == [0.0, dw.RESTART_CENTRING]  # the plain rule failed, the restart converged
    assert weights.objective == pytest.approx(tight_reference(kernel, n, D)[0], rel=1e-6)
    assert_feasible(weights, D)
    model = dw.DoubleWeighting(D="auto").fit(Zs, ys, Zt)
    assert model.failed_D_ == {} and set(model.risks_) == set(dw.D_GRID)


@pytest.mark.parametrize("D", [1.0, dw.D_GRID[2], 4.0])
def test_near_singular_kernel_from_near_duplicates(D):
    Xs, _, Xt = shifted_sample(40, 40)
    rng = np.random.default_rng(1)
    Xs = np.vstack([Xs, Xs[:30] + 1e-9 * rng.normal(size=(30, 3))])  # 30 near-copies
    Xt = np.vstack([Xt, Xt[:20] + 1e-9 * rng.normal(size=(20, 3))])
    X = np.vstack([Xs, Xt])
    K = dw.rbf_kernel(X, dw.knn_bandwidth(X))
    assert np.linalg.eigvalsh(K)[:50].max() < 1e-12
    weights = dw.dw_kmm(K, len(Xs), D)
    assert weights.objective == pytest.approx(tight_reference(K, len(Xs), D)[0], rel=1e-6, abs=1e-12)
    assert_feasible(weights, D)


def test_one_failed_d_leaves_the_others(monkeypatch):
    Xs, ys, Xt = shifted_sample(seed=4)
    original = dw.dw_kmm

    def failing_at_four(kernel, n, D, B=1000.0):
        if D == 4.0:
            raise ShiftbenchError("DW-KMM interior point did not converge (test)")
        return original(kernel, n, D, B)

    monkeypatch.setattr(dw, "dw_kmm", failing_at_four)
    model = dw.DoubleWeighting(D="auto").fit(Xs, ys, Xt)
    assert list(model.failed_D_) == [4.0] and 4.0 not in model.risks_ and len(model.risks_) == 9
    monkeypatch.setattr(dw, "dw_kmm", lambda kernel, n, D, B=1000.0: failing_at_four(kernel, n, 4.0, B))
    with pytest.raises(ShiftbenchError, match="every D failed.*did not converge"):
        dw.DoubleWeighting(D="auto").fit(Xs, ys, Xt)


def test_lp_solve_error_retries_with_the_dual_simplex(monkeypatch):
    import scipy.optimize

    calls = []
    original = scipy.optimize.linprog

    def first_fails(*args, method, **kwargs):
        calls.append(method)
        result = original(*args, method=method, **kwargs)
        if len(calls) == 1:
            result.status, result.message = 4, "Solve error"
        return result

    monkeypatch.setattr(scipy.optimize, "linprog", first_fails)
    res = dw.solve_lp(np.array([1.0, 1.0]), np.array([[-1.0, -1.0]]), np.array([-1.0]), bounds=(0, None))
    assert calls == ["highs", "highs-ds"] and res.fun == pytest.approx(1.0)
