"""GD on toy potentials against exact answers; the ``python -m gdchaos.toymap`` app end to end."""

import functools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from hydra import compose, initialize_config_dir

from gdchaos.analyses import toymaps
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov import lyapunov_spectrum
from gdchaos.cli.app import config_dir
from gdchaos.analyses.toymaps import count_distinct, double_well, lyapunov_vs_eta, orbit_diagram, quadratic

ETA2 = math.sqrt(5) - 1  # the double well's 2-cycle period-doubles here: 9 − 2(1 + η)² = −1
KEY = jax.random.key(0)
INITS = jnp.array([-0.31, -0.07, 0.05, 0.12, 0.27])  # both wells, away from the unstable w = 0


@pytest.fixture(scope="module")
def cascade():
    """Double-well orbits on one η grid: below 1, period 2, period 4, chaos (one compiled program)."""
    etas = jnp.array([0.3, 0.6, 0.9, 0.99, 0.999, 1.0, 1.001, 1.05, 1.1, 1.2, ETA2 - 0.01, ETA2 + 0.01, 1.26, 1.5, 1.9])
    return orbit_diagram(double_well, etas, inits=INITS, transient=20000, keep=256)


def at(orbits, eta):
    return int(np.argmin(np.abs(np.asarray(orbits.eta) - eta)))


def test_minima_are_stable_below_eta_1_with_exponent_log_abs_1_minus_2eta(cascade):
    for eta in (0.3, 0.6, 0.9, 0.99):
        i = at(cascade, eta)
        np.testing.assert_allclose(np.abs(cascade.points[i]), 1.0, atol=1e-9)
        np.testing.assert_allclose(cascade.exponent[i], np.log(abs(1 - 2 * eta)), rtol=1e-9)
    signs = np.sign(np.asarray(cascade.points[at(cascade, 0.9), :, -1]))
    np.testing.assert_array_equal(signs, np.sign(INITS))  # each orbit stays in its own well
    assert not bool(cascade.escaped.any())


def test_period_two_above_eta_1_has_the_exact_cycle_and_multiplier(cascade):
    for eta in (1.05, 1.1, 1.2):
        i = at(cascade, eta)
        pts = np.asarray(cascade.points[i])
        assert count_distinct(pts).tolist() == [2] * len(INITS)
        # the 2-cycle (p, q): (p + q)² = 1 + 3/η, pq = 1/η; λ = ½ ln|9 − 2(1 + η)²|
        p, q = np.abs(pts[:, -1]), np.abs(pts[:, -2])
        np.testing.assert_allclose((p + q) ** 2, 1 + 3 / eta, rtol=1e-9)
        np.testing.assert_allclose(p * q, 1 / eta, rtol=1e-9)
        np.testing.assert_allclose(cascade.exponent[i], 0.5 * np.log(abs(9 - 2 * (1 + eta) ** 2)), rtol=1e-6)


def test_exponent_crosses_zero_at_eta_1_from_both_sides(cascade):
    curve = toymaps.lyapunov_curve(cascade)
    lam = np.asarray(curve.exponent)[[at(cascade, 0.999), at(cascade, 1.0), at(cascade, 1.001)]]
    np.testing.assert_allclose(lam[0], np.log(abs(1 - 2 * 0.999)), rtol=1e-6)  # fixed point: ≈ −0.002
    np.testing.assert_allclose(lam[2], 0.5 * np.log(abs(9 - 2 * 2.001**2)), rtol=1e-3)  # 2-cycle: ≈ −0.004
    assert abs(lam[1]) < 0.01 and np.all(lam < 0)


def test_period_doubling_cascade_1_2_4_then_chaos(cascade):
    counts = {eta: set(count_distinct(cascade.points[at(cascade, eta)]).tolist())
              for eta in (0.9, 1.1, ETA2 - 0.01, ETA2 + 0.01, 1.26, 1.5)}
    assert counts[0.9] == {1}
    assert counts[1.1] == counts[ETA2 - 0.01] == {2}
    assert counts[ETA2 + 0.01] == counts[1.26] == {4}
    assert min(counts[1.5]) > 100  # aperiodic
    for eta in (1.5, 1.9):
        assert bool(jnp.all(cascade.exponent[at(cascade, eta)] > 0.2))


