"""The numerical edge of chaos of x ↦ tanh(Wx): the transverse exponent, the edge locator, per-column distances."""

import csv
import logging
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import fast_key

from gdchaos.analyses import edge_of_chaos as eoc
from gdchaos.core.errors import ConfigError

QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
FOUND, ABOVE, BELOW, NONFINITE = (eoc.EDGE_STATUS.index(s) for s in ("found", "above", "below", "nonfinite"))


# --------------------------------------------------------------------------- the transverse exponent


@jax.jit
def reference_step(w, x, y, v):
    x_new, tangent = jax.jvp(lambda x: jnp.tanh(w @ x), (x,), (v,))
    tangent = tangent - tangent.mean()
    norm = jnp.linalg.norm(tangent)
    y_new = jnp.tanh(w @ y)
    return x_new, y_new, tangent / norm, jnp.log(norm), jnp.sqrt(jnp.mean((x_new - y_new) ** 2))


def reference_cell(z, x0, xi, v0, j0, j, steps, average, perturbation):
    """One (draw, cell) the slow way: W formed explicitly, the tangent from jax.jvp, P = I − 11ᵀ/N by hand."""
    n = z.shape[0]
    w = j0 / n + j / np.sqrt(n) * z
    x, y = x0, x0 + perturbation * xi
    v = (v0 - v0.mean()) / jnp.linalg.norm(v0 - v0.mean())
    dists, logs = [], []
    for _ in range(steps):
        x, y, v, log_stretch, dist = reference_step(w, x, y, v)
        logs.append(float(log_stretch))
        dists.append(float(dist))
    return np.mean(dists[-average:]), np.mean(logs[steps // 2:])


def test_exponent_and_separation_match_an_explicit_jvp_loop():
    ratio, inv_j = np.array([0.0, 1.5]), np.array([0.5, 1.5])
    key, n, steps, average, eps = fast_key(5), 6, 20, 5, 1e-4
    heat = eoc.separation_heatmap(ratio, inv_j, key, n=n, draws=2, steps=steps, average=average, perturbation=eps)
    z, x0, xi, v0 = jax.jit(eoc.heatmap_draws, static_argnums=(1, 2, 3))(key, n, 2, jnp.float64)
    # standardized draws: N·mean(W) = J0 and √N·std(W) = J exactly
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0.0, atol=1e-14)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1.0, rtol=1e-12)
    w = 0.7 / n + 1.3 / np.sqrt(n) * z[0]
    j0_hat, j_hat = eoc.estimate_j0_j(w)
    assert float(j0_hat) == pytest.approx(0.7, abs=1e-12) and float(j_hat) == pytest.approx(1.3, rel=1e-12)
    for d in range(2):
        for a, u in enumerate(inv_j):
            for b, r in enumerate(ratio):
                sep, lam = reference_cell(z[d], x0[d], xi[d], v0[d], r / u, 1 / u, steps, average, eps)
                assert float(heat.per_draw[d, a, b]) == pytest.approx(sep, rel=1e-6)
                assert float(heat.lyapunov_per_draw[d, a, b]) == pytest.approx(lam, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(heat.lyapunov, np.median(heat.lyapunov_per_draw, axis=0))


# one compiled program for the next two tests: J0/J = 0 across the edge, and three ordered fixed points
EDGE_ROWS = np.linspace(0.8, 1.2, 9)


@pytest.fixture(scope="module")
def moderate_n():
    inv_j = np.concatenate([EDGE_ROWS, [2.0, 4.0]])
    return eoc.separation_heatmap([0.0, 3.0, 4.0], inv_j, fast_key(0), n=200, draws=3, steps=200, average=20)


def test_exponent_at_a_fixed_point_is_half_log_chi_and_ignores_the_j0_mode(moderate_n):
    # fixed points at J = 0.5 (1/J = 2): x* = 0 (J0 = 0, χ = J²) and a ferromagnet (J0 = 1.5); the bulk of the
    # Jacobian diag(sech²) W has radius √χ (circular law), so λ⊥ → ½ ln χ of the mean-field theory
    chi = np.asarray(eoc.mean_field([0.0, 1.5], [0.5, 0.5]).criterion)
    assert chi[0] == pytest.approx(0.25) and chi[1] < 0.2
    np.testing.assert_allclose(moderate_n.lyapunov[9, :2], 0.5 * np.log(chi), atol=0.08)
    # J0 = 1 exactly (J0/J = 4 at J = 0.25): the uniform mode is marginal (eigenvalue J0 = 1), the bulk is not
    assert float(moderate_n.lyapunov[10, 2]) < np.log(0.25) + 0.3


def test_edge_for_j0_0_sits_at_1_over_j_1_at_moderate_n(moderate_n):
    # mean field: the paramagnet x* = 0 loses stability at J = 1
    edge = eoc.locate_edge(EDGE_ROWS, np.asarray(moderate_n.lyapunov)[:9, :1], -0.01)
    assert edge.status[0] == FOUND and abs(edge.inv_j[0] - 1.0) < 0.1


def test_mean_field_is_even_in_j0_and_the_map_agrees():
    ratio = np.array([0.5, 1.2, 1.5, 2.0])
    both = np.asarray(eoc.chaos_boundary(np.concatenate([ratio, -ratio, [0.0]])))  # 9 columns, as elsewhere
    np.testing.assert_allclose(both[4:8], both[:4], rtol=1e-12)
    mf = eoc.mean_field([-2.0, 2.0], [0.5, 0.5])
    np.testing.assert_allclose(mf.criterion[0], mf.criterion[1], rtol=1e-12)
    # J0 = -4, J = 2 (J0/J = -2, 1/J = 0.5): a stable period-2 cycle, ordered like its mirror J0/J = 2,
    # although the paramagnetic branch alone would call it chaotic (χ = J² = 4); 5 × 5 grid, n = 64, 2 draws,
    # 150 steps: the program of the separation_heatmap example and of the app tests
    heat = eoc.separation_heatmap([-2.0, -1.0, 0.0, 1.0, 2.0], [0.5, 0.75, 1.0, 1.5, 2.0], jax.random.key(3),
                                  n=64, draws=2, steps=150, average=10)
    assert float(heat.lyapunov[0, 0]) < -0.1 and float(heat.growth[0, 0]) < 0


# --------------------------------------------------------------------------- locating the edge


def test_edge_of_a_linear_column_is_exact():
    # λ(u) = a (u_c − u) is linear, so interpolation between the bracketing cells is exact: λ = θ at
    # u = u_c − θ/a
    u = np.linspace(0.1, 2.0, 20)
    cases = [(1.0, 0.7), (0.537, 2.0), (1.3, 0.05)]
    values = np.stack([a * (uc - u) for uc, a in cases], axis=1)
    edge = eoc.locate_edge(u, values, threshold=-0.01)
    np.testing.assert_allclose(edge.inv_j, [uc + 0.01 / a for uc, a in cases], rtol=1e-12)
    assert edge.status.tolist() == [FOUND] * 3
    shuffled = np.random.default_rng(0).permutation(20)  # any row order
    np.testing.assert_allclose(eoc.locate_edge(u[shuffled], values[shuffled], -0.01).inv_j, edge.inv_j, rtol=1e-12)


def test_edge_takes_the_first_crossing_from_the_ordered_side():
    u = np.array([0.5, 0.75, 1.0, 1.25])
    columns = {
        # top down: −0.2 (1.25), −0.03 (1.0), 0.05 (0.75): 1.0 + (−0.01 + 0.03)(0.75 − 1.0)/(0.05 + 0.03) = 0.9375
        "nonlinear": [0.2, 0.05, -0.03, -0.2],
        # an ordered window deeper in the chaotic phase does not move the edge: −0.1 → 0.3 between 1.25 and 1.0,
        # 1.25 + (−0.01 + 0.1)(1.0 − 1.25)/(0.3 + 0.1) = 1.19375
        "window": [0.4, -0.3, 0.3, -0.1],
        "above": [0.5, 0.3, 0.1, 0.0],
        "below": [-0.02, -0.1, -0.2, -0.3],
        "nan_before": [0.2, np.nan, -0.1, -0.2],
        "nan_after": [np.nan, 0.2, -0.1, -0.2],  # 1.0 + 0.09·(−0.25)/0.3 = 0.925
    }
    edge = eoc.locate_edge(u, np.array(list(columns.values())).T, threshold=-0.01)
    np.testing.assert_allclose(edge.inv_j, [0.9375, 1.19375, np.nan, np.nan, np.nan, 0.925], rtol=1e-12)
    assert edge.status.tolist() == [FOUND, FOUND, ABOVE, BELOW, NONFINITE, FOUND]
    one = eoc.locate_edge(u, np.array(columns["nonlinear"]), threshold=-0.01)  # a single column
    assert one.inv_j.shape == (1,) and one.inv_j[0] == pytest.approx(0.9375)


@pytest.mark.parametrize(
    "inv_j, values, message",
    [
        ([1.0, 1.0, 2.0], np.zeros((3, 2)), "distinct"),
        ([0.5, 1.0], np.zeros((3, 2)), "n_inv_j = 2"),
        ([1.0], np.zeros((1, 2)), "at least 2"),
    ],
)
def test_locate_edge_rejects_bad_grids(inv_j, values, message):
    with pytest.raises(ConfigError, match=message):
        eoc.locate_edge(inv_j, values)


def test_distances_are_reported_per_column_and_per_side():
    ratio = np.array([-1.0, -0.5, 0.5, 1.0, 1.2, 1.5, 2.0, 3.0])
    mf = np.array([1.0, 1.0, 1.0, 1.0, 0.523, 0.275, 0.089, 0.006])
    num = np.array([0.8, 1.04, np.nan, 0.9, 0.5, np.nan, np.nan, np.nan])
    cmp = eoc.compare_edges(ratio, num, mf, (0.04, 2.0))
    np.testing.assert_allclose(cmp.distance, [0.2, 0.04, np.nan, 0.1, 0.023, np.nan, np.nan, np.nan], atol=1e-12)
    s = cmp.summary
    assert s["max_j0_le_j"] == pytest.approx(0.2) and s["mean_j0_le_j"] == pytest.approx((0.2 + 0.04 + 0.1) / 3)
    assert (s["compared_j0_le_j"], s["missing_j0_le_j"]) == (3, 1)
    # |J0/J| < 1 leaves out the columns J0 = ±J
    assert (s["max_abs_j0_lt_j"], s["compared_abs_j0_lt_j"], s["missing_abs_j0_lt_j"]) == (pytest.approx(0.04), 1, 1)
    # J0/J > 1: 1.5 and 2.0 have a mean-field edge on the grid and no numerical one; 3.0's lies below the grid
    assert (s["max_j0_gt_j"], s["compared_j0_gt_j"], s["missing_j0_gt_j"]) == (pytest.approx(0.023), 1, 2)
    none = eoc.compare_edges([0.0], [np.nan], [1.0], (0.04, 2.0)).summary
    assert np.isnan(none["max_j0_le_j"]) and none["missing_j0_le_j"] == 1 and np.isnan(none["mean_j0_gt_j"])


def test_edge_results_dataset_and_log_line():
    from gdchaos.analyses.phase_diagram import edge_results, edge_summary_line

    u = np.linspace(0.1, 2.0, 20)
    ratio = np.array([0.0, 0.5, 1.5])
    lyap = np.stack([0.7 * (1.0 - u), 0.7 * (1.05 - u), 0.7 * (0.3 - u)], axis=1)
    growth = np.stack([5.0 * (0.8 - u)] * 3, axis=1)
    ds = edge_results(ratio, u, lyap, growth, np.array([1.0, 1.0, 0.275]), -0.01)
    np.testing.assert_allclose(ds.edge_numerical, [1.0 + 0.01 / 0.7, 1.05 + 0.01 / 0.7, 0.3 + 0.01 / 0.7])
    np.testing.assert_allclose(ds.edge_distance, [0.01 / 0.7, 0.05 + 0.01 / 0.7, 0.025 + 0.01 / 0.7], rtol=1e-9)
    np.testing.assert_allclose(ds.edge_separation, 0.8)
    assert ds.attrs["edge_distance_max_j0_le_j"] == pytest.approx(0.05 + 0.01 / 0.7)
    assert ds.attrs["edge_separation_distance_max_j0_le_j"] == pytest.approx(0.2)
    line = edge_summary_line(ds.attrs, 5)
    assert "%" not in line and "max 0.064" in line and "J0/J > 1: max 0.039" in line


# --------------------------------------------------------------------------- the app

SHRINK = ["ratio.num=5", "inv_j.num=5", "boundary_points=9", "numerics.n=64", "numerics.draws=2",
          "numerics.steps=150", "numerics.average=10"]


def test_cli_writes_edges_and_logs_distances_not_fractions(tmp_path, monkeypatch, capsys, caplog):
    from gdchaos.phase import main

    monkeypatch.setattr(sys, "argv", ["gdchaos.phase"])
    with caplog.at_level(logging.INFO, logger="gdchaos.phase"):
        main([*SHRINK, f"hydra.run.dir={tmp_path}", *QUIET])
    assert f"edges: {tmp_path / 'edge.csv'}" in capsys.readouterr().out
    with xr.open_dataset(tmp_path / "phase.nc", engine="h5netcdf") as ds:
        for name in ("edge_numerical", "edge_mean_field", "edge_distance", "edge_status", "lyapunov"):
            assert name in ds
        assert ds.edge_numerical.dims == ("ratio",) and ds.lyapunov.shape == (5, 5)
        np.testing.assert_allclose(ds.edge_mean_field, eoc.chaos_boundary(ds.ratio.values), rtol=1e-12)
        d = np.abs(ds.edge_numerical - ds.edge_mean_field).values
        np.testing.assert_allclose(ds.edge_distance, d)
        finite = d[(ds.ratio.values <= 1) & np.isfinite(d)]
        assert ds.attrs["edge_distance_max_j0_le_j"] == pytest.approx(finite.max() if finite.size else np.nan,
                                                                      nan_ok=True)
        rows = list(csv.DictReader(open(tmp_path / "edge.csv")))
        assert [float(r["ratio"]) for r in rows] == pytest.approx(ds.ratio.values.tolist())
        assert [r["edge_status"] for r in rows] == [eoc.EDGE_STATUS[s] for s in ds.edge_status.values]
    line = next(r.getMessage() for r in caplog.records if "per J0/J column" in r.getMessage())
    assert "%" not in line and "J0/J <= 1: max" in line and "J0/J > 1: max" in line
