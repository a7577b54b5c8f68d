"""Local GD exponents from the Hessian, and spectrum summaries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gdchaos.core import maps

from gdchaos.core import models
from gdchaos.core.errors import ConfigError
from gdchaos.core.losses import cross_entropy
from gdchaos.analyses.lyapunov import kaplan_yorke, local_exponents, local_exponents_along, lyapunov_spectrum, n_positive
from gdchaos.analyses.lyapunov.local import (
    chaotic_count,
    direction_classes,
    flat_count,
    gd_local_exponents,
    hessian_matrix,
    hessian_spectrum,
    zero_tolerance,
)

EIGS = np.array([-0.5, 0.2, 1.0, 3.0])
ROT = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]
A = jnp.asarray(ROT @ np.diag(EIGS) @ ROT.T)


def quad(p):
    return 0.5 * p @ A @ p


def test_local_exponents_of_a_quadratic_are_exact():
    le = local_exponents(quad, jnp.ones(4), eta=0.3)
    np.testing.assert_allclose(le.eigenvalues, EIGS, atol=1e-12)
    np.testing.assert_allclose(le.exponents, np.log(np.abs(1 - 0.3 * EIGS)), atol=1e-12)
    assert int(le.n_positive) == 3 and int(le.n_negative) == 1 and int(le.n_chaotic) == 1 and int(le.n_flat) == 0


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
    # softmax shift invariance: adding c to every logit through the output bias or through
    # any hidden unit's outgoing weights leaves the loss unchanged, so H v = 0 exactly along
    # 4 + 1 directions; they are flat (neither positive, negative nor chaotic)
    np.testing.assert_array_equal(along.n_flat, [5, 5, 5])
    np.testing.assert_array_equal(along.n_positive + along.n_negative + along.n_flat, [26, 26, 26])


# η = 1/2, 2/η = 4; rtol = 1/8 and max|λ| = 8 give tol = 1 (all exact in binary)
HAND = np.array([-8.0, -1.0 - 2.0**-40, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0 + 2.0**-40, 2.0, 4.0, 4.0 + 2.0**-40, 8.0])
CHAOTIC = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], bool)  # λ < −1 or λ > 4
FLAT = np.array([0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)  # |λ| ≤ 1, both edges included
STABLE = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0], bool)  # 1 < λ ≤ 4, λ = 4 = 2/η (μ = 0) included


def test_three_classes_partition_a_hand_made_spectrum():
    c = direction_classes(HAND, eta=0.5, rtol=0.125)
    np.testing.assert_array_equal(c.chaotic, CHAOTIC)
    np.testing.assert_array_equal(c.flat, FLAT)
    np.testing.assert_array_equal(c.stable, STABLE)
    assert int(chaotic_count(HAND, 0.5, rtol=0.125)) == 4 and int(flat_count(HAND, rtol=0.125)) == 5
    # chaotic ⇔ a positive local exponent among the non-flat; λ = 2/η has μ = 0 exactly
    with np.errstate(divide="ignore"):  # λ = 2 = 1/η: μ = −∞
        mu = np.log(np.abs(1.0 - 0.5 * HAND))
    np.testing.assert_array_equal(CHAOTIC, ~FLAT & (mu > 0))
    assert mu[9] == 0.0 and float(gd_local_exponents(HAND, 0.5)[9]) == 0.0
    # herrmann2022 Thm A.5's count (λ ≤ tol or λ ≥ 2/η, μ ≥ 0) is chaotic + flat + the λ = 2/η one
    assert np.sum((HAND <= 1.0) | (0.5 * HAND >= 2.0)) == 4 + 5 + 1
    # the same classes in a batch, a permuted order, and via LocalExponents
    perm = np.random.default_rng(3).permutation(HAND.size)
    batch = direction_classes(np.stack([HAND, HAND[perm]]), eta=0.5, rtol=0.125)
    np.testing.assert_array_equal(batch.chaotic[1], CHAOTIC[perm])
    quad_hand = lambda p: 0.5 * jnp.sum(jnp.asarray(HAND) * p**2)
    le = local_exponents(quad_hand, jnp.ones(HAND.size), eta=0.5, rtol=0.125)
    assert (int(le.n_chaotic), int(le.n_flat), int(le.n_positive), int(le.n_negative)) == (4, 5, 5, 2)


def test_default_flat_tolerance_is_n_eps_times_max_abs_eigenvalue():
    eps = np.finfo(np.float64).eps
    n = 4
    tol = n * eps * 3.0
    assert float(zero_tolerance(np.array([-3.0, 0.0, 1.0, 2.0]))[0]) == tol
    lam = np.array([-3.0, tol, -tol, 1.0])  # ±tol sit on the edge: flat
    assert int(flat_count(lam)) == 2  # ±tol; not −3 or 1
    edge = np.array([-3.0, np.nextafter(tol, 1.0), -np.nextafter(tol, 1.0), 1.0])
    assert int(flat_count(edge)) == 0
    assert int(chaotic_count(edge, eta=0.1)) == 2  # −3 and the negative one just past −tol
    # float32 spectra use float32's ε
    lam32 = np.array([-3.0, 0.0, 1.0, 2.0], np.float32)
    assert float(zero_tolerance(lam32)[0]) == pytest.approx(4 * np.finfo(np.float32).eps * 3.0)


def test_no_count_from_a_nan_spectrum_and_nan_in_no_class():
    lam = np.array([np.nan, -1.0, 0.0, 0.5, 3.0])
    assert int(chaotic_count(lam, 1.0)) == -1 and int(flat_count(lam)) == -1
    c = direction_classes(np.array([[np.nan, -1.0], [0.0, 3.0]]), eta=1.0, rtol=0.01)
    assert not bool(c.chaotic[0, 0] | c.flat[0, 0] | c.stable[0, 0])
    np.testing.assert_array_equal(flat_count(np.array([[np.nan, 0.0], [0.0, 3.0]])), [-1, 1])


@pytest.mark.parametrize("rtol", [-1e-3, float("nan"), float("inf")])
def test_a_bad_flat_tolerance_is_a_config_error(rtol):
    with pytest.raises(ConfigError, match="rtol must be finite and >= 0"):
        flat_count(np.array([0.0, 1.0]), rtol=rtol)
    with pytest.raises(ConfigError, match="rtol must be finite and >= 0"):
        local_exponents(quad, jnp.ones(4), eta=0.1, rtol=rtol)


def test_count_flips_exactly_at_two_over_lambda():
    lam = np.array([0.25, 1.0, 4.0])  # 2/λ_max = 0.5: ηλ = 2 exactly there
    below, above = np.nextafter(0.5, 0.0), np.nextafter(0.5, 1.0)
    assert [int(chaotic_count(lam, e)) for e in (below, 0.5, above)] == [0, 0, 1]
    assert [int(chaotic_count(lam, e)) for e in (np.nextafter(2.0, 0.0), 2.0, np.nextafter(2.0, 4.0))] == [1, 1, 2]
    # flat directions never flip: λ = 0 stays flat at any η
    lam0 = np.array([0.0, 4.0])
    for eta in (0.1, 0.5, above, 100.0):
        assert int(flat_count(lam0)) == 1 and int(chaotic_count(lam0, eta)) == int(eta * 4.0 > 2.0)


D_IN, HIDDEN, OUT, SAMPLES = 3, 4, 2, 20


def relu_net(params, x):
    return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def test_a_dead_relu_unit_adds_exactly_fan_in_plus_one_plus_fan_out_flat_directions():
    """A ReLU unit with pre-activation < 0 on every sample has a(x) = 0 and relu'(z) = 0 there:
    the network output depends on none of its D_IN incoming weights, its bias or its OUT
    outgoing weights, and every first and second derivative through it vanishes. Its
    D_IN + 1 + OUT = 6 Hessian rows and columns are exactly 0, the other block equals the
    Hessian of the network without the unit, so the unit adds exactly 6 flat directions."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(SAMPLES, D_IN)))
    y = jnp.asarray(rng.normal(size=(SAMPLES, OUT)))
    live = {"w1": rng.normal(size=(D_IN, HIDDEN)), "b1": 0.1 * rng.normal(size=HIDDEN),
            "w2": rng.normal(size=(HIDDEN, OUT)), "b2": rng.normal(size=OUT)}
    dead = dict(live, w1=np.concatenate([live["w1"], 0.1 * rng.normal(size=(D_IN, 1))], axis=1),
                b1=np.append(live["b1"], -100.0), w2=np.concatenate([live["w2"], rng.normal(size=(1, OUT))]))
    assert np.all(np.asarray(x) @ dead["w1"][:, -1] - 100.0 < 0)  # dead on all data
    live, dead = (jax.tree.map(jnp.asarray, p) for p in (live, dead))
    mse = lambda p: 0.5 * jnp.mean(jnp.sum((relu_net(p, x) - y) ** 2, axis=-1))

    # the dead unit's rows of the explicit Hessian (ravel_pytree order b1, b2, w1, w2) are exact zeros
    marker = dict(dead, w1=jnp.zeros_like(dead["w1"]).at[:, -1].set(1.0), b1=jnp.zeros(HIDDEN + 1).at[-1].set(1.0),
                  w2=jnp.zeros_like(dead["w2"]).at[-1].set(1.0), b2=jnp.zeros(OUT))
    rows = np.flatnonzero(np.asarray(ravel_pytree(marker)[0]))
    assert rows.size == D_IN + 1 + OUT
    h = np.asarray(hessian_matrix(mse, dead))
    assert np.all(h[rows] == 0.0) and np.all(h[:, rows] == 0.0)

    le_live, le_dead = local_exponents(mse, live, eta=0.1), local_exponents(mse, dead, eta=0.1)
    assert int(le_live.n_flat) == 0  # MSE with 2 outputs on 20 generic samples: no flat direction
    assert int(le_dead.n_flat) == D_IN + 1 + OUT
    assert int(le_dead.n_chaotic) == int(le_live.n_chaotic)  # the flat ones are not chaotic
    # far from the edge: the flat ones are roundoff, the smallest other |λ| is far above tol
    lam = np.sort(np.abs(np.asarray(le_dead.eigenvalues)))
    tol = float(zero_tolerance(le_dead.eigenvalues)[0])
    assert lam[D_IN + OUT] < 1e-2 * tol and lam[D_IN + 1 + OUT] > 1e6 * tol


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
