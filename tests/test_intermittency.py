"""Laminar phases and bursts: hand-built series with exact answers, type-I intermittency of the logistic map,
the training records, and the ``python -m gdchaos.intermittency`` app end to end."""

import subprocess
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import fast_key
from hydra import compose, initialize_config_dir
from jax.flatten_util import ravel_pytree

from gdchaos.engine import ensemble

from gdchaos.core import maps
from gdchaos.cli.app import config_dir
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.intermittency import (
    REGIMES,
    TrainingSeries,
    analyze,
    burst_onsets,
    detect_laminar,
    onset_coincidence,
    record_series,
    regime,
    summary_table,
)
from gdchaos.figures.intermittency import intermittency_figure


def burst(n: int, start: float = 100.0) -> np.ndarray:
    """n burst values: increasing, pairwise at least 7 apart and far above the laminar values (never a repeat)."""
    return start + 7.0 * np.arange(n) + 0.01 * np.arange(n) ** 2


def names(codes) -> list[str]:
    return [REGIMES[k] for k in np.ravel(codes)]


# --------------------------------------------------------------------------- hand-built series


def test_exact_laminar_and_burst_segments():
    # period 3 (40 steps) | burst 15 | period 5 (25) | burst 20 | constant (30); bursts longer than p_max = 12,
    # so no laminar step can repeat a value from before the preceding burst
    x = np.r_[np.tile([0.0, 1.0, 2.0], 14)[:40], burst(15), np.tile([3.0, 3.5, 4.0, 4.5, 5.0], 5), burst(20, 300.0),
              np.full(30, 2.2)]
    res = detect_laminar(x, p_max=12, rtol=1e-6, min_length=10)
    assert res.lengths[: res.n_phases].tolist() == [40, 25, 30]
    assert int(res.n_phases) == 3 and int(res.n_bursts) == 2
    assert float(res.burst_fraction) == 35 / 130
    expected = np.r_[np.ones(40), np.zeros(15), np.ones(25), np.zeros(20), np.ones(30)].astype(bool)
    np.testing.assert_array_equal(res.laminar, expected)
    # per-step periods: t ≥ p inside each segment repeats with its period; the first p steps are repeated, not repeating
    np.testing.assert_array_equal(res.period[3:40], 3)
    np.testing.assert_array_equal(res.period[:3], 0)
    np.testing.assert_array_equal(res.period[60:80], 5)
    np.testing.assert_array_equal(res.period[101:], 1)
    assert int(res.dominant_period) == 3  # votes: 37 steps of period 3, 20 of period 5, 29 of period 1
    assert float(res.mean_length) == pytest.approx(95 / 3)
    assert bool(res.open_start) and bool(res.open_end) and bool(res.finite)
    assert names(regime(res)) == ["intermittent"]
    on = burst_onsets(res.laminar)
    assert np.flatnonzero(on).tolist() == [40, 80]


def test_min_length_is_inclusive_and_short_runs_are_burst():
    x = np.r_[burst(13), np.full(10, 1.0), burst(13, 300.0), np.full(9, 2.0), burst(13, 500.0)]
    res = detect_laminar(x, p_max=12, rtol=1e-6, min_length=10)
    assert res.lengths[: res.n_phases].tolist() == [10]  # the 9-step run is burst
    assert int(res.n_bursts) == 2 and float(res.burst_fraction) == (13 + 13 + 9 + 13) / 58
    assert not bool(res.open_start) and not bool(res.open_end)
    assert names(regime(res)) == ["transient"]
    res = detect_laminar(x, p_max=12, rtol=1e-6, min_length=9)
    assert res.lengths[: res.n_phases].tolist() == [10, 9] and int(res.n_bursts) == 3


