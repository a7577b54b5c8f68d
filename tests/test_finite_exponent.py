"""Finite network Lyapunov exponents: best-window fits, the R² and Λ filters, NaN members, summaries."""

import numpy as np
import pytest

from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov import FiniteExponents, best_window_fit, finite_exponents, summarize_exponents
from gdchaos.analyses.lyapunov.finite import check_window_grid

STEPS = 300


def log_curve(rate, t_sat, a=np.log(1e-8), steps=STEPS, noise=0.0, seed=0):
    """ln d(t) = a + rate·min(t, t_sat) (+ Gaussian noise): exponential phase, then saturation."""
    t = np.arange(steps)
    return a + rate * np.minimum(t, t_sat) + noise * np.random.default_rng(seed).normal(size=steps)


def members(rate, t_sat, n=5, **kw):
    """``n`` identical member distance series d(t) = exp(log_curve)."""
    return np.exp(log_curve(rate, t_sat, **kw))[None].repeat(n, 0)


# ---------------------------------------------------------------- best_window_fit


@pytest.mark.parametrize("rate, t_sat, a", [(0.1, 120, -18.0), (0.33, 60, -5.0), (0.7, 45, 0.3)])
def test_window_fit_recovers_slope_inside_the_exponential_phase(rate, t_sat, a):
    y = log_curve(rate, t_sat, a=a, noise=0.01, seed=3)
    fit = best_window_fit(y)
    assert fit.slope == pytest.approx(rate, rel=0.01)
    assert fit.r2 > 0.99
    # the chosen window lies in the exponential phase (a 5-step overhang at most: the kink is in the noise)
    assert 0 <= fit.start and fit.start + fit.length <= t_sat + 5
    assert fit.intercept == pytest.approx(a + rate * fit.start, abs=0.05)


def test_window_fit_is_exact_on_lines_and_vectorized_over_leading_axes():
    t = np.arange(250.0)
    slopes = np.array([[-0.2, 0.05, 0.0], [1.5, 0.3, -1e-3]])
    y = 2.0 + slopes[..., None] * t
    fit = best_window_fit(y)
    assert fit.slope.shape == fit.r2.shape == fit.start.shape == (2, 3)
    np.testing.assert_allclose(fit.slope, slopes, atol=1e-12)
    np.testing.assert_allclose(fit.intercept, 2.0 + slopes * fit.start, atol=1e-9)
    r2 = fit.r2.copy()
    assert r2[0, 2] == 0.0  # a constant series has R² = 0 (no variance to explain)
    r2[0, 2] = 1.0
    np.testing.assert_allclose(r2, 1.0, atol=1e-12)


def test_custom_window_grid_is_honoured():
    t = np.arange(100.0)
    y = np.where(t < 40, 0.5 * t, 20.0)
    fit = best_window_fit(y, starts=[0, 10], lengths=[20, 25])
    assert fit.slope == pytest.approx(0.5, abs=1e-12)
    assert (int(fit.start), int(fit.length)) in {(0, 20), (0, 25), (10, 20), (10, 25)}
    assert int(fit.start) + int(fit.length) <= 39
    # a grid whose every window crosses the kink cannot find slope 0.5 exactly
    crossing = best_window_fit(y, starts=[30], lengths=[40])
    assert crossing.slope < 0.4 and crossing.r2 < 0.99


def test_windows_with_non_finite_values_are_skipped():
    y = log_curve(0.3, 60)
    y[:30] = np.nan  # only windows starting at >= 30 are valid
    fit = best_window_fit(y)
    assert fit.start >= 30
    assert fit.slope == pytest.approx(0.3, abs=1e-9)  # [30, 60] is still exponential
    none = best_window_fit(np.full(STEPS, np.nan))
    assert np.isnan(none.slope) and np.isnan(none.r2) and np.isnan(none.intercept)


# ---------------------------------------------------------------- filters


def test_flat_noise_and_slow_growth_are_not_kept():
    rng = np.random.default_rng(1)
    noise = 1e-8 * np.exp(0.05 * rng.normal(size=(5, STEPS)))  # no growth, just scatter
    slow = members(0.02, 280)  # clean exponential, but Λ = 0.02 < 0.05
    fast = members(0.3, 60)
    fe = finite_exponents(np.stack([noise, slow, fast]))
    assert fe.kept.tolist() == [False, False, True]
    assert fe.r2[0] < 0.9  # noise: rejected by the R² filter
    assert fe.exponent[1] == pytest.approx(0.02, rel=1e-6) and fe.r2[1] > 0.999  # rejected by Λ > 0.05 only
    assert fe.exponent[2] == pytest.approx(0.3, rel=1e-6)
    loose = finite_exponents(np.stack([noise, slow, fast]), min_exponent=0.01)
    assert loose.kept.tolist() == [False, True, True]


