"""The papers' own definitions in the finite-ε pipeline (danovski2024, jimenez-gonzalez2026).

- Λ from Eq. 3: a ratio of member-mean distances from t = 0 to the saturation time τ,
  τ the window [0, τ] with the best exponential fit (``estimator="ratio"``), beside the
  best-R² window slope (``"window"``).
- The λ_nMLE ≤ 0 phase (no Λ kept) as a ``phase`` column instead of a gap.
- ⟨τ⟩ over all initial conditions, never-reached censored at T; results format 2 and
  reading format-1 files.

Expected values are derived by hand in the comments.
"""

import warnings

import jax
import numpy as np
import pytest
import xarray as xr

from gdchaos.experiments import registry
from gdchaos.figures import sweep as plots
from gdchaos.figures.base import for_files

from gdchaos.experiments import results
from gdchaos.engine.ensemble import EnsembleResult
from gdchaos.core.errors import ConfigError
from gdchaos.experiments.finite import finite_sweep
from gdchaos.analyses.lyapunov.finite import (
    FilterWarning,
    FiniteExponents,
    finite_exponents,
    ratio_fit,
    saturation_times,
    summarize_exponents,
)

from conftest import SMALL_WINDOWS

STEPS = 300
LOG_EPS = np.log(1e-8)


def knee(rate, t_sat, t0=0, steps=STEPS):
    """ln d̄(t) = ln 1e-8 + rate·(min(t, t_sat) − t0)⁺: flat until t0, exponential until t_sat, then flat."""
    t = np.arange(steps)
    return LOG_EPS + rate * np.clip(np.minimum(t, t_sat) - t0, 0, None)


# ---------------------------------------------------------------- the ratio estimator (Eq. 3)


def test_candidate_saturation_times_are_the_window_ends():
    assert saturation_times().tolist() == list(range(30, 201, 5))  # s ∈ {0..100 by 5} + L ∈ {30..100 by 5}
    assert saturation_times([20], [80]).tolist() == [100]


@pytest.mark.parametrize("rate, t_sat, tau", [(0.33, 70, 70), (0.33, 72, 70), (0.7, 45, 45), (0.1, 200, 200)])
def test_ratio_on_an_exponential_until_saturation_is_exact_and_tau_is_the_knee(rate, t_sat, tau):
    """d̄(t) = ε·e^{λt} up to t_sat: every window [0, τ ≤ t_sat] is an exact line (R² = 1), so the longest of them
    (the last candidate τ ≤ t_sat on the 5-step grid) is the saturation time, and Λ = ln(e^{λτ})/τ = λ exactly."""
    d = np.exp(knee(rate, t_sat))[None] * np.array([[1.0], [2.0], [0.5]])  # three members, same rate
    fe = finite_exponents(d[None], estimator="ratio")
    assert fe.exponent[0] == pytest.approx(rate, abs=1e-12)
    assert int(fe.length[0]) == tau and int(fe.start[0]) == 0
    assert fe.r2[0] == pytest.approx(1.0, abs=1e-9) and fe.kept[0] and fe.estimator == "ratio"


def test_ratio_and_window_differ_after_a_transient():
    """ln d̄ flat for 20 updates, then rate λ until 100. Grid starts {20}, lengths {80}:
    window: the line on [20, 100] is exact, slope λ;
    ratio: the only candidate τ = 20 + 80 = 100, Λ = (ln d̄(100) − ln d̄(0))/100 = 80λ/100 = 0.8λ."""
    lam = 0.3
    y = knee(lam, 100, t0=20)
    d = np.exp(y)[None, None].repeat(2, 1)
    window = finite_exponents(d, starts=[20], lengths=[80])
    ratio = finite_exponents(d, starts=[20], lengths=[80], estimator="ratio")
    assert window.exponent[0] == pytest.approx(lam, abs=1e-12)
    assert ratio.exponent[0] == pytest.approx(0.8 * lam, abs=1e-12)
    assert (int(ratio.start[0]), int(ratio.length[0])) == (0, 100)
    t = np.arange(101)
    assert ratio.r2[0] == pytest.approx(np.corrcoef(t, y[:101])[0, 1] ** 2, rel=1e-9)  # R² of [0, 100], brute force
    assert window.r2[0] == pytest.approx(1.0, abs=1e-9)