def test_constant_zero_and_periodic_series_are_all_laminar_without_bursts():
    x = np.stack([np.full(50, 3.7), np.zeros(50), np.tile(np.arange(7.0), 8)[:50], np.tile(np.arange(12.0), 5)[:50]])
    res = detect_laminar(x, p_max=12, min_length=10)
    np.testing.assert_array_equal(res.laminar, True)
    assert res.n_bursts.tolist() == [0, 0, 0, 0] and res.burst_fraction.tolist() == [0.0] * 4
    assert res.n_phases.tolist() == [1] * 4 and res.lengths[:, 0].tolist() == [50] * 4
    assert res.dominant_period.tolist() == [1, 1, 7, 12]  # the smallest repeating period, p_max included
    assert names(regime(res)) == ["constant", "constant", "periodic", "periodic"]


def test_a_period_above_p_max_never_repeats():
    res = detect_laminar(np.tile(np.arange(13.0), 6), p_max=12, min_length=10)
    assert int(res.n_phases) == 0 and float(res.burst_fraction) == 1.0 and int(res.n_bursts) == 1
    assert int(res.dominant_period) == 0 and names(regime(res)) == ["irregular"]
    assert np.isnan(res.mean_length)


def test_tolerance_is_atol_plus_rtol_times_rms():
    rng = np.random.default_rng(0)
    clean = np.tile([1.0, -2.0, 4.0], 100)
    rtol = 1e-3
    delta = rtol * np.sqrt(7.0)  # rms of the clean cycle
    quiet = clean + rng.uniform(-0.4, 0.4, clean.size) * delta  # |x_t − x_{t−3}| ≤ 0.8 δ: every step repeats
    res = detect_laminar(np.stack([quiet, 1000 * quiet, clean]), rtol=rtol, atol=0.5, min_length=10)
    by_hand = [0.5 + rtol * np.sqrt(np.mean(s**2)) for s in (quiet, 1000 * quiet, clean)]
    np.testing.assert_allclose(res.tolerance, by_hand, rtol=1e-12)
    res = detect_laminar(np.stack([quiet, 1000 * quiet]), rtol=rtol, min_length=10)
    assert res.burst_fraction.tolist() == [0.0, 0.0] and res.dominant_period.tolist() == [3, 3]  # rtol is scale-free
    huge = detect_laminar(1e300 * quiet, rtol=rtol, min_length=10)  # x² overflows; the rms must not
    assert float(huge.tolerance) == pytest.approx(1e300 * by_hand[0] - 0.5e300, rel=1e-12)
    assert float(huge.burst_fraction) == 0.0
    # the boundary, with an absolute tolerance: a drift of 0.95 δ per cycle repeats, 1.05 δ never does
    t = np.arange(clean.size)
    drift = np.stack([clean + 0.95 * delta * t / 3, clean + 1.05 * delta * t / 3])
    res = detect_laminar(drift, rtol=0.0, atol=delta, min_length=10)
    assert res.burst_fraction.tolist() == [0.0, 1.0]
    assert float(res.tolerance[0]) == delta


def test_second_order_accepts_a_linear_drift_on_a_cycle():
    t = np.arange(120)
    x = np.where(t % 2 == 0, 1.0, -1.0) + 0.01 * t  # period 2 plus a drift of 0.02 per period
    first = detect_laminar(x, rtol=1e-3, min_length=10)
    second = detect_laminar(x, rtol=1e-3, min_length=10, order=2)
    assert float(first.burst_fraction) == 1.0
    assert float(second.burst_fraction) == 0.0 and int(second.dominant_period) == 2


def test_nonfinite_series_are_flagged_never_laminar_and_leave_the_others_alone():
    good = np.full(40, 2.0)
    x = np.stack([good, np.r_[good[:30], np.nan, good[:9]], np.r_[good[:20], np.inf, good[:19]], np.full(40, np.nan)])
    res = detect_laminar(x, min_length=10)
    assert res.finite.tolist() == [True, False, False, False]
    assert not res.laminar[1:].any() and not res.period[1:].any()
    assert res.n_phases.tolist() == [1, -1, -1, -1] and res.n_bursts.tolist() == [0, -1, -1, -1]
    assert res.dominant_period.tolist() == [1, -1, -1, -1]
    assert res.burst_fraction[0] == 0.0 and np.isnan(res.burst_fraction[1:]).all()
    assert np.isnan(res.mean_length[1:]).all() and np.isnan(res.tolerance[1:]).all()
    assert names(regime(res)) == ["constant"] + ["nonfinite"] * 3
    assert not burst_onsets(res.laminar)[1:].any()