def test_converging_distances_are_not_kept():
    fe = finite_exponents(members(-0.2, 250)[None])
    assert fe.exponent[0] == pytest.approx(-0.2, rel=1e-6)
    assert fe.r2[0] > 0.999 and not fe.kept[0]


def test_custom_min_r2_and_min_exponent_are_honoured():
    d = np.exp(log_curve(0.1, 280, noise=0.6, seed=4))[None, None]  # a noisy exponential
    fe = finite_exponents(d)
    r2 = float(fe.r2[0])
    assert 0.9 < r2 < 0.999, r2  # noisy enough for the R² threshold to matter
    assert fe.kept[0]
    assert not finite_exponents(d, min_r2=r2 + (1 - r2) / 2).kept[0]
    assert not finite_exponents(d, min_r2=r2).kept[0]  # the filter is strict: R² > min_r2
    assert finite_exponents(d, min_r2=r2 - 1e-3).kept[0]
    lam = float(fe.exponent[0])
    assert not finite_exponents(d, min_exponent=lam + 1e-3).kept[0]
    assert finite_exponents(d, min_exponent=lam - 1e-3).kept[0]


# ---------------------------------------------------------------- NaN (diverged) members


def test_nan_members_are_left_out_of_the_mean():
    """A diverged member (NaN) changes nothing: as if it sat exactly on the others' mean."""
    rng = np.random.default_rng(2)
    rates = rng.uniform(0.2, 0.4, size=(3, 4, 1))
    t = np.arange(STEPS)
    d = 1e-8 * rng.uniform(0.5, 2.0, size=(3, 4, 1)) * np.exp(rates * np.minimum(t, 50))
    d_nan = d.copy()
    d_nan[0, 1, 20:] = np.nan  # diverged at step 20, inside the exponential phase
    d_nan[1, 3, :] = np.nan  # diverged at once
    d_nan[2, [0, 2], 5:] = np.nan  # two members diverged
    filled = d_nan.copy()
    for i in range(3):
        others = np.nanmean(d_nan[i], axis=0)
        filled[i] = np.where(np.isnan(d_nan[i]), others, d_nan[i])
    a, b = finite_exponents(d_nan), finite_exponents(filled)
    np.testing.assert_allclose(a.exponent, b.exponent, rtol=1e-12)
    np.testing.assert_allclose(a.r2, b.r2, rtol=1e-12)
    assert np.all(np.isfinite(a.exponent))


def test_identical_members_with_one_diverged_give_the_exact_exponent():
    d = members(0.3, 60, n=3)
    d[1, 20:] = np.nan  # would put a jump of ln(2/3) at step 20 if NaN counted as 0
    fe = finite_exponents(d[None])
    assert fe.exponent[0] == pytest.approx(0.3, abs=1e-10)
    assert fe.r2[0] == pytest.approx(1.0, abs=1e-12) and fe.kept[0]


def test_all_nan_or_zero_series_is_nan_and_never_kept():
    fe = finite_exponents(np.stack([np.full((3, STEPS), np.nan), np.zeros((3, STEPS)), members(0.3, 60, n=3)]))
    assert np.isnan(fe.exponent[0]) and np.isnan(fe.r2[0]) and not fe.kept[0]
    assert np.isnan(fe.exponent[1]) and not fe.kept[1]
    assert fe.kept[2]
    # the reference diverged at step 20 (every distance NaN afterwards): no 30-step window is left
    early = members(0.3, 60, n=3)
    early[:, 20:] = np.nan
    late = members(0.3, 60, n=3)
    late[:, 80:] = np.nan  # enough finite steps for the exponential phase
    fe = finite_exponents(np.stack([early, late]))
    assert np.isnan(fe.exponent[0]) and not fe.kept[0]
    assert fe.exponent[1] == pytest.approx(0.3, abs=1e-10) and fe.kept[1]


# ---------------------------------------------------------------- summaries


