"""CGD: the projection removes exactly the chosen Hessian directions; exact tangent spectra on a quadratic."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from gdchaos.core import maps
from gdchaos.analyses.curvature.cgd import CGDState, cgd, cgd_dynamical, cgd_map, cgd_optimizer
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov.tangent import dimension, lyapunov_spectrum, tangent_map

EIGS = np.array([-0.5, 0.2, 1.0, 3.0, 4.0])
N = EIGS.size
ROT = np.linalg.qr(np.random.default_rng(3).normal(size=(N, N)))[0]
A_NP = ROT @ np.diag(EIGS) @ ROT.T
A = jnp.asarray(A_NP)
X0, Y0 = jnp.zeros((1, N)), jnp.zeros(1)
P0 = {"u": jnp.ones(2), "v": jnp.arange(1.0, 4.0)}  # N = 5 over two leaves
_, UNRAVEL = ravel_pytree(P0)


def flat(tree):
    return ravel_pytree(tree)[0]


def quad(p):
    v = flat(p)
    return 0.5 * v @ A @ v


def quad_fn(p, x, y):
    return quad(p)


def removed(which, eta, k=None):
    """Indices (into EIGS) of the directions CGD must remove."""
    lam = EIGS
    if which == "chaotic":
        mask, score = (lam <= 0) | (eta * lam >= 2), np.abs(np.log(np.abs(1 - eta * lam)))
    elif which == "positive":
        mask, score = lam > 0, np.abs(lam)
    else:
        mask, score = lam < 0, np.abs(lam)
    idx = np.flatnonzero(mask)
    if k is not None:
        idx = idx[np.argsort(-score[idx])][:k]
    return sorted(idx.tolist())


@pytest.mark.parametrize(
    "which, k, expected",
    [
        ("chaotic", None, [0, 4]),  # η = 0.6: 2/η = 3.33, so λ = −0.5 and λ = 4 (not λ = 3)
        ("chaotic", 1, [4]),  # ln|1 − 2.4| = 0.34 > ln|1 + 0.3| = 0.26
        ("positive", None, [1, 2, 3, 4]),
        ("positive", 2, [3, 4]),
        ("negative", None, [0]),
    ],
)
def test_projection_removes_exactly_the_chosen_directions(which, k, expected):
    eta = 0.6
    assert removed(which, eta, k) == expected
    tx = optax.chain(cgd(quad, eta=eta, which=which, k=k, method="full"), optax.sgd(eta))
    g = jax.grad(quad)(P0)
    updates, state = tx.update(g, tx.init(P0), P0)
    assert jax.tree.structure(updates) == jax.tree.structure(P0)
    coef = ROT.T @ np.asarray(flat(updates))  # components along the eigenvectors
    want = -eta * (ROT.T @ np.asarray(flat(g)))
    want[expected] = 0.0
    np.testing.assert_allclose(coef, want, atol=1e-12)
    assert int(state[0].count) == 1


def spectrum_of(tmap, eta, dynamical=None):
    kw = {} if dynamical is None else {"dynamical": dynamical}
    lam, _ = lyapunov_spectrum(tmap.step, tmap.init(P0), {"learning_rate": eta}, 600, k=N, transient=100, **kw)
    return np.asarray(lam)


def one_step_stretch(tmap, eta, dynamical=None):
    """ln|J v_i| of one tangent-map step with the basis set to the Hessian eigenvectors v_i.

    J V = V D for the pruned GD Jacobian J = I − ηPH (P commutes with H), so the QR of J V
    has R = |D| and the log-stretches are exactly ln|d_i|, in eigenvector order.
    """
    kw = {} if dynamical is None else {"dynamical": dynamical}
    lmap = tangent_map(tmap.step, N, **kw)

    @jax.jit
    def run(eta):
        lstate = lmap.init(tmap.init(P0))
        lstate = lstate._replace(basis=lstate.basis._replace(params=jax.vmap(UNRAVEL)(jnp.asarray(ROT.T))))
        return lmap.step(lstate, {"learning_rate": eta})[1].log_stretch

    return np.asarray(run(eta))


@pytest.mark.parametrize("which, eta", [("chaotic", 0.6), ("positive", 0.3), ("negative", 0.3)])
def test_tangent_spectrum_is_zero_along_removed_and_gd_along_kept_directions(which, eta):
    # Jacobian I − ηPH: eigenvalue 1 along removed eigenvectors, 1 − ηλ along kept ones
    tmap = cgd_map(quad_fn, X0, Y0, which=which, method="full")
    cut = removed(which, eta)
    exact = np.log(np.abs(1 - eta * EIGS))
    exact[cut] = 0.0
    np.testing.assert_allclose(one_step_stretch(tmap, eta), exact, atol=1e-12)


def test_plain_gd_keeps_the_chaotic_exponents():
    gd = maps.gd(quad_fn, X0, Y0)
    np.testing.assert_allclose(one_step_stretch(gd, 0.6), np.log(np.abs(1 - 0.6 * EIGS)), atol=1e-12)


def test_pruned_map_has_no_positive_exponent_and_keeps_removed_coordinates_fixed():
    eta = 0.6
    tmap = cgd_map(quad_fn, X0, Y0, which="chaotic")
    run = jax.jit(lambda s: jax.lax.fori_loop(0, 5, lambda _, c: tmap.step(c, {"learning_rate": eta})[0], s))
    state = run(tmap.init(P0))
    before, after = ROT.T @ np.asarray(flat(P0)), ROT.T @ np.asarray(flat(state.params))
    np.testing.assert_allclose(after[[0, 4]], before[[0, 4]], atol=1e-12)  # chaotic components frozen
    np.testing.assert_allclose(after[1:4], before[1:4] * (1 - eta * EIGS[1:4]) ** 5, atol=1e-12)


def test_lanczos_method_prunes_among_the_extreme_pairs():
    eta = 0.6
    tmap = cgd_map(quad_fn, X0, Y0, which="chaotic", k=1, method="lanczos", num_iters=N)
    exact = np.log(np.abs(1 - eta * EIGS))
    exact[4] = 0.0  # of the extremes λ = −0.5 and λ = 4, λ = 4 has the larger exponent
    np.testing.assert_allclose(one_step_stretch(tmap, eta), exact, atol=1e-10)


def test_every_k_steps_reuses_the_stored_directions():
    loss = lambda p: jnp.sum(flat(p) ** 4) + quad(p)  # H(θ) = diag(12 θ²) + A changes along the path
    eta, every = 0.05, 3
    tx = optax.chain(cgd(loss, eta=eta, which="positive", k=2, every=every, method="full"), optax.sgd(eta))
    state, params = tx.init(P0), P0
    assert state[0].cgd_vectors.shape == (N, N) and state[0].cgd_mask.shape == (N,)
    update = jax.jit(tx.update)
    for t in range(4):
        if t % every == 0:
            anchor = np.asarray(flat(params))
        g = jax.grad(loss)(params)
        updates, state = update(g, state, params)
        top2 = np.linalg.eigh(np.diag(12 * anchor**2) + A_NP)[1][:, -2:]
        want = -eta * (np.asarray(flat(g)) - top2 @ (top2.T @ np.asarray(flat(g))))
        np.testing.assert_allclose(flat(updates), want, atol=1e-10)
        params = optax.apply_updates(params, updates)
    assert int(state[0].count) == 4


def test_tangent_map_of_a_stored_direction_cgd_map():
    eta = 0.6
    tmap = cgd_map(quad_fn, X0, Y0, which="chaotic", every=2)
    state = tmap.init(P0)
    assert dimension(state) > N  # the stored directions are floats too ...
    assert dimension(state, cgd_dynamical) == N  # ... but not dynamical variables
    exact = np.log(np.abs(1 - eta * EIGS))
    exact[[0, 4]] = 0.0
    np.testing.assert_allclose(one_step_stretch(tmap, eta, cgd_dynamical), exact, atol=1e-12)
    # the Lyapunov spectrum of a whole run (Benettin/QR) converges to the same numbers
    np.testing.assert_allclose(spectrum_of(tmap, eta, cgd_dynamical), np.sort(exact)[::-1], atol=1e-5)


def test_vmap_over_learning_rates_and_injected_momentum():
    tmap = cgd_map(quad_fn, X0, Y0, which="chaotic", momentum=0.5)
    state = tmap.init(P0)
    assert set(state.opt_state.hyperparams) == {"learning_rate", "momentum"}
    etas = jnp.array([0.3, 0.6])
    states = jax.vmap(lambda _: state)(etas)
    batched, _ = jax.jit(jax.vmap(lambda s, e: tmap.step(s, {"learning_rate": e, "momentum": 0.0})))(states, etas)
    for i, eta in enumerate([0.3, 0.6]):
        one, _ = tmap.step(state, {"learning_rate": eta, "momentum": 0.0})
        np.testing.assert_allclose(flat(jax.tree.map(lambda a: a[i], batched.params)), flat(one.params), atol=1e-12)
    # η = 0.3: nothing above 2/η = 6.7, only λ = −0.5 removed; η = 0.6 also removes λ = 4
    coef = [ROT.T @ np.asarray(flat(jax.tree.map(lambda a: a[i], batched.params)) - flat(P0)) for i in range(2)]
    assert abs(coef[0][4]) > 1e-3 and abs(coef[1][4]) < 1e-12 and abs(coef[0][0]) < 1e-12


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cgd(quad, eta=0.1, which="chaos"), "which must be one of"),
        (lambda: cgd(quad, which="chaotic"), "pass eta > 0"),
        (lambda: cgd(quad, eta=0.0), "eta must be > 0; got 0.0"),
        (lambda: cgd(quad, eta=-1.0, which="chaotic"), "eta must be > 0"),
        (lambda: cgd(quad, eta=0.1, every=0), "every must be >= 1; got 0"),
        (lambda: cgd(quad, eta=0.1, k=0), "k must be >= 1; got 0"),
        (lambda: cgd(quad, eta=0.1, method="lanczos"), "needs k"),
        (lambda: cgd(quad, eta=0.1, method="eigh"), "method must be"),
        (lambda: cgd_optimizer(quad, base=optax.scale_by_adam), "learning_rate"),
        (lambda: cgd_map(quad_fn, X0, Y0, which="positive", k=N + 1).init(P0), "k must be <= 5"),
    ],
)
def test_bad_arguments_raise_config_errors_that_state_the_fix(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_update_needs_params():
    tx = cgd(quad, which="positive")
    with pytest.raises(ConfigError, match="needs the parameters"):
        tx.update(P0, tx.init(P0))
    assert isinstance(tx.init(P0), CGDState)