def test_batch_axes_are_independent_series():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(2, 3, 80)) * (rng.random((2, 3, 80)) < 0.3), axis=-1)
    res = detect_laminar(x, min_length=5)
    assert res.laminar.shape == (2, 3, 80) and res.n_phases.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = detect_laminar(x[i, j], min_length=5)
            np.testing.assert_array_equal(one.laminar, res.laminar[i, j])
            assert one.lengths[: one.n_phases].tolist() == res.lengths[i, j, : res.n_phases[i, j]].tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"p_max": 0}, "p_max must be an integer >= 1"),
        ({"min_length": 2.5}, "min_length must be an integer >= 1"),
        ({"rtol": -1e-3}, "rtol must be a finite number >= 0"),
        ({"atol": float("nan")}, "atol must be a finite number >= 0"),
        ({"order": 3}, "order must be 1"),
    ],
)
def test_bad_detector_arguments_raise_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        detect_laminar(np.zeros(20), **kwargs)


def test_bad_series_raise_config_errors():
    with pytest.raises(ConfigError, match="floating-point"):
        detect_laminar(np.arange(20))
    with pytest.raises(ConfigError, match="T >= 2"):
        detect_laminar(np.zeros(1))


def test_onset_coincidence_counts_within_the_window_inclusive():
    t = np.arange(100)
    reference = np.isin(t, [50])
    onsets = np.isin(t, [47, 53, 46, 54, 10])  # |Δ| = 3, 3, 4, 4, 40
    c = onset_coincidence(onsets, reference, window=3)
    assert int(c.n_onsets) == 5 and int(c.n_coincident) == 2
    assert float(c.chance) == pytest.approx(7 / 100)  # one reference onset: P(in a 7-step window) = 7/T
    assert int(onset_coincidence(onsets, reference, window=4).n_coincident) == 4
    none = onset_coincidence(onsets, np.zeros(100, bool), window=3)
    assert int(none.n_coincident) == 0 and float(none.chance) == 0.0
    # broadcasting: several series against one reference each
    many = onset_coincidence(np.stack([onsets, onsets]), reference[None], window=3)
    assert many.n_coincident.tolist() == [2, 2] and many.chance.shape == (2,)


# --------------------------------------------------------------------------- logistic map: type-I intermittency


def logistic_orbits(r, steps: int, x0: float = 0.3) -> np.ndarray:
    def orbit(rate):
        def f(x, _):
            x = rate * x * (1 - x)
            return x, x

        return jax.lax.scan(f, jnp.asarray(x0, jnp.float64), None, length=steps, unroll=8)[1]

    return np.asarray(jax.jit(jax.vmap(orbit))(jnp.asarray(r, jnp.float64)))


