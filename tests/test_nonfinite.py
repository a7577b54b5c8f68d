"""Non-finite parameters (a diverged run) give NaN and a flag, never a verdict or a count."""

import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.analyses.curvature.along import curvature_info
from gdchaos.analyses.lyapunov.local import chaotic_count, flat_count, local_exponents
from gdchaos.analyses.curvature.stability import minimum_stability, sgd_stability

LOSS = lambda p: 0.5 * (p[1] ** 2 + 4.0 * p[2] ** 2)  # H = diag(0, 1, 4)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_minimum_stability_of_non_finite_parameters(bad):
    s = minimum_stability(lambda p: 0.5 * jnp.sum(p ** 4), jnp.array([bad, 1.0, 0.5]), eta=0.1, method="full")
    assert s.verdict == "non-finite" and not bool(s.stable) and not bool(s.finite)
    assert np.isnan(s.spectral_radius) and np.isnan(s.critical_eta) and np.isnan(s.sharpness)
    assert int(s.n_normal) == -1 and int(s.n_negative) == -1


def test_minimum_stability_still_decides_finite_minima():
    s = minimum_stability(LOSS, jnp.zeros(3), eta=0.4)
    assert s.verdict == "stable" and bool(s.finite) and float(s.spectral_radius) == pytest.approx(0.6)


def test_local_exponents_of_non_finite_parameters():
    le = local_exponents(lambda p: jnp.sum(p ** 4), jnp.array([jnp.nan, 1.0]), eta=0.5)
    assert not bool(le.finite)
    assert (int(le.n_chaotic), int(le.n_flat), int(le.n_positive), int(le.n_negative)) == (-1, -1, -1, -1)
    assert int(chaotic_count(jnp.array([jnp.nan, 0.5]), 1.0)) == -1
    assert int(flat_count(jnp.array([0.0, jnp.inf]))) == -1


def test_curvature_info_of_non_finite_parameters():
    info = curvature_info(lambda p: jnp.sum(p ** 4), jnp.array([jnp.nan, 1.0, 2.0]), eta=0.5, method="full")
    assert not bool(info.finite) and int(info.n_chaotic) == -1 and int(info.n_positive) == -1
    assert int(info.n_flat) == -1 and int(info.n_negative) == -1


def test_sgd_stability_of_non_finite_parameters():
    x, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.zeros(2)
    loss_fn = lambda p, xb, yb: 0.5 * jnp.mean((xb @ p - yb) ** 2)
    for normal in (True, False):
        s = sgd_stability(loss_fn, jnp.array([jnp.nan, 0.0]), x, y, eta=0.5, batch_size=1, steps=50, transient=5,
                          normal=normal)
        assert s.verdict == "non-finite" and not bool(s.stable) and np.isnan(s.exponent)
    ok = sgd_stability(loss_fn, jnp.zeros(2), x, y, eta=0.5, batch_size=1, steps=2000)
    assert ok.verdict == "stable" and bool(ok.finite)
