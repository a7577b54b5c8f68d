"""ACF with a shuffled-surrogate band and Kantz's exponent against series with known answers.

Known answers: the logistic map at r = 4 has λ = ln 2 per step, the Hénon map
(a = 1.4, b = 0.3) λ ≈ 0.419; white noise and periodic series have no exponential
divergence. All Kantz runs share one series length and one set of static arguments,
so the divergence program compiles once.
"""

import jax
import numpy as np
import pytest
from scipy import stats

from gdchaos.analyses import timeseries as ts
from gdchaos.core.errors import ConfigError

N = 1000
KANTZ = dict(dim=2, delay=1, max_steps=8, theiler=10, fit_range=(1, 5))
HENON_LAMBDA = 0.419


def logistic(n, x0=0.3):
    x = np.empty(n)
    x[0] = x0
    for t in range(n - 1):
        x[t + 1] = 4.0 * x[t] * (1.0 - x[t])
    return x


def henon(n, transient=100):
    x, y = 0.1, 0.1
    out = np.empty(n + transient)
    for t in range(n + transient):
        x, y = 1.0 - 1.4 * x * x + y, 0.3 * x
        out[t] = x
    return out[transient:]


@pytest.fixture(scope="module")
def logistic_result():
    return ts.kantz(logistic(N), 0.005, n_surrogates=19, key=jax.random.key(1), **KANTZ)


# ----------------------------------------------------------------------------- ACF


def test_autocorrelation_matches_direct_sum_and_batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 64))
    acf = np.asarray(ts.autocorrelation(x, 7))
    assert acf.shape == (3, 8)
    xc = x - x.mean(axis=-1, keepdims=True)
    direct = np.stack(
        [np.sum(xc[:, : 64 - k] * xc[:, k:], axis=-1) / np.sum(xc * xc, axis=-1) for k in range(8)], axis=-1
    )
    np.testing.assert_allclose(acf, direct, atol=1e-12)
    np.testing.assert_allclose(acf[:, 0], 1.0)


def test_white_noise_acf_stays_inside_band_ar1_does_not():
    rng = np.random.default_rng(2)
    n, max_lag = 1000, 30
    noise = rng.normal(size=n)
    acf = np.asarray(ts.autocorrelation(noise, max_lag))
    band = ts.surrogate_band(noise, max_lag, 400, jax.random.key(0))
    lower, upper = np.asarray(band.lower), np.asarray(band.upper)
    assert band.surrogate_acf.shape == (400, max_lag + 1)
    outside = (acf[1:] < lower[1:]) | (acf[1:] > upper[1:])
    assert outside.sum() <= 4  # 5% of 30 lags expected outside; 4+ would be p ≈ 0.06
    # The band of a shuffled series is ≈ ±1.96/√n.
    np.testing.assert_allclose(upper[1:].mean(), 1.96 / np.sqrt(n), rtol=0.2)

    e = rng.normal(size=n)
    ar = np.zeros(n)
    for t in range(1, n):
        ar[t] = 0.9 * ar[t - 1] + e[t]
    acf_ar = np.asarray(ts.autocorrelation(ar, max_lag))
    band_ar = ts.surrogate_band(ar, max_lag, 400, jax.random.key(0))
    assert abs(acf_ar[1] - 0.9) < 0.05
    assert acf_ar[1] > float(band_ar.upper[1])
    assert np.all(acf_ar[1:6] > np.asarray(band_ar.upper)[1:6])


def test_acf_argument_errors_state_the_fix():
    with pytest.raises(ConfigError, match="max_lag must be an integer in 0..9"):
        ts.autocorrelation(np.zeros(10), 10)
    with pytest.raises(ConfigError, match="level must be in"):
        ts.surrogate_band(np.arange(10.0), 3, 10, jax.random.key(0), level=1.5)
    with pytest.raises(ConfigError, match="n_surrogates must be >= 2"):
        ts.surrogate_band(np.arange(10.0), 3, 1, jax.random.key(0))


# ------------------------------------------------------------------------- Kantz


def test_point_curves_follow_the_definition():
    """s_n(k) = ln mean_{j∈U_n} |x_{t_n+k} − x_{t_j+k}| with max-norm neighbours and a Theiler window."""
    x = logistic(200, 0.2)
    r, dim, delay, k_max, w = 0.05, 2, 2, 4, 3
    div = ts.kantz_divergence(x, r, dim=dim, delay=delay, max_steps=k_max, theiler=w)
    span = (dim - 1) * delay
    n_points = len(x) - span - k_max
    emb = np.stack([x[i: i + n_points] for i in range(0, span + 1, delay)], axis=1)
    curves = np.asarray(div.point_curves)
    checked = 0
    for n in range(n_points):
        nb = [j for j in range(n_points) if abs(j - n) > w and np.max(np.abs(emb[j] - emb[n])) < r]
        assert int(div.n_neighbors[n]) == len(nb)
        if not nb:
            assert np.all(np.isnan(curves[n]))
            continue
        checked += 1
        for k in range(k_max + 1):
            expected = np.log(np.mean([abs(x[n + span + k] - x[j + span + k]) for j in nb]))
            np.testing.assert_allclose(curves[n, k], expected, rtol=1e-10)
    assert checked > 20
    np.testing.assert_allclose(np.asarray(div.curve), np.nanmean(curves, axis=0))


