"""Stability of minima: the GD verdict flips at η* = 2/λ_max; SGD random-product exponents on least squares."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.core.errors import ConfigError
from gdchaos.analyses.curvature.stability import minimum_stability, sgd_stability

# a minimum with two flat directions (a manifold of minima): H = diag-like with λ = 0, 0, 0.5, 1, 2.5
EIGS = np.array([0.0, 0.0, 0.5, 1.0, 2.5])
ROT = np.linalg.qr(np.random.default_rng(7).normal(size=(5, 5)))[0]
A = jnp.asarray(ROT @ np.diag(EIGS) @ ROT.T)


def quad(p):
    return 0.5 * p["w"] @ A @ p["w"]


P0 = {"w": jnp.zeros(5)}


def test_gd_verdict_flips_at_two_over_lambda_max():
    eta_star = 2 / 2.5
    below = minimum_stability(quad, P0, eta_star * (1 - 1e-6))
    above = minimum_stability(quad, P0, eta_star * (1 + 1e-6))
    assert below.verdict == "stable" and above.verdict == "unstable"
    assert float(below.critical_eta) == pytest.approx(eta_star, rel=1e-12)
    assert float(below.sharpness) == pytest.approx(2.5, rel=1e-12)
    assert int(below.n_normal) == 3 and int(below.n_negative) == 0  # the flat pair is not in the normal space
    # ρ over the normal space only: the flat directions' eigenvalue 1 does not count
    eta = 0.3
    s = minimum_stability(quad, P0, eta)
    assert float(s.spectral_radius) == pytest.approx(max(abs(1 - eta * EIGS[2:])), abs=1e-12) and s.verdict == "stable"
    # vmapped over an η grid, the verdict flips at η*
    etas = jnp.array([0.2, 0.79, 0.81, 1.5])
    stable = jax.vmap(lambda e: minimum_stability(quad, P0, e).stable)(etas)
    assert stable.tolist() == [True, True, False, False]


def test_lanczos_gives_the_same_verdict_and_critical_eta():
    for eta in (0.7, 0.9):
        full = minimum_stability(quad, P0, eta, method="full")
        lanczos = minimum_stability(quad, P0, eta, method="lanczos", k=1, num_iters=5)
        assert bool(full.stable) == bool(lanczos.stable)
        assert float(lanczos.critical_eta) == pytest.approx(0.8, rel=1e-10)


def test_a_saddle_is_unstable_at_any_learning_rate():
    saddle = lambda p: 0.5 * (p[0] ** 2 - 0.1 * p[1] ** 2)
    s = minimum_stability(saddle, jnp.zeros(2), 1e-3)
    assert s.verdict == "unstable" and int(s.n_negative) == 1
    assert float(s.spectral_radius) == pytest.approx(1 + 1e-4, abs=1e-12)


# --------------------------------------------------------------------------- SGD


def lsq(p, xb, yb):
    return 0.5 * jnp.mean((xb @ p["w"] - yb) ** 2)


def test_sgd_exponent_is_exact_for_orthogonal_samples():
    # x_i = s_i e_i (3 samples) in ℝ⁵: coordinates 3, 4 are flat. With batch 1, direction i is
    # multiplied by 1 − η s_i² with probability 1/3, so λ_i = (1/3) ln|1 − η s_i²| per step.
    s = np.array([1.0, 1.5, 2.0])
    x = jnp.asarray(np.hstack([np.diag(s), np.zeros((3, 2))]))
    y = jnp.zeros(3)
    exact = lambda eta: np.max(np.log(np.abs(1 - eta * s**2)) / 3)
    etas = jnp.array([0.3, 0.6])  # 2/max s² = 0.5 separates them; vmapped over η in one program
    est = jax.vmap(lambda e: sgd_stability(lsq, P0, x, y, e, 1, steps=3000, key=jax.random.key(1)))(etas)
    # binomial noise of the hit count: ≈ |ln|1 − ηs²|| √(p(1 − p)/T) ≈ 0.01
    np.testing.assert_allclose(est.exponent, [exact(0.3), exact(0.6)], atol=0.03)
    assert est.n_normal.tolist() == [3, 3] and est.verdict.tolist() == ["stable", "unstable"]
    # without the normal projection the flat directions (exponent 0) mask the negative one
    flat = sgd_stability(lsq, P0, x, y, 0.3, 1, steps=3000, normal=False)
    assert abs(float(flat.exponent)) < 1e-12 and int(flat.n_normal) == 5


def test_full_batch_sgd_is_gd():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 5)))
    y = jnp.asarray(rng.normal(size=3))
    theta = {"w": jnp.linalg.pinv(x) @ y}  # an interpolating minimum
    eta = 0.3
    gd = minimum_stability(lambda p: lsq(p, x, y), theta, eta)
    sgd = sgd_stability(lsq, theta, x, y, eta, 3, steps=400, transient=50)
    assert float(sgd.exponent) == pytest.approx(np.log(float(gd.spectral_radius)), abs=1e-6)


def test_sgd_exponent_sign_on_a_generic_interpolation_problem():
    # 4 samples in ℝ⁶: a 2-dimensional manifold of exact fits; batch size 2, drawn uniformly.
    rng = np.random.default_rng(1)
    x_np = rng.normal(size=(4, 6))
    x, y = jnp.asarray(x_np), jnp.asarray(rng.normal(size=4))
    theta = {"w": jnp.linalg.pinv(x) @ y}
    batches = list(itertools.combinations(range(4), 2))
    mu = [np.linalg.eigvalsh(x_np[list(b)].T @ x_np[list(b)] / 2) for b in batches]
    nonzero = [m[m > 1e-9] for m in mu]
    # Below: if η λ_max(H_B) ≤ 2 for every batch, each A_B is a contraction on the normal
    # space (‖A_B|_N‖ ≤ 1), and a product of generic such maps contracts: λ < 0.
    eta_low = 2 / max(m.max() for m in nonzero)
    # Above: if η μ > 2.5 for every nonzero μ of every H_B, every |1 − ημ| ≥ 1.5, so
    # E ln|det A_B|_N| ≥ 2 ln 1.5 > 0; the exponents sum to it, so the top one is > 0.
    eta_high = 2.5 / min(m.min() for m in nonzero)
    below = sgd_stability(lsq, theta, x, y, 0.8 * eta_low, 2, steps=2000, key=jax.random.key(2))
    above = sgd_stability(lsq, theta, x, y, eta_high, 2, steps=2000, key=jax.random.key(2))
    assert int(below.n_normal) == 4
    assert float(below.exponent) < -0.01 and below.verdict == "stable"
    assert float(above.exponent) > 0.1 and above.verdict == "unstable"
    # the lower bound from the determinant holds for the estimate: λ₁ ≥ (1/4) E ln|det A_B|_N|
    det_bound = np.mean([np.sum(np.log(np.abs(1 - eta_high * m))) for m in nonzero]) / 4
    assert float(above.exponent) >= det_bound - 0.05


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: minimum_stability(quad, P0, 0.0), "eta must be > 0; got 0.0"),
        (lambda: minimum_stability(quad, P0, 0.1, method="lanczos", k=0), "k must be >= 1; got 0"),
        (lambda: minimum_stability(quad, P0, 0.1, method="power"), "method must be"),
        (lambda: sgd_stability(lsq, P0, jnp.ones((3, 5)), jnp.zeros(3), 0.1, 4), "batch_size must be in 1..3"),
        (lambda: sgd_stability(lsq, P0, jnp.ones((3, 5)), jnp.zeros(3), -0.1, 1), "eta must be > 0"),
        (lambda: sgd_stability(lsq, P0, jnp.ones((3, 5)), jnp.zeros(3), 0.1, 1, k=6), "k must be <= 5"),
        (lambda: sgd_stability(lsq, P0, jnp.ones((3, 5)), jnp.zeros(3), 0.1, 1, steps=10, transient=10), "transient"),
        (lambda: sgd_stability(lsq, P0, jnp.ones((3, 5)), jnp.zeros(3), 0.1, 1, max_params=4), "max_params"),
        (lambda: minimum_stability(quad, P0, 0.1, rtol=-1e-3), "rtol must be finite and >= 0"),
        (lambda: sgd_stability(lsq, P0, jnp.ones((3, 5)), jnp.zeros(3), 0.1, 1, rtol=float("nan")), "rtol must be finite"),
    ],
)
def test_bad_arguments_raise_config_errors_that_state_the_fix(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
