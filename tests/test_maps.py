"""Training maps against hand-written update rules."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdchaos import maps
from gdchaos.errors import ConfigError

A = jnp.diag(jnp.array([1.0, 3.0]))


def quad_loss(p, x, y):
    return 0.5 * p @ A @ p


X, Y = jnp.zeros((4, 2)), jnp.zeros(4)


def test_gd_step_is_theta_minus_eta_grad():
    tmap = maps.gd(quad_loss, X, Y)
    theta = jnp.array([1.0, -2.0])
    state, info = tmap.step(tmap.init(theta), {"learning_rate": 0.1})
    np.testing.assert_allclose(state.params, theta - 0.1 * (A @ theta))
    assert info.loss == pytest.approx(0.5 * float(theta @ A @ theta))
    assert info.grad_norm == pytest.approx(float(jnp.linalg.norm(A @ theta)))
    assert not info.diverged and int(state.count) == 1


def test_l2_adds_lambda_theta_to_gradient():
    tmap = maps.gd(quad_loss, X, Y)
    theta = jnp.array([1.0, -2.0])
    state, _ = tmap.step(tmap.init(theta), {"learning_rate": 0.1, "l2": 0.5})
    np.testing.assert_allclose(state.params, theta - 0.1 * (A @ theta + 0.5 * theta))


def test_momentum_matches_heavy_ball_recursion():
    tmap = maps.momentum(quad_loss, X, Y, beta=0.8)
    theta, v = jnp.array([1.0, -2.0]), jnp.zeros(2)
    state = tmap.init(theta)
    for _ in range(3):
        state, _ = tmap.step(state, {"learning_rate": 0.1})
        v = A @ theta + 0.8 * v
        theta = theta - 0.1 * v
    np.testing.assert_allclose(state.params, theta, rtol=1e-12)


def test_learning_rate_is_an_argument_that_vmaps():
    tmap = maps.gd(quad_loss, X, Y)
    state = tmap.init(jnp.array([1.0, -2.0]))
    etas = jnp.array([0.1, 0.2, 0.7])
    batched, _ = jax.vmap(lambda e: tmap.step(state, {"learning_rate": e}))(etas)
    for i, e in enumerate(etas):
        single, _ = tmap.step(state, {"learning_rate": e})
        np.testing.assert_allclose(batched.params[i], single.params)


def test_any_optax_alias_runs():
    tmap = maps.from_optax(optax.adam, quad_loss, X, Y)
    state = tmap.init(jnp.array([1.0, -2.0]))
    for _ in range(5):
        state, info = tmap.step(state, {"learning_rate": 0.01})
    assert np.all(np.abs(state.params) < np.array([1.0, 2.0]))


def test_bad_batch_size_and_unknown_optimizer_are_config_errors():
    with pytest.raises(ConfigError, match="batch_size"):
        maps.sgd(quad_loss, X, Y, batch_size=10)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        maps.optax_alias("sgdd")
    with pytest.raises(ConfigError, match="momentum beta"):
        maps.momentum(quad_loss, X, Y, beta=1.0)