def test_quadratic_potential_has_exactly_log_abs_1_minus_eta_a_and_escapes_beyond_2_over_a():
    a = 3.0
    etas = jnp.array([0.1, 0.3, 0.5, 0.6, 0.65, 0.7, 1.0])
    orbits = orbit_diagram(functools.partial(quadratic, a=a), etas, n_init=4, key=KEY, transient=200, keep=40,
                           init_std=1.0)
    curve = toymaps.lyapunov_curve(orbits)
    stable = np.asarray(etas) < 2 / a
    np.testing.assert_allclose(np.asarray(curve.exponent)[stable], np.log(np.abs(1 - np.asarray(etas) * a))[stable], rtol=1e-12)
    assert np.all(np.isnan(np.asarray(curve.exponent)[~stable]))
    np.testing.assert_array_equal(np.asarray(curve.bounded_fraction), stable.astype(float))
    assert bool(orbits.escaped[~stable].all()) and bool(jnp.isnan(orbits.points[~stable]).all())
    assert toymaps.stability_limit("quadratic", a=a) == pytest.approx(2 / a)


def test_logistic_potential_at_eta_3_is_the_r4_logistic_map_with_ln2():
    curve = lyapunov_vs_eta("logistic", [3.0], inits=jnp.array([0.3, 0.7, 1.1]), transient=100, steps=20000)
    assert float(curve.exponent[0]) == pytest.approx(math.log(2), abs=0.01)
    assert float(curve.bounded_fraction[0]) == 1.0


def test_one_d_exponent_equals_the_tangent_map_exponent():
    eta, w0 = 1.5, 0.21
    step = toymaps.gd_map(double_well)
    lam = lyapunov_spectrum(step, jnp.asarray(w0), eta, 1500, k=1, transient=500).exponents[0]
    orbits = orbit_diagram(double_well, [eta], inits=jnp.array([w0]), transient=500, keep=1000)
    np.testing.assert_allclose(orbits.exponent[0, 0], lam, rtol=1e-9)


def test_two_dimensional_potential_gives_the_maximal_exponent():
    orbits = orbit_diagram(double_well, [0.4, 0.9], n_init=3, key=KEY, init_mean=jnp.zeros(2), transient=2000, keep=50)
    assert orbits.points.shape == (2, 3, 50, 2)
    np.testing.assert_allclose(orbits.exponent, np.log([[0.2] * 3, [0.8] * 3]), rtol=1e-9)
    assert count_distinct(orbits.points, vector=True).tolist() == [[1] * 3, [1] * 3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"etas": []}, "non-empty"),
        ({"etas": [0.5, float("nan")]}, "finite"),
        ({"keep": 0}, "keep must be"),
        ({"transient": -1}, "transient must be"),
        ({"n_init": 0}, "n_init must be"),
        ({"potential": "triple_well"}, "unknown potential"),
    ],
)
def test_bad_arguments_raise_config_errors_that_say_the_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        orbit_diagram(**{"etas": [0.5], **kwargs})


# --------------------------------------------------------------------------- the app


def test_config_composes_and_validates():
    from gdchaos.toymap import validate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("toymap", overrides=["eta=[0.5,1.1]"])
    assert validate(cfg) == [0.5, 1.1]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("toymap")
    eta = validate(cfg)
    assert eta[0] == 0.01 and eta[-1] < 2.0 and len(eta) == 995


# Hydra's own logging set-up would hold on to pytest's captured streams across runs
QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def run_app(monkeypatch, argv):
    from gdchaos.toymap import main

    monkeypatch.setattr(sys, "argv", ["gdchaos.toymap"])
    main([*argv, *QUIET])


def test_cli_writes_figures_and_results(tmp_path, monkeypatch, capsys):
    run_app(monkeypatch, ["eta=range(0.5,1.6,0.1)", "n_init=2", "transient=200", "keep=16", f"hydra.run.dir={tmp_path}"])
    out = capsys.readouterr().out
    assert f"results: {tmp_path / 'toymap.nc'}" in out
    for name in ("bifurcation.png", "lyapunov.png", "toymap.png", "toymap.nc"):
        assert (tmp_path / name).stat().st_size > 0, name
    with xr.open_dataset(tmp_path / "toymap.nc", engine="h5netcdf") as ds:
        assert dict(ds.sizes) == {"eta": 11, "init": 2, "step": 16}
        np.testing.assert_allclose(ds.eta.values[-1], 1.5)  # range stop excluded
        assert ds.attrs["potential"] == "double_well" and "version_jax" in ds.attrs
        np.testing.assert_allclose(ds.lyapunov.sel(eta=0.9).values, np.log(0.8), rtol=1e-6)


@pytest.mark.parametrize(
    "override, message",
    [
        ("eta=[0.5,-1]", "learning rates must be finite and > 0"),
        ("potential=triple_well", "unknown potential"),
        ("keep=0", "keep must be an integer >= 1"),
        ("eta=abc(", "cannot parse"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, override, message):
    with pytest.raises(SystemExit) as exit_info:
        run_app(monkeypatch, [override, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gdchaos.toymap: error: ") and message in err and "\n" not in err
