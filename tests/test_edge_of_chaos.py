"""Edge of chaos of x ↦ tanh(Wx): mean-field theory, numerics, J0/J estimates, training path; the phase app."""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from hydra import compose, initialize_config_dir

from gdchaos.analyses import edge_of_chaos as eoc
from gdchaos.core.data import synthetic
from gdchaos.core.errors import ConfigError
from gdchaos.cli.app import config_dir

QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]


def brute_force(a, b):
    """Dense trapezoid over z ∈ [−12, 12] with 400001 points (reference for the quadrature)."""
    z = np.linspace(-12, 12, 400_001)
    phi = np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    h = a + b * z
    sech = 1 / np.cosh(np.clip(h, -300, 300))
    dz = z[1] - z[0]
    return [np.sum(phi * f) * dz for f in (np.tanh(h), np.tanh(h) ** 2, sech**4)]


@pytest.mark.parametrize("a, b", [(0.0, 0.0), (0.3, 0.5), (1.0, 0.999), (1.0, 1.001), (2.0, 3.0), (10.0, 50.0), (-5.0, 200.0)])
def test_gaussian_averages_match_dense_integration(a, b):
    got = [float(v) for v in eoc.gaussian_averages(a, b)]
    np.testing.assert_allclose(got, brute_force(a, b), atol=1e-9)


def test_mean_field_paramagnet_spin_glass_and_ferromagnet():
    mf = eoc.mean_field([0.0, 0.0, 0.0, 2.0], [0.5, 0.9, 1.5, 0.5])
    np.testing.assert_allclose(mf.mu[:3], 0.0, atol=1e-12)
    np.testing.assert_allclose(mf.q0[:2], 0.0, atol=1e-10)
    np.testing.assert_allclose(mf.criterion[:2], [0.25, 0.81], rtol=1e-9)  # χ = J² at μ = q0 = 0
    assert float(mf.q0[2]) > 0.1 and float(mf.criterion[2]) > 1  # replica-symmetric spin glass: unstable
    mu, q0 = float(mf.mu[3]), float(mf.q0[3])
    assert mu > 0.5
    t, t2, _ = eoc.gaussian_averages(2.0 * mu, 0.5 * math.sqrt(q0))  # self-consistency
    assert abs(float(t) - mu) < 1e-9 and abs(float(t2) - q0) < 1e-9


def test_boundary_is_1_over_j_equal_1_for_j0_below_j_then_the_at_line():
    ratio = jnp.array([-1.0, -0.5, 0.0, 0.5, 0.9, 1.2, 1.5, 2.0, 3.0])
    inv_j = np.asarray(eoc.chaos_boundary(ratio))
    np.testing.assert_allclose(inv_j[:5], 1.0, atol=1e-3)  # passes through J = 1 at J0 = 0
    assert np.all(np.diff(inv_j[4:]) < 0)
    # large J0/J: 1/J ≈ 4/(3√(2π)) exp(−(J0/J)²/2)
    assert inv_j[-1] == pytest.approx(4 / (3 * math.sqrt(2 * math.pi)) * math.exp(-4.5), rel=0.05)
    # on the curve the criterion is 1
    j = 1 / inv_j[5:]
    chi = eoc.mean_field(np.asarray(ratio[5:]) * j, j).criterion
    np.testing.assert_allclose(chi, 1.0, atol=2e-3)


def test_numerical_heatmap_agrees_with_the_mean_field_side_away_from_the_boundary():
    ratio = np.array([-0.5, 0.0, 0.5, 1.5, 2.0])
    inv_j = np.array([0.25, 0.4, 1.0, 1.5, 2.0])
    heat = eoc.separation_heatmap(ratio, inv_j, jax.random.key(3), n=64, draws=2, steps=150, average=10)
    assert heat.separation.shape == (5, 5) and heat.per_draw.shape == (2, 5, 5)
    j = 1 / inv_j[:, None]
    chi = np.asarray(eoc.mean_field(ratio[None, :] * j, np.broadcast_to(j, (5, 5))).criterion)
    away = np.abs(chi - 1) > 0.5
    assert away.sum() >= 15 and (chi[away] > 1).any() and (chi[away] < 1).any()
    growth = np.asarray(heat.growth)
    np.testing.assert_array_equal(growth[away] > 0, chi[away] > 1)
    chaotic = away & (chi > 1)
    assert np.all(np.asarray(heat.separation)[chaotic] > 0.1)  # saturates at O(1), not at 1e-4


def test_j0_j_estimates_recover_the_drawn_couplings():
    n, j0, j = 400, 0.7, 1.3
    key = jax.random.key(1)
    w = eoc.random_coupling(key, n, j0, j)
    z = jax.random.normal(key, (n, n), w.dtype)  # the same draw
    est_j0, est_j = eoc.estimate_j0_j(w)
    # exactly: N·mean(W) = J0 + J√N·mean(z), √N·std(W) = J·std(z)
    np.testing.assert_allclose(est_j0, j0 + j * math.sqrt(n) * float(jnp.mean(z)), rtol=1e-10)
    np.testing.assert_allclose(est_j, j * float(jnp.std(z)), rtol=1e-10)
    assert abs(float(est_j0) - j0) < 5 * j / math.sqrt(n) and abs(float(est_j) - j) < 0.02
    batch = jnp.stack([w, 2 * w])
    np.testing.assert_allclose(eoc.estimate_j0_j(batch)[1], [est_j, 2 * est_j], rtol=1e-12)
    with pytest.raises(ConfigError, match="square"):
        eoc.estimate_j0_j(jnp.ones((3, 4)))


