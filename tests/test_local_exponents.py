"""Local GD exponents from the Hessian, and spectrum summaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos import maps, models
from gdchaos.errors import ConfigError
from gdchaos.losses import cross_entropy
from gdchaos.lyapunov import kaplan_yorke, local_exponents, local_exponents_along, lyapunov_spectrum, n_positive
from gdchaos.lyapunov.local import chaotic_count, hessian_matrix, hessian_spectrum

EIGS = np.array([-0.5, 0.2, 1.0, 3.0])
ROT = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]
A = jnp.asarray(ROT @ np.diag(EIGS) @ ROT.T)


def quad(p):
    return 0.5 * p @ A @ p


def test_local_exponents_of_a_quadratic_are_exact():
    le = local_exponents(quad, jnp.ones(4), eta=0.3)
    np.testing.assert_allclose(le.eigenvalues, EIGS, atol=1e-12)
    np.testing.assert_allclose(le.exponents, np.log(np.abs(1 - 0.3 * EIGS)), atol=1e-12)
    assert int(le.n_positive) == 3 and int(le.n_negative) == 1 and int(le.n_chaotic) == 1


@pytest.mark.parametrize("eta, expected", [(0.6, 1), (0.66, 1), (0.67, 2), (1.5, 2), (2.5, 3), (12.0, 4)])
def test_chaotic_count_flips_when_eta_crosses_two_over_lambda(eta, expected):
    # λ = -0.5 is always chaotic; λ_max = 3 from η ≥ 2/3; λ = 1 from η ≥ 2; λ = 0.2 from η ≥ 10
    assert int(chaotic_count(EIGS, eta)) == expected


def test_count_from_the_hessian_flips_at_two_over_lambda_max():
    below, above = (local_exponents(quad, jnp.zeros(4), eta) for eta in (2 / 3 - 1e-3, 2 / 3 + 1e-3))
    assert int(below.n_chaotic) == 1 and int(above.n_chaotic) == 2
    assert float(below.exponents[-1]) < 0 < float(above.exponents[-1])


def test_local_exponents_equal_tangent_exponents_for_gd_on_a_quadratic():
    eta = 0.7  # > 2/3: one unstable direction besides the negative curvature
    tmap = maps.gd(lambda p, x, y: quad(p), jnp.zeros((1, 4)), jnp.zeros(1))
    lam, _ = lyapunov_spectrum(tmap.step, tmap.init(jnp.ones(4)), {"learning_rate": eta}, 400, k=4, transient=50)
    le = local_exponents(quad, jnp.ones(4), eta=eta)
    np.testing.assert_allclose(lam, np.sort(le.exponents)[::-1], atol=1e-8)


def test_hessian_of_a_small_mlp_matches_jax_hessian():
    net = models.mlp((3, 4, 2), activation="tanh")
    params = net.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (6, 3))
    y = jnp.array([0, 1, 0, 1, 1, 0])
    loss = lambda p: cross_entropy(net.apply(p, x), y)
    h = hessian_matrix(loss, params)
    # jax.hessian on the pytree: blocks (leaf_i, leaf_j), assembled in ravel_pytree order
    blocks = jax.tree.leaves(jax.jit(jax.hessian(loss))(params))
    sizes = [leaf.size for leaf in jax.tree.leaves(params)]
    n_leaves = len(sizes)
    direct = np.block([[np.reshape(blocks[i * n_leaves + j], (sizes[i], sizes[j])) for j in range(n_leaves)]
                       for i in range(n_leaves)])
    assert h.shape == (sum(sizes), sum(sizes)) == (26, 26)
    np.testing.assert_allclose(h, direct, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(hessian_spectrum(loss, params), np.linalg.eigvalsh(direct), atol=1e-12)

    # along a trajectory: vmapped over snapshots = one call per snapshot
    snaps = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a, -a]), params)
    along = local_exponents_along(loss, snaps, eta=1.0)
    assert along.eigenvalues.shape == (3, 26) and along.n_chaotic.shape == (3,)
    for t in range(3):
        one = local_exponents(loss, jax.tree.map(lambda a: a[t], snaps), eta=1.0)
        np.testing.assert_allclose(along.eigenvalues[t], one.eigenvalues, atol=1e-12)
        assert int(along.n_chaotic[t]) == int(one.n_chaotic)
    # zero biases on the last layer's softmax shift: an exactly flat direction, counted as λ = 0
    assert int(along.n_positive[0] + along.n_negative[0]) < 26


def test_too_many_parameters_is_a_config_error():
    with pytest.raises(ConfigError, match="raise max_params"):
        local_exponents(lambda p: jnp.sum(p**2), jnp.ones(10), eta=0.1, max_params=5)


def test_kaplan_yorke_and_positive_count():
    assert kaplan_yorke([0.419, -1.623]) == pytest.approx(1 + 0.419 / 1.623)
    assert kaplan_yorke([-1.623, 0.419]) == pytest.approx(1 + 0.419 / 1.623)  # order does not matter
    assert kaplan_yorke([-0.1, -0.5]) == 0.0  # all negative
    assert kaplan_yorke([0.5, 0.1]) == 2.0  # every partial sum ≥ 0
    assert kaplan_yorke([0.3, 0.1, -0.2, -1.0]) == pytest.approx(3 + 0.2 / 1.0)
    assert kaplan_yorke([0.5, -0.5, -1.0]) == pytest.approx(2.0)  # S_2 = 0 exactly
    assert kaplan_yorke([0.0, -1.0]) == 1.0  # marginal direction counts
    lorenz = [0.9056, 0.0, -14.5723]
    assert kaplan_yorke(lorenz) == pytest.approx(2 + 0.9056 / 14.5723)
    batch = kaplan_yorke(np.array([[[0.419, -1.623], [-0.1, -0.5]], [[0.5, 0.1], [np.nan, -1.0]]]))
    np.testing.assert_allclose(batch, [[1 + 0.419 / 1.623, 0.0], [2.0, np.nan]])
    assert n_positive([0.3, 0.0, -0.2]) == 1
    assert n_positive([0.3, 0.0, -0.2], tol=-0.5) == 3
    np.testing.assert_array_equal(n_positive(np.array([[0.1, 0.2], [-1.0, 0.5]])), [2, 1])