def test_summarize_means_kept_exponents_only_and_rho_is_the_kept_fraction():
    exponent = np.array([[0.2, 0.4, 0.01, np.nan], [0.1, 0.1, 0.1, 0.1], [0.5, -0.3, 0.7, 0.6]])
    kept = np.array([[True, True, False, False], [False] * 4, [True, False, True, True]])
    fe = FiniteExponents(exponent, np.ones_like(exponent), np.zeros(exponent.shape, int),
                         np.full(exponent.shape, 30), kept)
    s = summarize_exponents(fe)
    np.testing.assert_allclose(s["lambda_nmle"], [0.3, np.nan, 0.6], equal_nan=True)
    np.testing.assert_allclose(s["lambda_std"], [0.1, np.nan, np.std([0.5, 0.7, 0.6])], equal_nan=True)
    np.testing.assert_allclose(s["rho"], [0.5, 0.0, 0.75])
    assert s["n_kept"].tolist() == [2, 0, 3]
    # lambda_all: mean of every finite Λ, filters ignored
    np.testing.assert_allclose(s["lambda_all"], [np.mean([0.2, 0.4, 0.01]), 0.1, 0.375])
    by_ic = summarize_exponents(fe, axis=0)  # any axis
    np.testing.assert_allclose(by_ic["rho"], [2 / 3, 1 / 3, 1 / 3, 1 / 3])


def test_summarize_end_to_end_from_distances():
    fast = [members(r, 60, n=3) for r in (0.2, 0.4)]
    flat = np.full((3, STEPS), 1e-8)
    fe = finite_exponents(np.stack([fast[0], fast[1], flat, np.full((3, STEPS), np.nan)]))
    s = summarize_exponents(fe)
    assert s["lambda_nmle"] == pytest.approx(0.3, rel=1e-9)
    assert s["lambda_std"] == pytest.approx(0.1, rel=1e-9)
    assert s["rho"] == pytest.approx(0.5) and s["n_kept"] == 2
    assert np.isfinite(s["lambda_all"])  # the all-NaN IC does not poison the mean
    none = summarize_exponents(finite_exponents(np.stack([flat, flat])))
    assert np.isnan(none["lambda_nmle"]) and np.isnan(none["lambda_std"]) and none["rho"] == 0
    assert abs(none["lambda_all"]) < 1e-12  # flat distances: Λ = 0


# ---------------------------------------------------------------- window grid validation


def test_steps_shorter_than_the_window_grid_is_a_config_error():
    with pytest.raises(ConfigError, match=r"steps=200 .*raise steps to >= 201"):
        check_window_grid(200)
    check_window_grid(201)  # default grid: start 100 + length 100 + 1 point
    with pytest.raises(ConfigError, match="raise steps to >= 51"):
        check_window_grid(50, starts=[0, 10], lengths=[20, 40])
    check_window_grid(51, starts=[0, 10], lengths=[20, 40])
    with pytest.raises(ConfigError, match="empty"):
        check_window_grid(500, starts=[], lengths=[30])
    with pytest.raises(ConfigError, match="starts must be >= 0"):
        check_window_grid(500, starts=[-5, 0], lengths=[30])
    with pytest.raises(ConfigError, match="lengths must be >= 2"):
        check_window_grid(500, starts=[0], lengths=[1, 30])
    with pytest.raises(ConfigError, match="raise steps"):
        best_window_fit(np.zeros(150))
    with pytest.raises(ConfigError, match="raise steps"):
        finite_exponents(np.ones((2, 3, 150)))
    with pytest.raises(ConfigError, match="member, step"):
        finite_exponents(np.ones(300))


def test_filters_that_remove_everything_say_which_and_what_they_saw():
    """Λ = 0.03 everywhere (below the Iris-tuned 0.05): a warning names the Λ filter and the largest Λ."""
    import warnings

    from gdchaos.analyses.lyapunov.finite import FilterWarning, finite_exponents, summarize_exponents

    t = np.arange(STEPS)
    d = 1e-8 * np.exp(np.array([0.02, 0.03])[:, None, None] * t) * np.ones((1, 3, 1))  # (ic, member, step)
    fe = finite_exponents(d)
    with pytest.warns(FilterWarning, match=r"R² > 0.9 removed 0 of 2, Λ > 0.05 removed 2 of 2 \(largest Λ seen 0.03,"):
        s = summarize_exponents(fe)
    assert s["rho"] == 0 and np.isnan(s["lambda_nmle"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summarize_exponents(finite_exponents(d, min_exponent=0.01))  # something kept: silent


def test_no_valid_exponent_is_explained():
    from gdchaos.analyses.lyapunov.finite import FilterWarning, finite_exponents, summarize_exponents

    with pytest.warns(FilterWarning, match="no initial condition has a finite exponent"):
        summarize_exponents(finite_exponents(np.zeros((2, 3, STEPS))))