def test_jacobian_norm_is_j_in_the_paramagnet_and_crosses_1_at_j_1():
    n = 300
    norms = []
    for j in (0.8, 1.2):
        w = eoc.random_coupling(jax.random.key(2), n, 0.0, j)
        x_star = eoc.asymptotic_state(w, jax.random.normal(jax.random.key(3), (n,), w.dtype), steps=300, average=100)
        norms.append(float(eoc.jacobian_norm(w, x_star)))
        if j < 1:
            assert float(jnp.abs(x_star).max()) < 1e-8
            np.testing.assert_allclose(norms[-1], float(jnp.sqrt(jnp.sum(w**2) / n)), rtol=1e-10)
    assert norms[0] < 1 < norms[1]


def test_scaling_relations_reproduce_the_papers_numbers():
    assert eoc.scale_factor(0.01, 0.0, 32) == pytest.approx(0.0003125)  # the paper's default
    assert eoc.optimal_weight_decay(12.0, 60000) == pytest.approx(5e-5)  # eq. 9 at D = 12, S = 60000
    a, eta, alpha, b, s = 0.004, 0.02, 0.5, 32, 60000
    d = eoc.growth_constant(a, eta, alpha, b)
    # eq. 8: λ = A(1 − α)B/(4ηS J*²)
    assert eoc.optimal_weight_decay(d, s, j_star=1.0) == pytest.approx(a * (1 - alpha) * b / (4 * eta * s))
    slope, intercept, n = eoc.fit_growth(np.arange(6), 0.25 + 0.15 * np.arange(6))
    assert float(slope) == pytest.approx(0.15) and float(intercept) == pytest.approx(0.25) and int(n) == 5
    assert bool(jnp.isnan(eoc.fit_growth([0, 1], [1.5, 2.0])[0]))  # no ordered points
    with pytest.raises(ConfigError, match="momentum"):
        eoc.scale_factor(0.1, 1.0, 32)


def test_training_moves_j_up_and_weight_decay_holds_it_back():
    ds = synthetic()  # 800 training samples, 20 features, 3 classes (the app's track.data=synthetic)
    kwargs = dict(epochs=6, eta=0.05, momentum=0.5, batch_size=16)
    free = eoc.track_training(ds, **kwargs)
    for field in free:
        assert field.shape == (7,)
    assert free.epoch.tolist() == list(range(7))
    assert float(free.j[0]) == pytest.approx(0.5, abs=0.1) and abs(float(free.j0[0])) < 0.3
    assert np.all(np.diff(np.asarray(free.j)) > 0) and not bool(free.diverged[-1])
    assert float(free.test_accuracy[-1]) > float(free.test_accuracy[0])
    decayed = eoc.track_training(ds, weight_decay=0.02, **kwargs)
    assert float(decayed.j[-1]) < float(free.j[-1])
    growth = eoc.analyze_growth(free, 0.05, 0.5, 16, 800)
    assert float(growth.slope) > 0 and growth.scale_factor == pytest.approx(0.00625)
    assert float(growth.weight_decay) == pytest.approx(float(growth.d) / (4 * 800))


def test_track_training_rejects_bad_settings():
    ds = synthetic(n_samples=40, n_features=4, n_classes=2)
    with pytest.raises(ConfigError, match="batch_size"):
        eoc.track_training(ds, batch_size=1000)
    with pytest.raises(ConfigError, match="momentum"):
        eoc.track_training(ds, momentum=1.0)


# --------------------------------------------------------------------------- the app

# shapes and static settings shared with the tests above, so the app reuses their compiled programs
SHRINK = ["ratio.num=5", "inv_j.num=5", "boundary_points=9", "numerics.n=64", "numerics.draws=2",
          "numerics.steps=150", "numerics.average=10"]
TRACK = ["track.enabled=true", "track.data=synthetic", "track.epochs=6", "track.batch_size=16"]


def test_config_composes_and_validates():
    from gdchaos.phase import validate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        validate(compose("phase"))
        validate(compose("phase", overrides=["track.enabled=true"]))


def run_app(monkeypatch, argv):
    from gdchaos.phase import main

    monkeypatch.setattr(sys, "argv", ["gdchaos.phase"])
    main([*argv, *QUIET])


def test_cli_writes_phase_diagram_training_figure_and_results(tmp_path, monkeypatch, capsys):
    run_app(monkeypatch, [*SHRINK, *TRACK, f"hydra.run.dir={tmp_path}"])
    out = capsys.readouterr().out
    assert f"results: {tmp_path / 'phase.nc'}" in out
    for name in ("phase_diagram.png", "training.png", "phase.nc", "edge.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    with xr.open_dataset(tmp_path / "phase.nc", engine="h5netcdf") as ds:
        assert ds.separation.shape == (5, 5) and ds.boundary_inv_j.shape == (9,)
        assert ds.track_j.shape == (7,) and "track_slope_A" in ds.attrs and "version_jax" in ds.attrs
        assert ds.edge_numerical.shape == (5,) and "edge_distance_max_j0_le_j" in ds.attrs
        np.testing.assert_allclose(ds.boundary_inv_j.sel(boundary_ratio=-1.0), 1.0, atol=1e-3)


@pytest.mark.parametrize(
    "override, message",
    [
        ("inv_j.min=0", "inv_j.min must be > 0"),
        ("numerics.average=500", "numerics.average must be <="),
        ("ratio.num=0", "ratio.num must be an integer >= 1"),
        ("inv_j.num=1", "inv_j.num must be an integer >= 2"),
        ("inv_j.max=0.04", "inv_j.max must be > inv_j.min"),
        ("edge.threshold=0.1", "edge.threshold must be < 0"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, override, message):
    with pytest.raises(SystemExit) as exit_info:
        run_app(monkeypatch, [override, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gdchaos.phase: error: ") and message in err and "\n" not in err