def test_ratio_takes_the_log_of_the_member_mean():
    """Members at rates 0.2 and 0.4 from the same d(0) = 1e-8; only τ = 100 (starts {20}, lengths {80}):
    Λ = (1/100) ln[(e^{20} + e^{40})/2] = (40 − ln 2 + ln(1 + e^{−20}))/100 (the mean of the logs would give 0.3)."""
    t = np.arange(STEPS)
    d = 1e-8 * np.exp(np.array([[0.2], [0.4]]) * t)[None]
    fe = finite_exponents(d, starts=[20], lengths=[80], estimator="ratio")
    assert fe.exponent[0] == pytest.approx((40 - np.log(2) + np.log1p(np.exp(-20))) / 100, rel=1e-12)


def test_ratio_skips_non_finite_windows_and_needs_d0():
    y = knee(0.3, 150)
    y[120] = np.nan  # windows [0, τ ≥ 120] are skipped
    fit = ratio_fit(y)
    assert int(fit.length) == 115 and fit.slope == pytest.approx(0.3, abs=1e-12)
    y0 = knee(0.3, 150)
    y0[0] = -np.inf  # d̄(0) = 0 (ε rounded away): no ratio
    assert np.isnan(ratio_fit(y0).slope) and np.isnan(ratio_fit(y0).r2)


def test_ratio_filters_and_vectorizes_like_the_window_fit():
    decay = np.exp(knee(-0.2, 250))
    slow = np.exp(knee(0.02, 250))
    fast = np.exp(knee(0.4, 60))
    d = np.stack([decay, slow, fast])[:, None].repeat(2, 1)  # (ic, member, step)
    fe = finite_exponents(d, estimator="ratio")
    np.testing.assert_allclose(fe.exponent, [-0.2, 0.02, 0.4], atol=1e-12)
    assert fe.kept.tolist() == [False, False, True]  # Λ > 0.05 removes the first two
    assert fe.length.tolist() == [200, 200, 60]


def test_unknown_estimator_is_a_config_error(iris_task):
    d = np.ones((1, 2, STEPS))
    with pytest.raises(ConfigError, match=r"unknown finite-exponent estimator 'slope'.*\['ratio', 'window'\]"):
        finite_exponents(d, estimator="slope")
    with pytest.raises(ConfigError, match="lyapunov.estimator"):
        finite_sweep(iris_task, eta=[1.0], n_ic=1, steps=201, estimator="Ratio", progress=False)


def test_sweep_validation_refuses_an_unknown_estimator():
    from hydra import compose, initialize_config_dir

    from gdchaos.cli.app import config_dir
    from gdchaos.sweep import validate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        validate(compose("sweep", overrides=["lyapunov.estimator=ratio"]))
        with pytest.raises(ConfigError, match="unknown finite-exponent estimator 'fit'"):
            validate(compose("sweep", overrides=["lyapunov.estimator=fit"]))


# ---------------------------------------------------------------- the λ_nMLE ≤ 0 phase


def test_phase_column_on_hand_made_exponents():
    """Row 0: two Λ kept → chaotic; row 1: valid Λ, none kept → λ≤0 (λ_nMLE stays NaN); row 2: no valid series."""
    exponent = np.array([[0.3, 0.01, 0.5], [0.02, -0.1, 0.4], [np.nan, np.nan, np.nan]])
    kept = np.array([[True, False, True], [False, False, False], [False, False, False]])
    fe = FiniteExponents(exponent, np.array([[0.99, 0.5, 0.95], [0.99, 0.99, 0.3], [np.nan] * 3]),
                         np.zeros((3, 3), int), np.full((3, 3), 30), kept)
    s = summarize_exponents(fe)
    assert s["phase"].tolist() == ["chaotic", "λ≤0", "undefined"]
    np.testing.assert_allclose(s["lambda_nmle"], [0.4, np.nan, np.nan], equal_nan=True)
    np.testing.assert_allclose(s["rho"], [2 / 3, 0, 0])
    np.testing.assert_allclose(s["lambda_all"], [0.27, 0.32 / 3, np.nan], equal_nan=True)  # all finite Λ, no filter


