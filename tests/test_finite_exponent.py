"""Finite network Lyapunov exponents: window fits, filters, summaries, training time."""

import numpy as np
import pytest

from gdchaos.errors import ConfigError
from gdchaos.lyapunov import best_window_fit, finite_exponents, summarize
from gdchaos.lyapunov.finite import check_window_grid
from gdchaos.training_time import first_passage, summarize_tau


def exp_then_saturate(rate, t_sat, steps=300, d0=1e-8, noise=0.0, seed=0):
    t = np.arange(steps)
    log_d = np.log(d0) + rate * np.minimum(t, t_sat)
    return np.exp(log_d + noise * np.random.default_rng(seed).normal(size=steps))


@pytest.mark.parametrize("rate", [0.1, 0.33, 0.7])
def test_window_fit_recovers_slope_of_exponential_phase(rate):
    d = exp_then_saturate(rate, t_sat=60, noise=0.01)
    fit = best_window_fit(np.log(d))
    assert fit.slope == pytest.approx(rate, rel=0.02)
    assert fit.r2 > 0.99
    assert fit.start + fit.length <= 65  # the window stays in the exponential phase


def test_window_fit_is_exact_on_a_line_and_reports_intercept():
    t = np.arange(250.0)
    fit = best_window_fit(np.stack([2.0 - 0.2 * t, 0.05 * t]))
    np.testing.assert_allclose(fit.slope, [-0.2, 0.05], atol=1e-12)
    np.testing.assert_allclose(fit.intercept, [2.0 - 0.2 * fit.start[0], 0.05 * fit.start[1]], atol=1e-9)


def test_custom_window_grid_is_honoured():
    t = np.arange(100.0)
    y = np.where(t < 40, 0.5 * t, 20.0)
    fit = best_window_fit(y, starts=[0, 10], lengths=[20, 25])
    assert fit.slope == pytest.approx(0.5)
    assert int(fit.start) in (0, 10) and int(fit.length) in (20, 25)


def test_filters_drop_flat_noise_and_slow_growth():
    rng = np.random.default_rng(1)
    members = 5
    noise = 1e-8 * np.exp(0.01 * rng.normal(size=(members, 300)))
    slow = exp_then_saturate(0.02, 250)[None].repeat(members, 0)
    fast = exp_then_saturate(0.3, 60)[None].repeat(members, 0)
    fe = finite_exponents(np.stack([noise, slow, fast]))
    assert fe.kept.tolist() == [False, False, True]
    assert fe.exponent[1] == pytest.approx(0.02, rel=0.05)  # fitted, but below min_exponent
    loose = finite_exponents(np.stack([noise, slow, fast]), min_exponent=0.01)
    assert loose.kept.tolist() == [False, True, True]
    strict = finite_exponents(np.stack([fast]), min_r2=1.0 - 1e-15)
    assert not strict.kept[0] or strict.r2[0] > 1.0 - 1e-15


def test_diverged_members_are_excluded_and_all_nan_is_never_kept():
    good = exp_then_saturate(0.3, 60)
    d = np.stack([good, good, good])
    d_nan = d.copy()
    d_nan[1, 100:] = np.nan  # one member diverged at step 100
    a, b = finite_exponents(d[None]), finite_exponents(d_nan[None])
    assert b.exponent[0] == pytest.approx(a.exponent[0])
    all_nan = finite_exponents(np.full((1, 3, 300), np.nan))
    assert np.isnan(all_nan.exponent[0]) and not all_nan.kept[0]
    zero = finite_exponents(np.zeros((1, 3, 300)))
    assert np.isnan(zero.exponent[0]) and not zero.kept[0]


def test_summarize_means_kept_only_and_rho_is_kept_fraction():
    fast = [exp_then_saturate(r, 60)[None].repeat(3, 0) for r in (0.2, 0.4)]
    flat = np.full((3, 300), 1e-8)
    fe = finite_exponents(np.stack([fast[0], fast[1], flat, flat]))
    s = summarize(fe)
    assert s["lambda_nmle"] == pytest.approx(0.3, rel=1e-3)
    assert s["lambda_std"] == pytest.approx(0.1, rel=1e-2)
    assert s["rho"] == pytest.approx(0.5)
    assert s["n_kept"] == 2
    none = summarize(finite_exponents(np.stack([flat, flat])))
    assert np.isnan(none["lambda_nmle"]) and none["rho"] == 0
    assert abs(none["lambda_all"]) < 1e-9  # flat distances: mean exponent ≈ 0


def test_window_grid_longer_than_series_is_a_config_error():
    with pytest.raises(ConfigError, match="raise steps to >= 201"):
        check_window_grid(150)
    check_window_grid(201)
    with pytest.raises(ConfigError):
        best_window_fit(np.zeros(50))


def test_first_passage_and_tau_summary():
    acc = np.array([[0.1, 0.5, 0.95, 0.8], [0.1, 0.2, 0.3, 0.4], [0.92, 0.9, 0.9, 0.9]])
    tau = first_passage(acc, 0.9)
    assert tau.tolist() == [2, -1, 0]
    s = summarize_tau(tau)
    assert s["n_reached"] == 2
    assert s["tau_mean"] == pytest.approx(1.0)
    assert s["tau_std"] == pytest.approx(1.0)
    assert np.isnan(summarize_tau(np.array([-1, -1]))["tau_mean"])