def test_logistic_map_laminar_length_scales_as_distance_to_tangent_bifurcation_to_minus_one_half():
    """Type-I (Pomeau–Manneville) intermittency below the period-3 window r_c = 1 + √8.

    Near the tangent bifurcation the third iterate is y ↦ y + ε' + a y² (ε' ∝ r_c − r), and a
    passage through the channel |Δ| = ε' + a y² ≤ δ lasts (2/√(aε')) arctan(√(δ/ε' − 1)) periods,
    so the mean laminar length ∝ (r_c − r)^(−1/2) as r → r_c. At these ε the finite channel
    steepens the local slope by ≈ 1/(π√(δ/ε')) ≈ 0.01, and over 8 initial points the fitted slope
    scatters by 0.005 (std, 1e6 steps): |slope + 1/2| ≤ 0.03 is the systematic part plus 4σ.
    """
    eps = np.array([3e-5, 1e-5, 3e-6, 1e-6])
    x = logistic_orbits(1 + np.sqrt(8) - eps, 1_000_000)
    res = detect_laminar(x, p_max=3, rtol=0.0, atol=3e-3, min_length=10)
    assert res.dominant_period.tolist() == [3, 3, 3, 3]
    assert bool(np.all(res.n_phases > 500))
    # complete phases only: the first and last may be cut by the window
    mean = np.array([res.lengths[k, 1 : res.n_phases[k] - 1].mean() for k in range(eps.size)])
    assert bool(np.all(np.diff(mean) > 0))
    slope = np.polyfit(np.log(eps), np.log(mean), 1)[0]
    assert abs(slope + 0.5) <= 0.03, slope
    # deep in the chaotic band there are no period-3 laminar phases
    chaotic = detect_laminar(logistic_orbits([3.7], 20_000)[0], p_max=3, rtol=0.0, atol=3e-3, min_length=10)
    assert float(chaotic.burst_fraction) > 0.95


# --------------------------------------------------------------------------- training records


def quadratic_task(curvature):
    """GD on L(θ) = ½ Σ_i c_i θ_i² over a two-leaf pytree: θ_i(t) = θ_i(0) (1 − η c_i)^t exactly."""
    c = {"a": jnp.asarray(curvature[:2]), "b": jnp.asarray(curvature[2:])}
    loss = lambda p, x, y: 0.5 * sum(jnp.sum(c[k] * p[k] ** 2) for k in p)  # noqa: E731
    init = lambda k: {"a": jax.random.normal(k, (2,)), "b": jax.random.normal(jax.random.fold_in(k, 1), (3,))}  # noqa: E731
    tmap = maps.gd(loss, jnp.zeros((1, 1)), jnp.zeros(1))
    return SimpleNamespace(tmap=tmap, model=SimpleNamespace(init=init), hyper={})


def test_record_series_is_exact_on_a_quadratic_and_flags_diverged_runs():
    c = np.array([1.0, 0.2, 3.0, 0.05, 0.5])  # η = 0.5 converges; η = 1e3 overflows after about 100 updates
    key, steps = fast_key(0), 150
    task = quadratic_task(c)
    series = record_series(task, eta=[0.5, 1e3], n_ic=2, steps=steps, key=key, weights=3, chunk=50)
    params = jax.jit(lambda k: ensemble.draw(k, task.model.init, 2)[0])(key)  # the ICs record_series starts from
    start = np.asarray(jax.vmap(lambda p: ravel_pytree(p)[0])(params))  # (ic, 5)
    # the 3 weights with the largest mean |w_T − w_0| over the finite runs: |θ_i(0)| |1 − (1 − ηc_i)^T| at η = 0.5
    moved = np.abs(start * (1 - (1 - 0.5 * c) ** steps)).mean(axis=0)
    expected_index = np.sort(np.argsort(-moved)[:3])
    np.testing.assert_array_equal(series.weight_index, expected_index)
    assert series.weight_names == [["a[0]", "a[1]", "b[0]", "b[1]", "b[2]"][i] for i in expected_index]
    t = np.arange(steps)
    exact = start[:, expected_index, None] * (1 - 0.5 * c[expected_index, None]) ** t  # (ic, 3, T)
    np.testing.assert_allclose(series.weights[0], exact, rtol=1e-12, atol=1e-300)
    full = start[:, :, None] * (1 - 0.5 * c[:, None]) ** t
    np.testing.assert_allclose(series.loss[0], 0.5 * np.sum(c[:, None] * full**2, axis=1), rtol=1e-12, atol=1e-300)
    assert series.diverged.tolist() == [[False, False], [True, True]]
    assert np.isnan(series.loss[1, :, -1]).all() and np.isnan(series.weights[1, :, :, -1]).all()
    ds = analyze(series, min_length=5)
    assert ds.loss_finite.values.tolist() == [[1, 1], [0, 0]]
    assert ds.summary_n_nonfinite.values.tolist() == [0, 2]
    assert np.isnan(ds.summary_loss_burst_fraction.values[1]) and np.isfinite(ds.summary_loss_burst_fraction.values[0])
    assert (ds.loss_laminar.values[1] == 0).all() and (ds.weight_laminar.values[1] == 0).all()
    assert names(ds.weight_regime.values[1]) == ["nonfinite"] * 6
    assert ds.summary_weight_regime_fraction.sel(regime="nonfinite").values.tolist() == [0.0, 1.0]