# ---------------------------------------------------------------- a synthetic run through the Dataset and figures


def synthetic_run(rates, accuracy_steps, steps=250, t_sat=70, n_members=2):
    """An EnsembleResult whose member distances are 1e-8·e^{rate·min(t, t_sat)}; rates (eta, eps, ic).

    Test accuracy of the reference jumps from 0 to 1 at ``accuracy_steps`` (eta, eps, ic); −1: never.
    """
    rates = np.asarray(rates, float)
    n_eta, n_eps, n_ic = rates.shape
    t = np.arange(steps)
    d = 1e-8 * np.exp(rates[..., None, None] * np.minimum(t, t_sat))
    d = np.broadcast_to(d, (n_eta, n_eps, n_ic, n_members + 1, steps)).copy()
    d[:, :, :, 0] = 0.0
    at = np.asarray(accuracy_steps)[..., None, None]
    acc = np.where((at >= 0) & (t >= at), 1.0, 0.0) * np.ones((1, 1, 1, n_members + 1, 1))
    shape = (n_eta, n_eps, n_ic, n_members + 1)
    return EnsembleResult(eta=np.arange(1.0, n_eta + 1), eps=np.logspace(-4, -4 - 2 * (n_eps - 1), n_eps),
                          records={"distance": d, "loss": np.ones_like(d), "accuracy": acc},
                          diverged=np.zeros(shape, bool), diverged_at=np.full(shape, -1),
                          final_state=None, compile_seconds=0.0, run_seconds=0.0)


@pytest.fixture(scope="module")
def synthetic_ds():
    # η = 1: flat (λ≤0 phase); η = 2: λ = 0.3, saturating at t = 70; two ε, three ICs
    rates = np.array([[[0.0, 0.0, 0.0]] * 2, [[0.3, 0.3, 0.3]] * 2])
    tau = np.array([[[10, 20, -1]] * 2, [[-1, -1, -1]] * 2])
    result = synthetic_run(rates, tau)
    members = result.records["distance"][:, :, :, 1:]
    both = {name: finite_exponents(members, estimator=name) for name in ("window", "ratio")}
    return results.to_dataset(result, both["ratio"], tau, {"task": "synthetic"}, both)


def test_dataset_carries_both_estimators_phase_and_both_tau(synthetic_ds):
    ds = synthetic_ds
    assert ds.attrs["lyapunov_estimator"] == "ratio"
    assert ds.phase.values.tolist() == [["λ≤0", "λ≤0"], ["chaotic", "chaotic"]]
    assert np.isnan(ds.lambda_nmle.values[0]).all()  # undefined in the λ≤0 phase
    np.testing.assert_allclose(ds.lambda_all.values[0], 0.0, atol=1e-12)
    for name in ("lambda_nmle", "lambda_nmle_window", "lambda_nmle_ratio"):
        np.testing.assert_allclose(ds[name].values[1], 0.3, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ds.rho_window.values, [[0, 0], [1, 1]])
    np.testing.assert_allclose(ds.rho_ratio.values, [[0, 0], [1, 1]])
    np.testing.assert_array_equal(ds.median_saturation_time.values[1], [70, 70])  # the knee, every IC
    assert np.isnan(ds.median_saturation_time.values[0]).all() and np.isnan(ds.median_window_start.values[0]).all()
    np.testing.assert_array_equal(ds.window_length.values[1], 70)
    # ⟨τ⟩ at η = 1: (10 + 20 + 250)/3 over all ICs (T = 250 updates run), (10 + 20)/2 over those that reached it
    np.testing.assert_allclose(ds.tau_mean.values[0], 280 / 3)
    np.testing.assert_allclose(ds.tau_mean_reached.values[0], 15.0)
    np.testing.assert_allclose(ds.tau_mean.values[1], 250.0)
    assert np.isnan(ds.tau_mean_reached.values[1]).all()
    assert ds.n_censored.values.tolist() == [[1, 1], [3, 3]]
    assert "lower bound" in ds.tau_mean.attrs["description"]


