"""Tangent-space Lyapunov exponents against exact answers."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdchaos.core import maps
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov.tangent import dimension, exponents, lyapunov_spectrum, running_exponents, tangent_map

from conftest import fast_key

EIGS = np.array([0.5, 1.0, 2.0, 3.5, 6.0])
ROT = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))[0]
A = jnp.asarray(ROT @ np.diag(EIGS) @ ROT.T)
X0, Y0 = jnp.zeros((2, 5)), jnp.zeros(2)


def quad_loss(p, x, y):
    return 0.5 * p["w"] @ A @ p["w"]


def gd_spectrum_exact(eta):
    return np.sort(np.log(np.abs(1 - eta * EIGS)))[::-1]


@pytest.mark.parametrize("eta", [0.1, 0.45])  # 0.45 > 2/6: one unstable direction
def test_gd_on_quadratic_full_spectrum_is_log_abs_one_minus_eta_lambda(eta):
    tmap = maps.from_optax(optax.sgd, quad_loss, X0, Y0)  # the optax TrainState path
    state = tmap.init({"w": jnp.ones(5)})
    assert dimension(state) == 5  # params only: optax's injected learning rate is not dynamical
    lam, ftle = lyapunov_spectrum(tmap.step, state, {"learning_rate": eta}, 600, k=5, transient=100)
    np.testing.assert_allclose(lam, gd_spectrum_exact(eta), atol=1e-6)
    assert ftle.shape == (600, 5)
    np.testing.assert_allclose(ftle[-1], lam, rtol=1e-12)
    # a plain user-written step on an array gives the same spectrum
    plain = lambda x, h: (x - h * (A @ x), None)
    lam2, _ = lyapunov_spectrum(plain, jnp.ones(5), eta, 600, k=5, transient=100)
    np.testing.assert_allclose(lam2, gd_spectrum_exact(eta), atol=1e-6)


def test_k1_is_the_top_of_the_full_spectrum():
    step = lambda x, h: (x - h * (A @ x), None)
    top, _ = lyapunov_spectrum(step, jnp.ones(5), 0.45, 600, k=1, transient=100)
    full, _ = lyapunov_spectrum(step, jnp.ones(5), 0.45, 600, k=5, transient=100)
    assert top.shape == (1,)
    assert float(top[0]) == pytest.approx(float(full[0]), abs=1e-9)
    assert float(top[0]) == pytest.approx(gd_spectrum_exact(0.45)[0], abs=1e-6)


def test_linear_map_gives_log_moduli_of_eigenvalues():
    # non-normal, real distinct eigenvalues 1.5, −0.7, 0.2
    m = jnp.array([[1.5, 0.3, 0.0], [0.0, -0.7, 0.2], [0.0, 0.0, 0.2]])
    lam, _ = lyapunov_spectrum(lambda x, h: (m @ x, None), jnp.ones(3), None, 2000, k=3, transient=100)
    np.testing.assert_allclose(lam, np.log([1.5, 0.7, 0.2]), atol=2e-3)
    # rotation-scaling block inside a 3-D map: the complex pair 0.9 e^{±i} gives ln 0.9 twice
    c, s = 0.9 * np.cos(1.0), 0.9 * np.sin(1.0)
    rot = jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 0.5]])
    lam, _ = lyapunov_spectrum(lambda x, h: (rot @ x, None), jnp.ones(3), None, 500, k=3, transient=60)
    np.testing.assert_allclose(lam, np.log([0.9, 0.9, 0.5]), atol=1e-9)


def test_logistic_map_at_r4_is_ln2():
    step = lambda x, h: (h * x * (1 - x), None)
    lam, ftle = lyapunov_spectrum(step, jnp.asarray(0.2718), 4.0, 50_000, k=1, transient=100)
    assert float(lam[0]) == pytest.approx(np.log(2.0), abs=0.01)
    assert ftle.shape == (50_000, 1)
    assert np.all(np.isnan(ftle[:100])) and np.all(np.isfinite(ftle[100:]))
    assert float(ftle[-1, 0]) == pytest.approx(float(lam[0]), rel=1e-12)


def test_user_written_henon_map():
    def henon(x, h):
        return jnp.stack([1 - h["a"] * x[0] ** 2 + x[1], h["b"] * x[0]]), None

    lam, _ = lyapunov_spectrum(henon, jnp.array([0.1, 0.1]), {"a": 1.4, "b": 0.3}, 30_000, k=2, transient=1000)
    assert float(lam[0]) == pytest.approx(0.419, abs=0.01)
    assert float(lam.sum()) == pytest.approx(np.log(0.3), abs=1e-9)  # constant Jacobian determinant −b


def test_momentum_gd_matches_companion_matrix():
    """optax heavy ball (trace): v ← g + β v, θ ← θ − η v; the state (θ, v) evolves linearly.

    With g = Aθ: v' = Aθ + βv and θ' = θ − ηv' = (I − ηA)θ − ηβ v, so the tangent map
    is the 2N×2N companion matrix [[I − ηA, −ηβ I], [A, β I]].
    """
    eta, beta = 0.3, 0.6
    tmap = maps.momentum(quad_loss, X0, Y0, beta=beta)
    state = tmap.init({"w": jnp.ones(5)})
    assert dimension(state) == 10  # θ and the trace; injected η and β are not dynamical
    lam, _ = lyapunov_spectrum(tmap.step, state, {"learning_rate": eta}, 3000, k=10, transient=200)
    a, i = np.asarray(A), np.eye(5)
    companion = np.block([[i - eta * a, -eta * beta * i], [a, beta * i]])
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(companion))))[::-1]
    np.testing.assert_allclose(lam, expected, atol=2e-3)


def _logistic_regression():
    x = jax.random.normal(jax.random.key(0), (64, 5))
    y = (x[:, 0] > 0).astype(jnp.int32)

    def loss(p, xb, yb):
        logits = jnp.stack([xb @ p["w"], -(xb @ p["w"])], -1)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    return loss, x, y


def test_adam_runs_through_the_wrapper():
    """Adam's full spectrum against two independent answers.

    1. Exact sum: one Adam step maps (m, v, θ) → (β1 m + (1−β1) g, β2 v + (1−β2) g², θ − η φ(m', v'))
       with g = ∇L(θ). That is a block-triangular map with diagonal blocks β1 I, β2 I, I followed
       by a shear, so det J = (β1 β2)^n at every step and Σλ = n ln(β1 β2) exactly (n = 5).
    2. Each exponent: the T-step Jacobian M from central finite differences (float64, no AD),
       then λ_i = (1/T) ln |R_ii| of QR(M Q0) with Q0 the wrapper's initial basis.
    """
    loss, x, y = _logistic_regression()
    adam = maps.from_optax(optax.adam, loss, x, y)
    hyper, steps, b1, b2 = {"learning_rate": 1e-2}, 50, 0.9, 0.999
    state = adam.init({"w": jnp.ones(5) * 0.1})
    assert dimension(state) == 15  # θ, m, v (Adam's integer count is carried)

    def advance(s, n):
        return jax.lax.fori_loop(0, n, lambda _, s: adam.step(s, hyper)[0], s)

    # a few updates first so that v > 0: central differences of v at v = 0 would take √(v < 0)
    state = jax.jit(advance, static_argnums=1)(state, 10)
    key, lmap = fast_key(0), tangent_map(adam.step, k=15)

    @jax.jit
    def spectrum_and_start(s):
        return lyapunov_spectrum(adam.step, s, hyper, steps, k=15, key=key).exponents, lmap.init(s, key).basis

    lam, basis0 = spectrum_and_start(state)
    q0 = np.concatenate([np.asarray(v).reshape(15, -1) for v in jax.tree.leaves(basis0)], axis=1)
    assert np.all(np.isfinite(lam))
    np.testing.assert_allclose(np.sum(lam), 5 * np.log(b1 * b2), rtol=1e-9)

    def flat(s):  # (θ, m, v), the order of the wrapper's tangent vectors
        adam_state = s.opt_state.inner_state[0]
        return jnp.concatenate([s.params["w"], adam_state.mu["w"], adam_state.nu["w"]])

    def unflat(z):
        inner = state.opt_state.inner_state
        adam_state = inner[0]._replace(mu={"w": z[5:10]}, nu={"w": z[10:]})
        return state._replace(params={"w": z[:5]},
                              opt_state=state.opt_state._replace(inner_state=(adam_state, *inner[1:])))

    z0 = flat(state)
    h = 1e-4 * jnp.abs(z0)  # relative steps: v is ~1e-6 in some coordinates

    @jax.jit
    def jacobian_by_differences(z0, h):
        run = lambda z: flat(advance(unflat(z), steps))
        return jax.vmap(lambda e, he: (run(z0 + he * e) - run(z0 - he * e)) / (2 * he))(jnp.eye(15), h).T

    m = np.asarray(jacobian_by_differences(z0, h))
    r = np.linalg.qr(m @ q0.T, mode="r")
    expected = np.sort(np.log(np.abs(np.diag(r))) / steps)[::-1]
    np.testing.assert_allclose(lam, expected, atol=1e-7)
    assert lam[0] > 0.05 and lam[-1] < -0.1  # a spread spectrum, not a degenerate one


def test_sgd_key_is_carried_not_differentiated():
    loss, x, y = _logistic_regression()
    sgd = maps.sgd(loss, x, y, batch_size=8)
    hyper = {"learning_rate": 0.1}
    state = sgd.init({"w": jnp.ones(5)}, jax.random.key(1))
    lmap = tangent_map(sgd.step, k=2)
    lstate = lmap.init(state, jax.random.key(2))
    assert lstate.basis.key is None and lstate.basis.count is None  # no tangent for key and counter
    assert lstate.basis.params["w"].shape == (2, 5)  # tangent vectors are pytrees with a leading k axis
    run = lambda f, s: jax.lax.scan(lambda c, _: (f(c, hyper)[0], None), s, None, length=50)[0]
    lstate, plain = run(lmap.step, lstate), run(sgd.step, state)
    # the wrapped trajectory is the plain one: same mini-batches, same key, same counter
    np.testing.assert_array_equal(jax.random.key_data(lstate.inner.key), jax.random.key_data(plain.key))
    np.testing.assert_allclose(lstate.inner.params["w"], plain.params["w"], rtol=1e-12)
    assert int(lstate.inner.count) == 50
    q = np.asarray(lstate.basis.params["w"])
    np.testing.assert_allclose(q @ q.T, np.eye(2), atol=1e-12)  # orthonormal after the last QR
    assert np.all(np.isfinite(exponents(lstate)))


def test_legacy_uint32_key_and_integer_leaves_are_carried():
    def step(x, h):
        key, sub = jax.random.split(x["key"])
        noise = 0.1 * jax.random.normal(sub, (2,))
        return {"z": 0.5 * x["z"] + noise, "key": key, "n": x["n"] + 1}, None

    x0 = {"z": jnp.ones(2), "key": jax.random.PRNGKey(0), "n": jnp.int32(0)}
    assert dimension(x0) == 2
    lam, _ = lyapunov_spectrum(step, x0, None, 20, k=2)
    np.testing.assert_allclose(lam, np.log([0.5, 0.5]), atol=1e-12)  # additive noise: Jacobian 0.5 I


def test_renormalization_interval_and_transient_bookkeeping():
    step = lambda x, h: (x - 0.45 * (A @ x), None)
    # both average exactly steps 8..399 from the same initial basis: equal up to roundoff
    every, _ = lyapunov_spectrum(step, jnp.ones(5), None, 400, k=3, transient=8)
    sparse, ftle = lyapunov_spectrum(step, jnp.ones(5), None, 403, k=3, renorm_every=4, transient=5)
    np.testing.assert_allclose(every, sparse, rtol=1e-12)
    # blocks of 4 starting at ≥ 5: steps 8..399 are averaged (392 steps); 400..402 not yet renormalized
    lmap = tangent_map(step, 3, renorm_every=4, transient=5)
    state, info = jax.lax.scan(lambda s, _: lmap.step(s, None), lmap.init(jnp.ones(5)), None, length=403)
    assert int(state.averaged) == 392 and int(state.count) == 403
    running = running_exponents(np.asarray(info.log_stretch), transient=5, renorm_every=4)
    np.testing.assert_allclose(running[-1], exponents(state), rtol=1e-12)
    assert np.all(np.isnan(running[:11])) and np.all(np.isfinite(running[11:]))
    np.testing.assert_allclose(np.sort(running[-1])[::-1], ftle[-1], rtol=1e-12)


def test_bad_arguments_are_config_errors():
    lmap = tangent_map(lambda x, h: (2 * x, None), k=3)
    with pytest.raises(ConfigError, match="k=3 exceeds"):
        lmap.init(jnp.ones(2))
    with pytest.raises(ConfigError, match="k must be an integer >= 1"):
        tangent_map(lambda x, h: (x, None), k=0)
    with pytest.raises(ConfigError, match="no floating"):
        tangent_map(lambda x, h: (x, None), k=1).init(jnp.arange(3))
    bad = tangent_map(lambda x, h: ((x, x), None), k=1)
    with pytest.raises(ConfigError, match="same structure"):
        bad.step(bad.init(jnp.ones(2)), None)


def test_float32_without_x64_gives_the_quadratic_answer():
    code = """
import jax, jax.numpy as jnp, numpy as np
from gdchaos.core import maps
from gdchaos.analyses.lyapunov.tangent import lyapunov_spectrum
assert not jax.config.jax_enable_x64
A = jnp.diag(jnp.array([0.5, 1.0, 2.0, 3.5, 6.0]))
tmap = maps.gd(lambda p, x, y: 0.5 * p @ A @ p, jnp.zeros((2, 5)), jnp.zeros(2))
lam, ftle = lyapunov_spectrum(tmap.step, tmap.init(jnp.ones(5)), {"learning_rate": 0.3}, 600, k=5, transient=100)
assert lam.dtype == jnp.float32 and ftle.dtype == jnp.float32
exact = np.sort(np.log(np.abs(1 - 0.3 * np.array([0.5, 1.0, 2.0, 3.5, 6.0]))))[::-1]
print(float(np.max(np.abs(np.asarray(lam) - exact))))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-4