def synthetic_series() -> TrainingSeries:
    """Two η, two ICs, three weights, hand-built.

    IC 0: the loss is period 3 with bursts at t = 30..44 and 80..94; weight 0 bursts with it,
    weight 1 is constant, weight 2 bursts at t = 60..74 only. IC 1: all constant. η index 1: copy.
    """
    t = np.arange(130)
    b1, b2, b3 = (t >= 30) & (t < 45), (t >= 80) & (t < 95), (t >= 60) & (t < 75)
    loss0 = np.where(b1 | b2, 100.0 + 7 * t, 1.0 + t % 3)
    w0 = np.where(b1 | b2, -7.0 * t, 0.5)
    w2 = np.where(b3, 9.0 * t, -1.0)
    loss = np.stack([loss0, np.full(130, 2.0)])
    w = np.stack([np.stack([w0, np.full(130, 3.0), w2]), np.full((3, 130), 1.5)])
    return TrainingSeries(np.array([1.0, 5.0]), np.stack([loss, loss]), np.stack([w, w]), np.array([0, 1, 2]),
                          ["a", "b", "c"], np.zeros((2, 2), bool), np.full((2, 2), -1), 0.0, 0.0)


def test_analyze_summaries_by_hand():
    ds = analyze(synthetic_series(), min_length=10, window=3)
    assert ds.loss_lengths.values[0, 0, :3].tolist() == [30, 35, 35]
    np.testing.assert_allclose(ds.summary_loss_burst_fraction.values, [(30 / 130) / 2] * 2)
    assert ds.summary_loss_n_phases.values.tolist() == [4, 4]  # three in IC 0, one in IC 1
    np.testing.assert_allclose(ds.summary_loss_mean_length.values, (30 + 35 + 35 + 130) / 4)
    assert names(ds.weight_regime.values[0, 0]) == ["intermittent", "constant", "intermittent"]
    assert ds.summary_weight_regime_fraction.sel(regime="intermittent").values.tolist() == [2 / 6] * 2
    # weight onsets: w0 at 30 and 80 (both on a loss onset), w2 at 60 (none): 2 of 3
    assert ds.weight_n_onsets.values[0, 0].tolist() == [2, 0, 1]
    assert ds.summary_onset_coincidence.values.tolist() == [2 / 3] * 2
    chance = 1 - (1 - 7 / 130) ** 2  # two loss onsets, 7-step windows
    np.testing.assert_allclose(ds.summary_onset_chance.values, chance)
    # against the other weights of the same IC: w0's onsets (30, 80) and w2's (60) are 20+ steps apart: none
    assert ds.summary_onset_coincidence_weights.values.tolist() == [0.0, 0.0]
    by_other = (2 * (7 / 130) + 1 * (1 - (1 - 7 / 130) ** 2)) / 3  # w0 sees 1 other onset, w2 sees 2
    np.testing.assert_allclose(ds.summary_onset_chance_weights.values, by_other)
    # in IC 0's 30 loss-burst steps: w0 bursts in all, w1 in none, w2 in none (its burst is elsewhere)
    np.testing.assert_allclose(ds.weight_burst_in_loss_bursts.values[0, 0], [1.0, 0.0, 0.0])
    assert np.isnan(ds.weight_burst_in_loss_bursts.values[0, 1]).all()  # IC 1 has no loss burst
    assert ds.summary_weight_quiet_in_loss_bursts.values.tolist() == [2 / 3] * 2
    table = summary_table(ds)
    assert table.shape[0] == 2 and table.eta.tolist() == [1.0, 5.0]
    assert table.onset_coincidence.tolist() == [2 / 3] * 2