def test_medians_of_where_each_fit_sits_by_hand():
    """Hand-made exponents: kept window starts (0, 10, 40) → median 10; kept τ (30, 50) → median 40."""
    result = synthetic_run(np.full((1, 1, 4), 0.3), np.full((1, 1, 4), -1))
    kept = np.array([[[True, True, True, False]]])
    window = FiniteExponents(np.full((1, 1, 4), 0.3), np.ones((1, 1, 4)), np.array([[[0, 10, 40, 5]]]),
                             np.full((1, 1, 4), 30), kept)
    ratio = FiniteExponents(np.full((1, 1, 4), 0.3), np.ones((1, 1, 4)), np.zeros((1, 1, 4), int),
                            np.array([[[30, 50, 200, 200]]]), np.array([[[True, True, False, False]]]),
                            estimator="ratio")
    ds = results.to_dataset(result, window, np.full((1, 1, 4), -1), None, {"window": window, "ratio": ratio})
    assert ds.median_window_start.item() == 10.0 and ds.median_saturation_time.item() == 40.0
    assert ds.rho_window.item() == 0.75 and ds.rho_ratio.item() == 0.5
    assert ds.attrs["lyapunov_estimator"] == "window"


def test_summary_figure_shows_the_nonchaotic_phase_and_which_tau(synthetic_ds):
    with for_files():
        fig = plots.summary_figure(synthetic_ds)
    ax_lambda, _, ax_tau = fig.axes[:3]
    labels = ax_lambda.get_legend_handles_labels()[1]
    phase = [lab for lab in labels if "λ≤0 phase" in lab]
    assert len(phase) == 2  # one per ε
    line = next(h for h, lab in zip(*ax_lambda.get_legend_handles_labels()) if lab == phase[0])
    np.testing.assert_allclose(line.get_xdata(), [1.0])  # drawn only where ρ = 0
    assert line.get_markerfacecolor() == "none"
    tau_labels = " ".join(ax_tau.get_legend_handles_labels()[1])
    assert "never-reached = T = 250 (lower bound)" in tau_labels and "ICs that reached it" in tau_labels
    assert "ratio" in ax_lambda.get_ylabel()


def test_lambda_eps_figure_is_written_for_two_or_more_eps(synthetic_ds, tmp_path, monkeypatch):
    paths = registry.save_figures(synthetic_ds, tmp_path / "figures")
    assert "lambda_eps.png" in [p.name for p in paths]
    content = (tmp_path / "figures" / "lambda_eps.png").read_bytes()
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 10_000
    drawn = []
    monkeypatch.setattr("gdchaos.experiments.registry.write_figures", lambda figures, directory: drawn.extend(figures) or [])
    registry.save_figures(synthetic_ds.isel(eps=[0]), tmp_path / "one")
    assert "summary.png" in drawn and "lambda_eps.png" not in drawn  # one ε: no λ_nMLE(ε) figure


# ---------------------------------------------------------------- results format 2, reading format 1


