"""Training maps against update rules written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdchaos.core import maps
from gdchaos.core.errors import ConfigError

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(8, 3)))
Y = jnp.asarray(RNG.normal(size=8))
THETA = jnp.array([0.5, -1.0, 2.0])


def lsq(p, x, y):
    """Linear least squares L(θ) = mean_n (x_n·θ − y_n)²."""
    return jnp.mean((x @ p - y) ** 2)


def lsq_grad(p, x=X, y=Y):
    x, y, p = np.asarray(x), np.asarray(y), np.asarray(p)
    return 2.0 / len(y) * x.T @ (x @ p - y)


def test_gd_step_is_theta_minus_eta_grad():
    tmap = maps.gd(lsq, X, Y)
    state, info = tmap.step(tmap.init(THETA), {"learning_rate": 0.1})
    np.testing.assert_allclose(state.params, THETA - 0.1 * lsq_grad(THETA), rtol=1e-13, atol=1e-15)
    assert info.loss == pytest.approx(float(lsq(THETA, X, Y)), rel=1e-13)
    assert info.grad_norm == pytest.approx(np.linalg.norm(lsq_grad(THETA)), rel=1e-13)
    assert not bool(info.diverged) and int(state.count) == 1
    assert state.params.dtype == jnp.float64


def test_gd_on_pytree_params():
    loss = lambda p, x, y: jnp.mean((x @ p["kernel"] + p["bias"] - y) ** 2)
    params = {"kernel": THETA, "bias": jnp.asarray(0.3)}
    tmap = maps.gd(loss, X, Y)
    state, _ = tmap.step(tmap.init(params), {"learning_rate": 0.05})
    r = np.asarray(X @ THETA + 0.3 - Y)
    np.testing.assert_allclose(state.params["kernel"], THETA - 0.05 * 2 / 8 * np.asarray(X).T @ r, rtol=1e-13)
    np.testing.assert_allclose(state.params["bias"], 0.3 - 0.05 * 2 * r.mean(), rtol=1e-13)


def test_l2_adds_lambda_theta_to_the_gradient_but_not_to_the_reported_loss():
    tmap = maps.gd(lsq, X, Y)
    state, info = tmap.step(tmap.init(THETA), {"learning_rate": 0.1, "l2": 0.5})
    g = lsq_grad(THETA) + 0.5 * np.asarray(THETA)
    np.testing.assert_allclose(state.params, THETA - 0.1 * g, rtol=1e-13)
    assert info.loss == pytest.approx(float(lsq(THETA, X, Y)), rel=1e-13)
    assert info.grad_norm == pytest.approx(np.linalg.norm(g), rel=1e-13)


@pytest.mark.parametrize("beta, hyper_beta", [(0.8, None), (0.9, 0.5)])
def test_momentum_matches_the_heavy_ball_recursion(beta, hyper_beta):
    """v ← β v + ∇L(θ), θ ← θ − η v, three steps; ``hyper["momentum"]`` overrides β."""
    tmap = maps.momentum(lsq, X, Y, beta=beta)
    hyper = {"learning_rate": 0.1} if hyper_beta is None else {"learning_rate": 0.1, "momentum": hyper_beta}
    b = beta if hyper_beta is None else hyper_beta
    theta, v = np.asarray(THETA), np.zeros(3)
    state = tmap.init(THETA)
    for _ in range(3):
        state, _ = tmap.step(state, hyper)
        v = lsq_grad(theta) + b * v
        theta = theta - 0.1 * v
    np.testing.assert_allclose(state.params, theta, rtol=1e-12)
    assert int(state.count) == 3


def test_learning_rate_is_read_from_hyper_at_every_call():
    tmap = maps.gd(lsq, X, Y)
    s1, _ = tmap.step(tmap.init(THETA), {"learning_rate": 0.1})
    s2, _ = tmap.step(s1, {"learning_rate": 0.3})
    theta1 = np.asarray(THETA) - 0.1 * lsq_grad(THETA)
    np.testing.assert_allclose(s2.params, theta1 - 0.3 * lsq_grad(theta1), rtol=1e-13)


@pytest.mark.parametrize("make", [lambda: maps.gd(lsq, X, Y), lambda: maps.momentum(lsq, X, Y, beta=0.7)])
def test_vmap_over_eta_equals_separate_calls(make):
    tmap = make()
    state = tmap.init(THETA)
    etas = jnp.array([0.01, 0.2, 0.7])

    def two_steps(eta):
        s, _ = tmap.step(state, {"learning_rate": eta})
        s, info = tmap.step(s, {"learning_rate": eta})
        return s.params, info.loss

    batched, batched_loss = jax.jit(jax.vmap(two_steps))(etas)
    for i, eta in enumerate(etas):
        single, single_loss = two_steps(eta)
        np.testing.assert_allclose(batched[i], single, rtol=1e-13)
        np.testing.assert_allclose(batched_loss[i], single_loss, rtol=1e-13)
    assert not np.allclose(batched[0], batched[2])  # η really differs per lane


def test_sgd_step_uses_a_batch_of_distinct_samples():
    """X = I, y = 0: only the batch's coordinates move, each by the factor 1 − 2η/B."""
    n, bs, eta = 10, 3, 0.3
    tmap = maps.sgd(lsq, jnp.eye(n), jnp.zeros(n), batch_size=bs)
    theta = jnp.arange(1.0, n + 1)
    state = tmap.init(theta, jax.random.key(4))
    s1, info = tmap.step(state, {"learning_rate": eta})
    moved = np.flatnonzero(np.asarray(s1.params) != np.asarray(theta))
    assert len(moved) == bs
    np.testing.assert_allclose(s1.params[moved], theta[moved] * (1 - 2 * eta / bs), rtol=1e-14)
    assert info.loss == pytest.approx(float(np.sum(np.asarray(theta)[moved] ** 2) / bs), rel=1e-13)
    # the key advances: the next batch differs; the same key gives the same batch
    s2, _ = tmap.step(s1, {"learning_rate": eta})
    moved2 = np.flatnonzero(np.asarray(s2.params) != np.asarray(s1.params))
    assert len(moved2) == bs and set(moved2) != set(moved)
    again, _ = tmap.step(state, {"learning_rate": eta})
    np.testing.assert_array_equal(again.params, s1.params)


