"""Matrix-free curvature against exact answers: quadratics with a known Hessian and a small MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gdchaos.core import data

from gdchaos.core import maps

from gdchaos.core import models
from gdchaos.analyses.curvature import (
    SpectralDensity,
    Subspace,
    curvature_info,
    curvature_info_along,
    direction_subspace,
    flat_hvp_fn,
    gaussian_density,
    hessian_density,
    ascending_hessian_eigenpairs,
    bottom_hessian_eigenpairs,
    top_hessian_eigenpairs,
    hutchinson,
    hutchinson_trace,
    hvp,
    hvp_fn,
    lanczos,
    power_iteration,
    random_subspace_overlap,
    ritz_pairs,
    select_directions,
    sharpness,
    slq,
    spectral_moment,
    subspace_overlap,
)
from gdchaos.core.errors import ConfigError
from gdchaos.core.losses import cross_entropy
from gdchaos.analyses.lyapunov.local import hessian_matrix

EIGS = np.array([-2.0, -0.5, 0.1, 0.3, 0.7, 1.0, 1.5, 2.5, 4.0, 6.0])
N = EIGS.size
ROT = np.linalg.qr(np.random.default_rng(0).normal(size=(N, N)))[0]
A_NP = ROT @ np.diag(EIGS) @ ROT.T
A = jnp.asarray(A_NP)
PARAMS = {"a": jnp.ones((2, 3)), "b": jnp.linspace(-1.0, 1.0, 4)}  # N = 10 over two leaves
_, UNRAVEL = ravel_pytree(PARAMS)


def flat(tree):
    return ravel_pytree(tree)[0]


def quad(p):
    v = flat(p)
    return 0.5 * v @ A @ v


def rows(vectors):
    return np.asarray(jax.vmap(flat)(vectors))


def assert_same_directions(got_rows, want_cols, atol):
    """Each row of ``got_rows`` equals ± the matching column of ``want_cols``."""
    for g, w in zip(got_rows, np.asarray(want_cols).T):
        assert abs(abs(float(np.dot(g, w))) - 1.0) < atol
        assert abs(float(np.linalg.norm(g)) - 1.0) < 1e-10


# --------------------------------------------------------------------------- HVP


def test_hvp_is_a_times_v_for_pytree_params():
    v = UNRAVEL(jnp.arange(1.0, N + 1))
    want = A_NP @ np.arange(1.0, N + 1)
    np.testing.assert_allclose(flat(hvp(quad, PARAMS, v)), want, rtol=1e-12)
    np.testing.assert_allclose(flat(hvp_fn(quad, PARAMS)(v)), want, rtol=1e-12)
    matvec, flat0, unravel = flat_hvp_fn(quad, PARAMS)
    np.testing.assert_allclose(matvec(jnp.arange(1.0, N + 1)), want, rtol=1e-12)
    assert flat0.shape == (N,) and unravel(flat0)["a"].shape == (2, 3)


# --------------------------------------------------------------------------- Lanczos, power iteration


def test_lanczos_top_and_bottom_k_match_eigh():
    w, u = np.linalg.eigh(A_NP)
    top = top_hessian_eigenpairs(quad, PARAMS, 3, num_iters=N, key=jax.random.key(3))
    bottom = bottom_hessian_eigenpairs(quad, PARAMS, 3, num_iters=N, key=jax.random.key(3))
    np.testing.assert_allclose(top.values, w[::-1][:3], atol=1e-10)
    np.testing.assert_allclose(bottom.values, w[:3], atol=1e-10)
    assert top.vectors["a"].shape == (3, 2, 3) and top.vectors["b"].shape == (3, 4)
    assert_same_directions(rows(top.vectors), u[:, ::-1][:, :3], atol=1e-10)
    assert_same_directions(rows(bottom.vectors), u[:, :3], atol=1e-10)
    assert np.all(np.asarray(top.residuals) < 1e-10)


def test_lanczos_finds_repeated_eigenvalues_with_their_multiplicity():
    eigs = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 5.0, 5.0])
    q = np.linalg.qr(np.random.default_rng(2).normal(size=(8, 8)))[0]
    a = jnp.asarray(q @ np.diag(eigs) @ q.T)
    @jax.jit
    def run(v, key):
        res = lanczos(lambda u: a @ u, v, 8, key)
        return res, ritz_pairs(res)

    res, (values, vectors, _) = run(jnp.ones(8), jax.random.key(1))
    np.testing.assert_allclose(values, eigs, atol=1e-10)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(8), atol=1e-10)  # orthonormal despite breakdowns
    # 4 distinct eigenvalues: the first Krylov space is invariant after 4 steps; a restart
    # then finds the 3 distinct ones left (0, 1, 5), a second restart the last 0
    assert res.restarted[:-1].tolist() == [False, False, False, True, False, False, True]


def test_power_iteration_top_eigenvalue():
    # |λ_max| = 6 dominates |λ_min| = 2: error shrinks like (4/6)^iters
    pair = power_iteration(quad, PARAMS, num_iters=200, key=jax.random.key(0))
    assert float(pair.values[0]) == pytest.approx(6.0, abs=1e-10)
    assert_same_directions(rows(pair.vectors), np.linalg.eigh(A_NP)[1][:, -1:], atol=1e-10)


def test_ascending_hessian_eigenpairs_full_and_lanczos_agree():
    full = ascending_hessian_eigenpairs(quad, PARAMS, method="full")
    np.testing.assert_allclose(full.values, EIGS, atol=1e-12)
    ends = ascending_hessian_eigenpairs(quad, PARAMS, 2, method="lanczos", num_iters=N)
    np.testing.assert_allclose(ends.values, EIGS[[0, 1, -2, -1]], atol=1e-10)
    # 2k > num_iters: the two ends overlap and are counted once
    both_ends = ascending_hessian_eigenpairs(quad, PARAMS, 6, method="lanczos", num_iters=N)
    np.testing.assert_allclose(both_ends.values, EIGS, atol=1e-10)


def test_lanczos_top_k_matches_explicit_hessian_of_an_mlp():
    ds = data.iris()
    net = models.mlp((4, 5, 3), activation="sigmoid")
    loss_fn = maps.supervised_loss(net.apply, cross_entropy)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    loss = lambda p: loss_fn(p, x, y)
    params = net.init(jax.random.key(0))
    assert models.count_params(params) == 43
    w, u = np.linalg.eigh(np.asarray(hessian_matrix(loss, params)))
    top = top_hessian_eigenpairs(loss, params, 3, num_iters=30)  # 30 < N = 43 HVPs
    np.testing.assert_allclose(top.values, w[::-1][:3], rtol=1e-8)
    assert_same_directions(rows(top.vectors), u[:, ::-1][:, :3], atol=1e-6)
    # the Ritz residual estimate bounds the true residual ‖Hv − λv‖ (up to roundoff)
    h = np.asarray(hessian_matrix(loss, params))
    true_res = np.linalg.norm(rows(top.vectors) @ h - np.asarray(top.values)[:, None] * rows(top.vectors), axis=1)
    assert np.all(true_res <= np.asarray(top.residuals) + 1e-12) and np.all(true_res < 1e-6)
    # the same Lanczos run gives the bottom of the spectrum (negative curvature at this point)
    bottom = bottom_hessian_eigenpairs(loss, params, 2, num_iters=30)
    np.testing.assert_allclose(bottom.values, w[:2], rtol=1e-8)
    assert float(bottom.values[0]) < 0
    np.testing.assert_allclose(sharpness(loss, params, k=2, method="lanczos", num_iters=30), w[::-1][:2], rtol=1e-8)
    np.testing.assert_allclose(sharpness(loss, params, k=2, method="full"), w[::-1][:2], rtol=1e-12)


def test_hvp_and_lanczos_on_a_nonquadratic_loss_vmapped_over_an_ensemble():
    loss = lambda p: jnp.sum(jnp.sin(p["a"]) ** 2) + jnp.sum(p["b"] ** 3) * jnp.sum(p["a"] ** 2)
    ens = jax.tree.map(lambda x: x[None] * jnp.array([1.0, 0.5, -2.0]).reshape((3,) + (1,) * x.ndim), PARAMS)
    u = jnp.linspace(-1.0, 2.0, N)
    member = lambda p: (top_hessian_eigenpairs(loss, p, 2, num_iters=N).values, flat(hvp(loss, p, UNRAVEL(u))))
    top, hu = jax.jit(jax.vmap(member))(ens)
    for i in range(3):
        h = np.asarray(hessian_matrix(loss, jax.tree.map(lambda x: x[i], ens)))
        np.testing.assert_allclose(hu[i], h @ np.asarray(u), rtol=1e-10)
        np.testing.assert_allclose(top[i], np.linalg.eigvalsh(h)[::-1][:2], rtol=1e-9)


# --------------------------------------------------------------------------- trace and density


def test_hutchinson_is_unbiased_with_the_rademacher_variance():
    probes = 20000
    est = hutchinson_trace(quad, PARAMS, jax.random.key(1), probes, batch_size=5000)
    # Var[zᵀAz] = 2 Σ_{i≠j} A_ij² for Rademacher z (a diagonal A is exact: see the doctest)
    sigma = np.sqrt(2 * (np.sum(A_NP**2) - np.sum(np.diag(A_NP) ** 2)) / probes)
    assert abs(float(est.trace) - EIGS.sum()) < 4 * sigma
    assert float(est.stderr) == pytest.approx(sigma, rel=0.05)


def test_slq_weights_and_moments_are_exact_for_a_diagonal_operator():
    d = jnp.asarray(EIGS)
    dens = jax.jit(lambda key: slq(lambda v: d * v, N, key, num_probes=3, num_iters=4))(jax.random.key(0))
    np.testing.assert_allclose(dens.weights.sum(axis=1), 1.0 / 3, atol=1e-12)
    # normalized Rademacher u has u_i² = 1/N, so uᵀ D^p u = tr(D^p)/N exactly, and
    # 4-node Gauss quadrature is exact up to degree 7
    for p in (1, 2, 3):
        assert float(spectral_moment(dens, p)) == pytest.approx(np.mean(EIGS**p), abs=1e-10)


def test_slq_moments_estimate_trace_powers_over_n_and_broaden_to_a_density():
    probes = 4000
    dens = hessian_density(quad, PARAMS, jax.random.key(2), num_probes=probes, num_iters=N)
    assert dens.nodes.shape == (probes, N)
    np.testing.assert_allclose(dens.nodes[0], EIGS, atol=1e-10)  # m = N: every eigenvalue is a node
    assert float(dens.weights.sum()) == pytest.approx(1.0, abs=1e-10)
    for p in (1, 2):
        ap = np.linalg.matrix_power(A_NP, p)
        # per probe uᵀA^p u = zᵀA^p z / N with Var = 2 Σ_{i≠j} (A^p)_ij² / N²
        sigma = np.sqrt(2 * (np.sum(ap**2) - np.sum(np.diag(ap) ** 2)) / N**2 / probes)
        assert abs(float(spectral_moment(dens, p)) - np.trace(ap) / N) < 4 * sigma
    few = SpectralDensity(dens.nodes[:20], dens.weights[:20] * probes / 20)  # 20 probes are plenty here
    grid = jnp.linspace(-6.0, 10.0, 1601)
    phi = gaussian_density(few, grid, 0.2)
    dx = float(grid[1] - grid[0])
    assert float(jnp.sum(phi) * dx) == pytest.approx(1.0, abs=1e-6)
    assert float(jnp.sum(grid * phi) * dx) == pytest.approx(float(spectral_moment(few, 1)), abs=1e-6)


# --------------------------------------------------------------------------- along training


def test_curvature_info_counts_and_gradient_overlaps():
    w, u = np.linalg.eigh(A_NP)
    eta = 0.4  # 2/η = 5: λ = 6 and the two negative ones are chaotic
    at_top = UNRAVEL(jnp.asarray(u[:, -1]))  # gradient A θ is then along the top eigenvector
    for method in ("full", "lanczos"):
        info = curvature_info(quad, at_top, eta, k=2, method=method, num_iters=N)
        np.testing.assert_allclose(info.top, [6.0, 4.0], atol=1e-10)
        np.testing.assert_allclose(info.bottom, [-2.0, -0.5], atol=1e-10)
        np.testing.assert_allclose(info.overlap_top, [1.0, 0.0], atol=1e-8)
        np.testing.assert_allclose(info.overlap_bottom, [0.0, 0.0], atol=1e-8)
        assert float(info.grad_norm) == pytest.approx(6.0, abs=1e-10)
        assert float(info.mean_overlap_negative) == pytest.approx(0.0, abs=1e-8)
    full = curvature_info(quad, at_top, eta, k=2, method="full")
    assert (int(full.n_positive), int(full.n_negative), int(full.n_chaotic), int(full.n_flat)) == (8, 2, 3, 0)
    assert float(full.mean_overlap_positive) == pytest.approx(1.0 / 8, abs=1e-8)
    lanczos_info = curvature_info(quad, at_top, eta, k=2, method="lanczos", num_iters=N)
    assert (int(lanczos_info.n_positive), int(lanczos_info.n_negative), int(lanczos_info.n_chaotic)) == (2, 2, 3)
    assert int(lanczos_info.n_flat) == 0


def test_curvature_info_counts_flat_directions_apart():
    """H = R diag(−2, −0.5, 0, 0, 0.1, 1, 1.5, 3.5, 4.5, 6) Rᵀ at η = 0.5 (2/η = 4): the two exact
    zeros come out as ±roundoff and are flat, not chaotic (the rotation rounds every λ)."""
    eigs = np.array([-2.0, -0.5, 0.0, 0.0, 0.1, 1.0, 1.5, 3.5, 4.5, 6.0])
    a = jnp.asarray(ROT @ np.diag(eigs) @ ROT.T)
    q = lambda p: 0.5 * flat(p) @ a @ flat(p)
    info = curvature_info(q, PARAMS, 0.5, method="full")
    assert (int(info.n_chaotic), int(info.n_flat), int(info.n_positive), int(info.n_negative)) == (4, 2, 6, 2)
    # with rtol = 0.1 (tol = 0.6): λ = 0.1 and −0.5 become flat too
    wide = curvature_info(q, PARAMS, 0.5, method="full", rtol=0.1)
    assert (int(wide.n_chaotic), int(wide.n_flat), int(wide.n_positive), int(wide.n_negative)) == (3, 4, 5, 1)


def test_curvature_info_along_snapshots_and_an_eta_grid():
    snaps = jax.tree.map(lambda x: jnp.stack([x, 2 * x, 3 * x]), PARAMS)
    info = jax.jit(lambda s, eta: curvature_info_along(quad, s, eta, k=1))(snaps, jnp.array([0.1, 0.4, 0.6]))
    assert info.top.shape == (3, 1)
    assert info.n_chaotic.tolist() == [2, 3, 4]  # 2/η = 20, 5, 3.33 with the same Hessian
    np.testing.assert_allclose(info.grad_norm, np.linalg.norm(A_NP @ np.asarray(flat(PARAMS))) * np.arange(1, 4))


def test_select_directions_kinds_and_top_k():
    lam = jnp.asarray(EIGS)
    assert select_directions(lam, "chaotic", eta=0.4).tolist() == [True, True] + [False] * 7 + [True]
    assert int(select_directions(lam, "nonchaotic", eta=0.4).sum()) == 7
    assert select_directions(lam, "stable", eta=0.4).tolist() == select_directions(lam, "nonchaotic", eta=0.4).tolist()
    assert not bool(select_directions(lam, "flat").any())
    assert int(select_directions(lam, "positive").sum()) == 8
    assert int(select_directions(lam, "negative").sum()) == 2
    # top-2 chaotic by |ln|1 − ηλ||: λ = −2 (ln 1.8) and λ = 6 (ln 1.4) beat λ = −0.5 (ln 1.2)
    assert np.flatnonzero(select_directions(lam, "chaotic", eta=0.4, k=2)).tolist() == [0, 9]
    assert np.flatnonzero(select_directions(lam, "positive", k=3)).tolist() == [7, 8, 9]
    # exactly flat directions (±roundoff of 0, tol = 4ε·30) are flat: not chaotic, positive or negative
    flat_lam = jnp.array([-1e-18, 0.0, 1e-18, 30.0])
    assert select_directions(flat_lam, "flat").tolist() == [True, True, True, False]
    assert not bool(select_directions(flat_lam, "chaotic", eta=0.01).any())  # 30 < 2/η = 200
    assert select_directions(flat_lam, "chaotic", eta=0.1).tolist() == [False, False, False, True]  # 30 > 20
    assert select_directions(flat_lam, "nonchaotic", eta=0.1).tolist() == [True, True, True, False]
    assert not bool(select_directions(flat_lam, "stable", eta=0.1).any())
    assert not bool(select_directions(flat_lam, "negative").any() | select_directions(flat_lam, "positive")[:3].any())
    # λ = 2/η exactly (μ = 0): stable, not chaotic; the three classes partition the spectrum
    edge = jnp.array([-1.0, 0.0, 1.0, 4.0, 5.0])
    masks = np.array([select_directions(edge, w, eta=0.5) for w in ("chaotic", "flat", "stable")])
    np.testing.assert_array_equal(masks, [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(select_directions(edge, "nonchaotic", eta=0.5), ~masks[0].astype(bool))
    # tol = 0.125·8 = 1: ±1 are flat, 1 + 2⁻⁴⁰ is not
    at_tol = jnp.array([-8.0, -1.0, 1.0, 1.0 + 2.0**-40])
    assert select_directions(at_tol, "flat", rtol=0.125).tolist() == [False, True, True, False]
    assert select_directions(at_tol, "positive", rtol=0.125).tolist() == [False, False, False, True]
    assert select_directions(at_tol, "negative", rtol=0.125).tolist() == [True, False, False, False]
    with pytest.raises(ConfigError, match="rtol must be finite and >= 0"):
        select_directions(edge, "flat", rtol=-1.0)
    with pytest.raises(ConfigError, match="pass eta > 0"):
        select_directions(edge, "stable")


def test_subspace_overlap_properties_and_random_baseline():
    e = jnp.eye(6)
    assert float(subspace_overlap(e[:2], e[:4])) == pytest.approx(1.0)  # V ⊂ W
    assert float(subspace_overlap(e[:2], e[3:])) == 0.0  # V ⊥ W
    assert np.isnan(float(subspace_overlap(e[:2], e, mask_w=jnp.zeros(6, bool))))
    masked = subspace_overlap(e, e, mask_v=jnp.arange(6) < 2, mask_w=jnp.arange(6) >= 1)
    assert float(masked) == pytest.approx(0.5)  # span(e0, e1) vs span(e1..e5): ‖VWᵀ‖² = 1, d_min = 2
    # Monte Carlo over independent uniformly random (Haar) subspaces of ℝ³⁰ with dims 4 and 7
    dim, d_v, d_w, trials = 30, 4, 7, 400
    rng = np.random.default_rng(0)
    bases_v = np.stack([np.linalg.qr(rng.normal(size=(dim, d_v)))[0].T for _ in range(trials)])
    bases_w = np.stack([np.linalg.qr(rng.normal(size=(dim, d_w)))[0].T for _ in range(trials)])
    vals = np.asarray(jax.jit(jax.vmap(subspace_overlap))(bases_v, bases_w))
    baseline = float(random_subspace_overlap(dim, d_v, d_w))
    assert baseline == pytest.approx(7 / 30)
    assert abs(vals.mean() - baseline) < 4 * vals.std() / np.sqrt(trials)
    assert np.all((vals >= 0) & (vals <= 1))


def test_chaotic_subspaces_at_two_times():
    eta = 0.4
    sub1 = direction_subspace(quad, PARAMS, "chaotic", eta)
    assert isinstance(sub1, Subspace) and int(sub1.mask.sum()) == 3
    # a rotated Hessian: the chaotic subspace moves
    rot = jnp.asarray(np.linalg.qr(np.random.default_rng(5).normal(size=(N, N)))[0])
    quad2 = lambda p: 0.5 * flat(p) @ (rot @ A @ rot.T) @ flat(p)
    sub2 = direction_subspace(quad2, PARAMS, "chaotic", eta)
    assert float(subspace_overlap(sub1, sub1)) == pytest.approx(1.0, abs=1e-10)
    overlap = float(subspace_overlap(sub1, sub2))
    v1 = rows(sub1.vectors)[np.asarray(sub1.mask)]
    v2 = rows(sub2.vectors)[np.asarray(sub2.mask)]
    assert overlap == pytest.approx(np.sum((v1 @ v2.T) ** 2) / 3, abs=1e-10)
    lanczos_sub = direction_subspace(quad, PARAMS, "chaotic", eta, k=2, method="lanczos", num_iters=N)
    assert int(lanczos_sub.mask.sum()) == 3
    assert float(subspace_overlap(sub1, lanczos_sub)) == pytest.approx(1.0, abs=1e-8)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: top_hessian_eigenpairs(quad, PARAMS, 0), "k must be >= 1; got 0"),
        (lambda: top_hessian_eigenpairs(quad, PARAMS, N + 1), "k must be <= 10"),
        (lambda: top_hessian_eigenpairs(quad, PARAMS, 2, num_iters=N + 1), "num_iters must be <= 10"),
        (lambda: top_hessian_eigenpairs(quad, PARAMS, 3, num_iters=2), "num_iters must be >= 3"),
        (lambda: ascending_hessian_eigenpairs(quad, PARAMS, method="dense"), "method must be 'auto', 'full' or 'lanczos'"),
        (lambda: ascending_hessian_eigenpairs(quad, PARAMS, method="lanczos"), "needs k"),
        (lambda: power_iteration(quad, PARAMS, num_iters=0), "num_iters must be >= 1"),
        (lambda: hutchinson_trace(quad, PARAMS, jax.random.key(0), 0), "num_probes must be >= 1"),
        (lambda: hutchinson(lambda v: v, 3, jax.random.key(0), 2, batch_size=0), "batch_size must be >= 1"),
        (lambda: slq(lambda v: v, 3, jax.random.key(0), num_iters=4), "num_iters must be <= 3"),
        (lambda: gaussian_density(SpectralDensity(jnp.ones((1, 1)), jnp.ones((1, 1))), jnp.zeros(3), 0.0), "sigma"),
        (lambda: curvature_info(quad, PARAMS, eta=0.0), "eta must be > 0; got 0.0"),
        (lambda: curvature_info(quad, PARAMS, eta=-1.0, k=1), "eta must be > 0"),
        (lambda: select_directions(jnp.ones(3), "chaos", eta=1.0), "which must be one of"),
        (lambda: select_directions(jnp.ones(3), "chaotic"), "pass eta > 0"),
        (lambda: subspace_overlap(jnp.eye(3), jnp.eye(4)), "same space"),
    ],
)
def test_bad_arguments_raise_config_errors_that_state_the_fix(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