def test_analyze_transient_drops_the_leading_updates():
    ds = analyze(synthetic_series(), min_length=10, transient=50)
    assert ds.step.values[0] == 50 and ds.sizes["step"] == 80
    assert ds.loss_lengths.values[0, 0, :2].tolist() == [30, 35]  # t = 50..79, 95..129
    with pytest.raises(ConfigError, match="transient must be"):
        analyze(synthetic_series(), transient=129)


def test_figure_draws_loss_weights_and_summaries(tmp_path):
    ds = analyze(synthetic_series(), min_length=10)
    fig = intermittency_figure(ds)
    assert len(fig.axes) == 2 * 2 + 3
    assert "η = 1, IC 0" in fig.axes[0].get_title()  # auto: the IC with the most laminar phases
    no_weights = intermittency_figure(ds.drop_vars("weights"))
    assert len(no_weights.axes) == 2 + 3


def test_import_loads_no_matplotlib():
    code = "import sys, gdchaos.analyses.intermittency; assert 'matplotlib' not in sys.modules, 'matplotlib loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- the app

QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def test_config_composes_with_the_sweep_config_groups_and_validates():
    from gdchaos.intermittency import validate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("intermittency")
    assert validate(cfg) == [1.0, 5.0, 10.0]
    assert cfg.data.name == "iris" and cfg.model.hidden == [10] and cfg.optimizer.name == "sgd"
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("intermittency", overrides=["model=square_tanh", "eta=[0.5]", "weights=5"])
    assert validate(cfg) == [0.5]


def run_app(monkeypatch, argv):
    from gdchaos.intermittency import main

    monkeypatch.setattr(sys, "argv", ["gdchaos.intermittency"])
    main([*argv, *QUIET])


def test_cli_writes_results_summary_and_figure(tmp_path, monkeypatch, capsys):
    run_app(monkeypatch, ["eta=[1,5]", "n_ic=2", "steps=60", "model.hidden=[2]", "detector.min_length=5",
                          "progress=false", f"hydra.run.dir={tmp_path}"])
    out = capsys.readouterr().out
    assert f"results: {tmp_path / 'results.nc'}" in out
    for name in ("results.nc", "summary.csv", "intermittency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    with xr.open_dataset(tmp_path / "results.nc", engine="h5netcdf") as ds:
        assert dict(ds.sizes)["eta"] == 2 and ds.sizes["ic"] == 2 and ds.sizes["step"] == 60
        assert ds.sizes["weight"] == 4 * 2 + 2 + 2 * 3 + 3  # every parameter of the 4-2-3 MLP
        assert ds.attrs["dtype"] == "float64" and ds.attrs["backend"] == "cpu" and "version_jax" in ds.attrs
        assert "detector:" in ds.attrs["config"] and ds.attrs["p_max"] == 12 and ds.attrs["min_length"] == 5
        assert set(ds.loss_regime.values.ravel()) <= set(range(len(REGIMES)))
    csv = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("eta,n_ic,n_nonfinite,loss_burst_fraction") and len(csv) == 3


@pytest.mark.parametrize(
    "override, message",
    [
        ("eta=[1,-5]", "learning rates must be finite and > 0"),
        ("detector.p_max=0", "detector.p_max must be an integer >= 1"),
        ("detector.order=3", "detector.order must be 1"),
        ("detector.rtol=-1", "detector.rtol must be a finite number >= 0"),
        ("weights=some", "weights must be all, an integer k"),
        ("transient=1995", "must exceed detector.p_max"),
        ("figures.ic=8", "figures.ic must be auto or an initial condition in 0..7"),
        ("detector.window=3", "Could not override 'detector.window'"),
        ("model=resnet", "Could not find 'model/resnet'"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, override, message):
    with pytest.raises(SystemExit) as exit_info:
        run_app(monkeypatch, [override, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gdchaos.intermittency: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "results.nc").exists()