def test_kantz_logistic_recovers_ln2_and_is_significant(logistic_result):
    res = logistic_result
    assert abs(res.exponent - np.log(2.0)) < 0.05
    assert res.r2 > 0.99
    assert res.p_value < 1e-4
    assert res.surrogate_p_value == pytest.approx(1.0 / 20.0)  # above all 19 shuffled copies
    assert np.all(res.surrogate_exponents < 0.2)
    assert res.significant_fraction > 0.5
    assert np.nanmedian(res.point_exponent) == pytest.approx(np.log(2.0), abs=0.1)


def test_kantz_best_window_option_agrees(logistic_result):
    res = ts.kantz(logistic(N), 0.005, **{**KANTZ, "fit_range": None})
    assert abs(res.exponent - np.log(2.0)) < 0.05
    assert res.start >= 1 and res.start + res.length <= KANTZ["max_steps"]
    np.testing.assert_allclose(res.curve, logistic_result.curve)


def test_kantz_henon_recovers_its_exponent():
    res = ts.kantz(henon(N), 0.02, n_surrogates=19, key=jax.random.key(2), **KANTZ)
    assert abs(res.exponent - HENON_LAMBDA) < 0.05
    assert res.p_value < 1e-4
    assert res.surrogate_p_value == pytest.approx(1.0 / 20.0)


def test_kantz_white_noise_shows_no_exponential_divergence():
    x = np.random.default_rng(3).normal(size=N)
    res = ts.kantz(x, 0.2, n_surrogates=19, key=jax.random.key(3), **KANTZ)
    assert abs(res.exponent) < 0.02
    assert res.p_value > 0.05
    assert res.surrogate_p_value > 0.05
    assert res.significant_fraction < 0.1  # per-point tests at α = 0.05: ≈ 5% false positives


def test_kantz_periodic_series_shows_no_exponential_divergence():
    x = np.sin(2 * np.pi * np.arange(N) / (10.0 * np.sqrt(3.0)))  # incommensurate period ≈ 17.3
    res = ts.kantz(x, 0.02, n_surrogates=19, key=jax.random.key(4), **KANTZ)
    assert abs(res.exponent) < 0.02
    assert res.p_value > 0.05
    assert res.surrogate_p_value > 0.05
    # An exactly repeating series: neighbours' futures coincide, S(k) is flat at the floor.
    exact = ts.kantz(np.tile([0.1, 0.5, 0.9], N // 3 + 1)[:N], 0.02, **KANTZ)
    assert exact.exponent == 0.0 and exact.p_value == 0.5


def test_slope_p_value_matches_scipy_linregress():
    rng = np.random.default_rng(5)
    k = np.arange(6.0)
    for trend in (0.0, 0.3, -0.2):
        y = trend * k + rng.normal(scale=0.3, size=k.size)
        lr = stats.linregress(k, y)
        two = ts.slope_p_value(lr.slope, lr.rvalue**2, k.size, "two-sided")
        np.testing.assert_allclose(two, lr.pvalue, rtol=1e-8)
        one = ts.slope_p_value(lr.slope, lr.rvalue**2, k.size, "greater")
        np.testing.assert_allclose(one, stats.t.sf(lr.slope / lr.stderr, k.size - 2), rtol=1e-8)
    assert np.isnan(ts.slope_p_value(np.nan, 0.5, 6))


def test_delay_embed_rows():
    emb = np.asarray(ts.delay_embed(np.arange(10.0), dim=3, delay=2))
    assert emb.shape == (6, 3)
    np.testing.assert_array_equal(emb[1], [1.0, 3.0, 5.0])


def test_kantz_errors_state_the_fix():
    x = logistic(300)
    with pytest.raises(ConfigError, match="radius must be a finite number > 0"):
        ts.kantz(x, -0.1)
    with pytest.raises(ConfigError, match="no reference point has 1 neighbour"):
        ts.kantz_divergence(logistic(N), 1e-12, **{k: v for k, v in KANTZ.items() if k != "fit_range"})
    with pytest.raises(ConfigError, match="the embedding spans"):
        ts.delay_embed(x[:5], dim=4, delay=2)
    with pytest.raises(ConfigError, match="too short"):
        ts.kantz(x[:12], 0.1, dim=2, max_steps=10)
    with pytest.raises(ConfigError, match="fit_range must be"):
        ts.kantz(x, 0.05, max_steps=5, fit_range=(1, 8))
    with pytest.raises(ConfigError, match="needs a PRNG key"):
        ts.kantz(x, 0.05, n_surrogates=5)
    with pytest.raises(ConfigError, match="alternative must be one of"):
        ts.kantz(x, 0.05, alternative="bigger")
