"""Local GD exponents from the Hessian, and spectrum summaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos import models
from gdchaos.losses import cross_entropy
from gdchaos.lyapunov import kaplan_yorke, local_exponents, local_exponents_along, lyapunov_spectrum, n_positive
from gdchaos.lyapunov.local import hessian_matrix

EIGS = jnp.array([-0.5, 0.2, 1.0, 3.0])
A = jnp.diag(EIGS)


def quad(p):
    return 0.5 * p @ A @ p


def test_local_exponents_of_a_quadratic_are_exact():
    le = local_exponents(quad, jnp.ones(4), eta=0.3)
    np.testing.assert_allclose(le.eigenvalues, EIGS)
    np.testing.assert_allclose(le.exponents, np.log(np.abs(1 - 0.3 * np.asarray(EIGS))))
    assert int(le.n_positive) == 3 and int(le.n_negative) == 1


@pytest.mark.parametrize("eta, expected", [(0.6, 1), (0.66, 1), (0.67, 2), (1.5, 2), (2.5, 3), (12.0, 4)])
def test_chaotic_count_flips_when_eta_crosses_two_over_lambda(eta, expected):
    # λ = -0.5 is always chaotic; λ = 3 from η ≥ 2/3; λ = 1 from η ≥ 2; λ = 0.2 from η ≥ 10
    assert int(local_exponents(quad, jnp.zeros(4), eta).n_chaotic) == expected


def test_local_exponents_equal_tangent_exponents_for_gd_on_a_quadratic():
    step = lambda x, h: (x - 0.3 * (A @ x), None)
    lam, _ = lyapunov_spectrum(step, jnp.ones(4), None, 400, k=4, transient=50)
    le = local_exponents(quad, jnp.ones(4), eta=0.3)
    np.testing.assert_allclose(np.sort(lam), np.sort(le.exponents), atol=1e-8)


def test_hessian_of_a_small_mlp_matches_jax_hessian():
    net = models.mlp((3, 4, 2), activation="tanh")
    params = net.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, 3))
    y = jnp.array([0, 1, 0, 1, 1, 0])
    loss = lambda p: cross_entropy(net.apply(p, x), y)
    h = hessian_matrix(loss, params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    direct = jax.hessian(lambda v: loss(unravel(v)))(flat)
    np.testing.assert_allclose(h, direct, rtol=1e-10)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    snaps = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), params)
    along = local_exponents_along(loss, snaps, eta=1.0)
    assert along.eigenvalues.shape == (2, flat.size)


def test_kaplan_yorke_and_positive_count():
    assert kaplan_yorke([0.419, -1.623]) == pytest.approx(1 + 0.419 / 1.623)
    assert kaplan_yorke([-0.1, -0.5]) == 0.0
    assert kaplan_yorke([0.5, 0.1]) == 2.0
    assert kaplan_yorke([0.3, 0.1, -0.2, -1.0]) == pytest.approx(3 + 0.2 / 1.0)
    assert n_positive([0.3, 0.0, -0.2]) == 1
