"""Tangent-space Lyapunov exponents against exact answers."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdchaos import maps
from gdchaos.errors import ConfigError
from gdchaos.lyapunov.tangent import dimension, exponents, lyapunov_spectrum, tangent_map

EIGS = np.array([0.5, 1.0, 2.0, 3.5, 6.0])
ROT = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))[0]
A = jnp.asarray(ROT @ np.diag(EIGS) @ ROT.T)
X0, Y0 = jnp.zeros((2, 5)), jnp.zeros(2)


def quad_loss(p, x, y):
    return 0.5 * p["w"] @ A @ p["w"]


def gd_spectrum_exact(eta):
    return np.sort(np.log(np.abs(1 - eta * EIGS)))[::-1]


@pytest.mark.parametrize("eta", [0.1, 0.45])
def test_gd_on_quadratic_full_spectrum_is_log_abs_one_minus_eta_lambda(eta):
    tmap = maps.gd(quad_loss, X0, Y0)
    state = tmap.init({"w": jnp.ones(5)})
    assert dimension(state) == 5  # params only: optax's injected learning rate is not dynamical
    lam, _ = lyapunov_spectrum(tmap.step, state, {"learning_rate": eta}, 600, k=5, transient=100)
    np.testing.assert_allclose(lam, gd_spectrum_exact(eta), atol=1e-6)


def test_k1_is_the_top_of_the_full_spectrum():
    step = lambda x, h: (x - h * (A @ x), None)
    top, _ = lyapunov_spectrum(step, jnp.ones(5), 0.45, 600, k=1, transient=100)
    full, _ = lyapunov_spectrum(step, jnp.ones(5), 0.45, 600, k=5, transient=100)
    assert float(top[0]) == pytest.approx(float(full[0]), abs=1e-9)
    assert float(top[0]) == pytest.approx(gd_spectrum_exact(0.45)[0], abs=1e-6)


def test_linear_map_gives_log_moduli_of_eigenvalues():
    m = jnp.array([[1.5, 0.3, 0.0], [0.0, -0.7, 0.2], [0.0, 0.0, 0.2]])
    lam, _ = lyapunov_spectrum(lambda x, h: (m @ x, None), jnp.ones(3), None, 2000, k=3, transient=100)
    np.testing.assert_allclose(lam, np.log([1.5, 0.7, 0.2]), atol=2e-3)
    # rotation-scaling: complex pair of modulus 0.9 → both exponents ln 0.9
    c, s = 0.9 * np.cos(1.0), 0.9 * np.sin(1.0)
    rot = jnp.array([[c, -s], [s, c]])
    lam, _ = lyapunov_spectrum(lambda x, h: (rot @ x, None), jnp.ones(2), None, 500, k=2)
    np.testing.assert_allclose(lam, np.log([0.9, 0.9]), atol=1e-6)


def test_logistic_map_at_r4_is_ln2():
    step = lambda x, h: (h * x * (1 - x), None)
    lam, series = lyapunov_spectrum(step, jnp.asarray(0.2718), 4.0, 50_000, k=1, transient=100)
    assert float(lam[0]) == pytest.approx(np.log(2.0), abs=0.01)
    assert series.shape == (50_000, 1) and np.all(series[:100] == 0)


def test_user_written_henon_map():
    def henon(x, h):
        return jnp.stack([1 - h["a"] * x[0] ** 2 + x[1], h["b"] * x[0]]), None

    lam, _ = lyapunov_spectrum(henon, jnp.array([0.1, 0.1]), {"a": 1.4, "b": 0.3}, 30_000, k=2, transient=1000)
    assert float(lam[0]) == pytest.approx(0.419, abs=0.01)
    assert float(lam.sum()) == pytest.approx(np.log(0.3), abs=1e-6)  # constant Jacobian determinant


def test_momentum_gd_matches_companion_matrix():
    """optax heavy ball: v ← g + β v, θ ← θ − η v; state (θ, v) evolves by a 2N×2N matrix."""
    eta, beta = 0.3, 0.6
    tmap = maps.momentum(quad_loss, X0, Y0, beta=beta)
    state = tmap.init({"w": jnp.ones(5)})
    assert dimension(state) == 10
    lam, _ = lyapunov_spectrum(tmap.step, state, {"learning_rate": eta}, 3000, k=10, transient=200)
    a, i = np.asarray(A), np.eye(5)
    # (θ', v') = ((I − ηA) θ − ηβ v, A θ + β v)
    companion = np.block([[i - eta * a, -eta * beta * i], [a, beta * i]])
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(companion))))[::-1]
    np.testing.assert_allclose(lam, expected, atol=2e-3)


def test_adam_and_sgd_run_through_the_wrapper():
    x = jax.random.normal(jax.random.key(0), (64, 5))
    y = (x[:, 0] > 0).astype(jnp.int32)

    def loss(p, xb, yb):
        logits = jnp.stack([xb @ p["w"], -(xb @ p["w"])], -1)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    adam = maps.from_optax(optax.adam, loss, x, y)
    state = adam.init({"w": jnp.ones(5) * 0.1})
    assert dimension(state) == 15  # θ, m, v
    lam, _ = lyapunov_spectrum(adam.step, state, {"learning_rate": 1e-2}, 50, k=3)
    assert np.all(np.isfinite(lam))
    sgd = maps.sgd(loss, x, y, batch_size=8)
    lam, _ = lyapunov_spectrum(sgd.step, sgd.init({"w": jnp.ones(5)}, jax.random.key(1)), {"learning_rate": 0.1}, 50, k=2)
    assert np.all(np.isfinite(lam))


def test_renormalization_interval_does_not_change_the_answer():
    step = lambda x, h: (x - 0.45 * (A @ x), None)
    every, _ = lyapunov_spectrum(step, jnp.ones(5), None, 400, k=3)
    sparse, _ = lyapunov_spectrum(step, jnp.ones(5), None, 400, k=3, renorm_every=4)
    np.testing.assert_allclose(every, sparse, atol=1e-6)


def test_bad_k_is_a_config_error():
    lmap = tangent_map(lambda x, h: (2 * x, None), k=3)
    with pytest.raises(ConfigError, match="k=3 exceeds"):
        lmap.init(jnp.ones(2))
    with pytest.raises(ConfigError, match="k must be >= 1"):
        tangent_map(lambda x, h: (x, None), k=0)


def test_float32_without_x64_gives_the_quadratic_answer():
    code = """
import jax, jax.numpy as jnp, numpy as np
from gdchaos import maps
from gdchaos.lyapunov.tangent import lyapunov_spectrum
assert not jax.config.jax_enable_x64
A = jnp.diag(jnp.array([0.5, 1.0, 2.0, 3.5, 6.0]))
tmap = maps.gd(lambda p, x, y: 0.5 * p @ A @ p, jnp.zeros((2, 5)), jnp.zeros(2))
lam, _ = lyapunov_spectrum(tmap.step, tmap.init(jnp.ones(5)), {"learning_rate": 0.45}, 600, k=5, transient=100)
assert lam.dtype == jnp.float32
exact = np.sort(np.log(np.abs(1 - 0.45 * np.array([0.5, 1.0, 2.0, 3.5, 6.0]))))[::-1]
print(float(np.max(np.abs(np.asarray(lam) - exact))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"JAX_ENABLE_X64": "0", "PATH": ""}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-4