def test_sgd_with_the_full_batch_equals_gd():
    sgd = maps.sgd(lsq, X, Y, batch_size=len(Y))
    gd = maps.gd(lsq, X, Y)
    a, _ = sgd.step(sgd.init(THETA, jax.random.key(1)), {"learning_rate": 0.2})
    b, _ = gd.step(gd.init(THETA), {"learning_rate": 0.2})
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)


def test_adam_first_step_moves_each_coordinate_by_eta():
    tmap = maps.from_optax(optax.adam, lsq, X, Y)
    state, _ = tmap.step(tmap.init(THETA), {"learning_rate": 0.01})
    g = lsq_grad(THETA)
    np.testing.assert_allclose(state.params, np.asarray(THETA) - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_non_finite_updates_are_flagged_diverged():
    tmap = maps.gd(lsq, X, Y)
    state, info = tmap.step(tmap.init(THETA), {"learning_rate": 1e200})
    assert not bool(info.diverged)  # huge but finite
    state, info = tmap.step(state, {"learning_rate": 1e200})
    assert bool(info.diverged) and not np.isfinite(float(info.loss))


def test_bad_batch_size_and_unknown_optimizer_are_config_errors():
    for bs in (0, 9, -1):
        with pytest.raises(ConfigError, match=r"batch_size must be in 1\.\.8"):
            maps.sgd(lsq, X, Y, batch_size=bs)
    maps.sgd(lsq, X, Y, batch_size=8)
    from gdchaos.experiments.optimizers import optimizer

    for name in ("sgdd", "GradientTransformation", "tree_utils", "_src"):
        with pytest.raises(ConfigError, match=f"unknown optimizer '{name}'.*'adam'"):
            optimizer(name)
    assert optimizer("adam") is optax.adam and optimizer("sgd") is optax.sgd
    with pytest.raises(ConfigError, match=r"momentum beta must be in \[0, 1\)"):
        maps.momentum(lsq, X, Y, beta=1.0)


# --------------------------------------------------------------------------- strict hyperparameters


def test_schedule_is_multiplied_by_eta():
    """With a schedule s(t) as learning_rate, update t uses η·s(t): equal to optax's own adamw at η·s."""
    schedule = optax.cosine_decay_schedule(1.0, decay_steps=6)
    tmap = maps.from_optax(optax.adamw, lsq, X, Y, learning_rate=schedule, weight_decay=0.1)
    finals = []
    for eta in (1e-3, 1e-2, 1e-1):
        state = tmap.init(THETA)
        tx = optax.adamw(lambda c, eta=eta: eta * schedule(c), weight_decay=0.1)
        opt, p = tx.init(THETA), THETA
        for _ in range(5):
            state, _ = tmap.step(state, {"learning_rate": eta})
            u, opt = tx.update(jax.grad(lsq)(p, X, Y), opt, p)
            p = optax.apply_updates(p, u)
        np.testing.assert_allclose(state.params, p, rtol=1e-12, atol=1e-15)
        finals.append(np.asarray(state.params))
    assert not np.allclose(finals[0], finals[1]) and not np.allclose(finals[1], finals[2])


def test_schedule_driven_tangent_exponents_depend_on_eta():
    """run_tangent over η with a scheduled optimizer: the exponents differ between η (they used to coincide)."""
    from gdchaos.analyses.lyapunov import run_tangent

    schedule = optax.cosine_decay_schedule(1.0, decay_steps=40)
    tmap = maps.from_optax(optax.adamw, lsq, X, Y, learning_rate=schedule)
    res = run_tangent(tmap, lambda k: THETA + 0.1 * jax.random.normal(k, (3,)), eta=[1e-3, 1e-2, 1e-1],
                      n_ic=1, steps=20, key=jax.random.key(0), progress=False)
    lam = res.exponents[:, 0, 0]
    assert len(set(np.round(lam, 10))) == 3


@pytest.mark.parametrize("hyper", [{"lr": 0.1}, {"learning_rate": 0.1, "momentun": 0.9}])
def test_unknown_hyper_key_is_an_error(hyper):
    tmap = maps.momentum(lsq, X, Y, beta=0.5)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter.*accepts \[.*'learning_rate'.*'momentum'"):
        tmap.step(tmap.init(THETA), hyper)


def test_missing_learning_rate_is_an_error():
    tmap = maps.gd(lsq, X, Y)
    with pytest.raises(ConfigError, match="no 'learning_rate'"):
        tmap.step(tmap.init(THETA), {"l2": 0.1})


def test_scheduled_hyperparameter_cannot_be_set_from_hyper():
    tmap = maps.from_optax(optax.sgd, lsq, X, Y, momentum=lambda c: 0.9)
    with pytest.raises(ConfigError, match="unknown hyperparameter.*momentum"):
        tmap.step(tmap.init(THETA), {"learning_rate": 0.1, "momentum": 0.5})


def test_minibatch_map_with_numpy_data_jits():
    """NumPy training data (as data.iris() gives) works under jit with mini-batches."""
    tmap = maps.sgd(lsq, np.asarray(X), np.asarray(Y), batch_size=3)
    state, info = jax.jit(tmap.step)(tmap.init(THETA, jax.random.key(2)), {"learning_rate": 0.1})
    eager, _ = maps.sgd(lsq, X, Y, batch_size=3).step(tmap.init(THETA, jax.random.key(2)), {"learning_rate": 0.1})
    np.testing.assert_allclose(state.params, eager.params, rtol=1e-12)