def test_loading_a_format_1_file_renames_tau_and_recomputes_the_censored_mean(tmp_path):
    tau = np.array([[[4, -1, 6]], [[-1, -1, -1]]])  # (eta, eps, ic); 12 updates recorded
    exponent = np.array([[[0.3, 0.4, np.nan]], [[0.01, 0.02, 0.0]]])
    v1 = xr.Dataset(
        {
            "tau": (("eta", "eps", "ic"), tau),
            "exponent": (("eta", "eps", "ic"), exponent),
            "tau_mean": (("eta", "eps"), [[5.0], [np.nan]]),  # version 1: over the ICs that reached the target
            "tau_std": (("eta", "eps"), [[1.0], [np.nan]]),
            "n_reached": (("eta", "eps"), [[2], [0]]),
            "n_kept": (("eta", "eps"), [[2], [0]]),
            "loss": (("eta", "step"), np.ones((2, 12))),
        },
        coords={"eta": [1.0, 3.0], "eps": [1e-8], "ic": np.arange(3), "step": np.arange(12)},
        attrs={"format": results.FORMAT, "format_version": 1},
    )
    v1.to_netcdf(tmp_path / results.RESULTS_FILE, engine="h5netcdf")
    ds = results.load(tmp_path)
    assert results.FORMAT_VERSION == 3
    np.testing.assert_allclose(ds.tau_mean_reached.values, [[5.0], [np.nan]])
    np.testing.assert_allclose(ds.tau_std_reached.values, [[1.0], [np.nan]])
    # censored at T = 12: (4 + 12 + 6)/3 and 12; std of (4, 12, 6): deviations −10/3, 14/3, −4/3 → var 312/27
    np.testing.assert_allclose(ds.tau_mean.values, [[22 / 3], [12.0]])
    np.testing.assert_allclose(ds.tau_std.values, [[np.sqrt(312 / 27)], [0.0]])
    assert ds.n_censored.values.tolist() == [[1], [3]]
    assert ds.phase.values.tolist() == [["chaotic"], ["λ≤0"]]
    assert ds.attrs["lyapunov_estimator"] == "window" and ds.attrs["converted_from_format_version"] == 1
    assert ds.attrs["format_version"] == 3 and ds.attrs["analysis"] == "finite"
    table = results.summary_table(ds)
    assert {"tau_mean", "tau_mean_reached", "phase"} <= set(table.columns)


def test_loading_a_format_1_sharpness_file_keeps_its_nonstrict_count_under_a_name_that_says_so(tmp_path):
    v1 = xr.Dataset({"n_chaotic": (("eta", "ic", "time"), np.full((1, 1, 2), 7))},
                    attrs={"format": results.FORMAT, "format_version": 1})
    v1.to_netcdf(tmp_path / results.RESULTS_FILE, engine="h5netcdf")
    ds = results.load(tmp_path)
    assert "n_chaotic" not in ds and ds.n_chaotic_or_flat.values.tolist() == [[[7, 7]]]
    assert "flat directions included" in ds.n_chaotic_or_flat.attrs["description"]


# ---------------------------------------------------------------- end to end on Iris


@pytest.fixture(scope="module")
def ratio_sweep(iris_task):
    previous = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")  # compiles fast; full-batch GD does not depend on it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FilterWarning)  # 60 updates: the filters may keep nothing; not the point
            return finite_sweep(iris_task, eta=[8.0], eps=[1e-3, 1e-6], n_ic=2, n_perturb=2, steps=60,
                                estimator="ratio", include_bias=True, progress=False, **SMALL_WINDOWS)
    finally:
        jax.config.update("jax_default_prng_impl", previous)


def test_sweep_with_the_ratio_estimator_is_eq_3_on_the_records(ratio_sweep):
    ds = ratio_sweep
    assert ds.attrs["lyapunov_estimator"] == "ratio" and ds.attrs["include_bias"] == 1
    dbar = ds.distance.isel(member=slice(1, None)).mean("member").values  # (eta, eps, ic, step)
    tau = ds.window_length.values
    assert set(np.unique(tau)) <= {20, 25, 30, 35, 40, 45, 50} and (ds.window_start.values == 0).all()
    by_hand = np.log(np.take_along_axis(dbar, tau[..., None], -1)[..., 0] / dbar[..., 0]) / tau
    np.testing.assert_allclose(ds.exponent.values, by_hand, rtol=1e-12)
    # step 0 is the initial ε-ball, before any update: Σ|U(−ε, ε)| over all 83 parameters ≤ 83 ε
    d0 = ds.distance.isel(member=slice(1, None), step=0).values / ds.eps.values[None, :, None, None]
    assert (d0 <= 83).all() and (d0 > 0).all()
    np.testing.assert_allclose(ds.lambda_nmle_ratio.values, ds.lambda_nmle.values, equal_nan=True)
    window = finite_exponents(ds.distance.values[:, :, :, 1:], estimator="window", **SMALL_WINDOWS)
    np.testing.assert_allclose(ds.rho_window.values, window.kept.mean(-1))
