"""Perturbations along chosen directions and the perturbation-strategies experiment, against exact GD answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gdchaos.core import maps
from gdchaos.analyses.directions import (
    hessian_directions,
    lyapunov_directions,
    lyapunov_strategies,
    perturb_along,
    random_directions,
    scale_to_norm,
    strategy_distances,
    subspace_directions,
    tree_norm,
)
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov.tangent import exponents, tangent_map

EIGS = np.array([0.3, 1.0, 2.0, 5.0])  # η = 0.5: 1 − ηλ = 0.85, 0.5, 0, −1.5
N = EIGS.size
ROT = np.linalg.qr(np.random.default_rng(11).normal(size=(N, N)))[0]
A = jnp.asarray(ROT @ np.diag(EIGS) @ ROT.T)
P0 = {"a": jnp.array([1.0, -1.0]), "b": jnp.array([0.5, 2.0])}
_, UNRAVEL = ravel_pytree(P0)
ETA = 0.5


def flat(tree):
    return ravel_pytree(tree)[0]


def quad(p):
    return 0.5 * flat(p) @ A @ flat(p)


TMAP = maps.gd(lambda p, x, y: quad(p), jnp.zeros((1, N)), jnp.zeros(1))


def test_perturbations_have_the_requested_norm():
    dirs = random_directions(jax.random.key(0), P0, 3)
    assert dirs["a"].shape == (3, 2)
    for norm in ("l2", "l1"):
        members = perturb_along(P0, dirs, 1e-3, norm=norm)
        for i in range(3):
            delta = jax.tree.map(lambda m, p: m[i] - p, members, P0)
            assert float(tree_norm(delta, norm)) == pytest.approx(1e-3, rel=1e-10)
            # the direction is kept
            d = flat(jax.tree.map(lambda x: x[i], dirs))
            cos = np.dot(flat(delta), d) / (np.linalg.norm(flat(delta)) * np.linalg.norm(d))
            assert abs(float(cos)) == pytest.approx(1.0)
    # ε is traced: vmap over a grid of ε
    sizes = jax.vmap(lambda e: tree_norm(scale_to_norm(P0, e), "l2"))(jnp.array([1e-6, 1e-2]))
    np.testing.assert_allclose(sizes, [1e-6, 1e-2], rtol=1e-10)


def test_hessian_eigenvector_perturbations_give_exact_gd_distance_curves():
    top = hessian_directions(quad, P0, 2, which="top", num_iters=N)
    bottom = hessian_directions(quad, P0, 2, which="bottom", num_iters=N)
    rand = random_directions(jax.random.key(1), P0, 2)
    eps, steps = 1e-3, 6
    dirs = {"top": top, "bottom": bottom, "random": rand}
    for distance in ("l2", "l1"):
        d = strategy_distances(TMAP, P0, dirs, eps, {"learning_rate": ETA}, steps, norm=distance, distance=distance)
        assert set(d) == set(dirs) and d["top"].shape == (2, steps + 1)
        t = np.arange(steps + 1)
        # GD on a quadratic is linear: δ_t = (I − ηA)^t δ_0, so along v_i  d(t) = ε |1 − ηλ_i|^t exactly
        np.testing.assert_allclose(d["top"][0], eps * 1.5**t, rtol=1e-9)
        # λ = 2 = 1/η: killed in one step (up to roundoff)
        np.testing.assert_allclose(d["top"][1], eps * 0.0**t, atol=1e-12)
        np.testing.assert_allclose(d["bottom"][0], eps * 0.85**t, rtol=1e-9)
        np.testing.assert_allclose(d["bottom"][1], eps * 0.5**t, rtol=1e-9)
        np.testing.assert_allclose(d["random"][:, 0], eps, rtol=1e-12)


def test_lyapunov_vectors_of_a_tangent_basis_and_the_five_strategies():
    lmap = tangent_map(TMAP.step, N, transient=10)

    @jax.jit
    def run(key):
        lstate = lmap.init(TMAP.init(P0), key)
        lstate = jax.lax.fori_loop(0, 60, lambda _, s: lmap.step(s, {"learning_rate": ETA})[0], lstate)
        return lstate, exponents(lstate)

    lstate, lam = run(jax.random.key(3))
    # exponents ln|1 − ηλ|: ln 1.5, ln 0.85, ln 0.5, −∞ (λ = 1/η), in QR order
    np.testing.assert_allclose(lam[:3], np.log([1.5, 0.85, 0.5]), atol=1e-6)
    top = lyapunov_directions(lstate.basis, 1, which="top")  # the params part of the TrainState basis
    assert abs(float(flat(jax.tree.map(lambda x: x[0], top)) @ ROT[:, 3])) == pytest.approx(1.0, abs=1e-8)
    second_last = lyapunov_directions(lstate, 2, which="bottom")  # the state itself works too
    assert abs(float(flat(jax.tree.map(lambda x: x[1], second_last)) @ ROT[:, 1])) == pytest.approx(1.0, abs=1e-6)

    strategies = lyapunov_strategies(jax.random.key(4), lstate.basis, jnp.nan_to_num(lam, neginf=-1e3), members=4)
    assert list(strategies) == ["max_chaotic", "chaotic", "random", "nonchaotic", "max_nonchaotic"]
    d = strategy_distances(TMAP, P0, strategies, 1e-3, {"learning_rate": ETA}, 8)
    final = {name: np.asarray(v[:, -1]) for name, v in d.items()}
    np.testing.assert_allclose(final["max_chaotic"], 1e-3 * 1.5**8, rtol=1e-6)
    # only one chaotic direction here: "chaotic" is ± the top vector too
    np.testing.assert_allclose(final["chaotic"], 1e-3 * 1.5**8, rtol=1e-6)
    assert np.all(final["random"] > final["nonchaotic"].max())
    assert np.all(final["nonchaotic"] <= 1e-3 * 0.85**8 * (1 + 1e-6))
    np.testing.assert_allclose(final["max_nonchaotic"], 0.0, atol=1e-12)  # the λ = 1/η direction


def test_subspace_directions_stay_in_the_subspace():
    basis = jnp.asarray(ROT.T)  # rows = eigenvectors
    mask = jnp.array([True, False, True, False])
    d = subspace_directions(jax.random.key(0), basis, mask, 5)
    coef = np.asarray(d) @ ROT
    np.testing.assert_allclose(coef[:, [1, 3]], 0.0, atol=1e-12)
    assert np.all(np.abs(coef[:, [0, 2]]) > 0)


def test_strategy_distances_with_sgd_share_the_batches():
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.normal(size=(8, N))), jnp.asarray(rng.normal(size=8))
    tmap = maps.sgd(lambda p, xb, yb: 0.5 * jnp.mean((xb @ flat(p) - yb) ** 2), x, y, batch_size=2)
    # a zero-size perturbation must give d(t) = 0 exactly: the same mini-batches for every member
    d = strategy_distances(tmap, P0, {"r": random_directions(jax.random.key(0), P0, 2)}, 0.0, {"learning_rate": 0.1}, 5)
    np.testing.assert_allclose(d["r"], 0.0, atol=0)


def one_direction():
    return random_directions(jax.random.key(0), P0, 1)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: perturb_along(P0, one_direction(), 1e-3, norm="linf"), "norm must be one of"),
        (lambda: random_directions(jax.random.key(0), P0, 0), "k must be >= 1; got 0"),
        (lambda: hessian_directions(quad, P0, 5), "k must be <= 4"),
        (lambda: hessian_directions(quad, P0, 1, which="left"), "which must be 'top' or 'bottom'"),
        (lambda: lyapunov_directions(jnp.eye(3), 4), "k must be <= 3"),
        (lambda: lyapunov_strategies(jax.random.key(0), jnp.eye(3), jnp.zeros(2)), "one entry per basis row"),
        (
            lambda: strategy_distances(
                TMAP, P0, {"a": one_direction(), "b": random_directions(jax.random.key(0), P0, 2)}, 1e-3, {}, 2
            ),
            "same number of members",
        ),
        (lambda: strategy_distances(TMAP, P0, {}, 1e-3, {"learning_rate": 0.1}, 2), "directions is empty"),
        (
            lambda: strategy_distances(TMAP, P0, {"a": one_direction()}, 1e-3, {}, 2, distance="cos"),
            "distance must be one of",
        ),
        (
            lambda: strategy_distances(TMAP, P0, {"a": one_direction()}, 1e-3, {}, 0),
            "steps must be >= 1; got 0",
        ),
    ],
)
def test_bad_arguments_raise_config_errors_that_state_the_fix(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
