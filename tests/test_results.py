"""A tiny finite-ε sweep: labelled Dataset, save/load round trip, summary table, figures."""

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gdchaos.experiments import registry

from gdchaos.experiments import results
from gdchaos.core.errors import ConfigError
from gdchaos.experiments.finite import finite_sweep
from gdchaos.core.precision import PrecisionError, require_precision

from conftest import SMALL_WINDOWS

ETAS, N_IC, N_PERTURB, STEPS = [0.5, 8.0], 3, 2, 60


@pytest.fixture(scope="module")
def small_sweep(iris_task):
    # finite_sweep draws its key with jax.random.key(seed); the RBG implementation
    # compiles several times faster on CPU and full-batch GD does not depend on it.
    previous = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")
    try:
        return finite_sweep(iris_task, eta=ETAS, eps=[1e-8], n_ic=N_IC, n_perturb=N_PERTURB, steps=STEPS,
                            progress=False, **SMALL_WINDOWS)
    finally:
        jax.config.update("jax_default_prng_impl", previous)


def test_dataset_layout(small_sweep):
    ds = small_sweep
    assert dict(ds.sizes) == {"eta": 2, "eps": 1, "ic": N_IC, "member": N_PERTURB + 1, "step": STEPS}
    for name in ("distance", "loss", "accuracy"):
        assert ds[name].dims == ("eta", "eps", "ic", "member", "step")
    assert ds.distance.dtype == ds.loss.dtype == np.float64
    assert ds.diverged.dims == ds.diverged_at.dims == ("eta", "eps", "ic", "member")
    for name in ("exponent", "r2", "window_start", "window_length", "kept", "tau"):
        assert ds[name].dims == ("eta", "eps", "ic"), name
    for name in results.SUMMARY_VARS:
        assert ds[name].dims == ("eta", "eps"), name
    np.testing.assert_array_equal(ds.eta, ETAS)
    assert np.all(ds.distance.isel(member=0) == 0)
    assert ds.attrs["analysis"] == "finite" and ds.attrs["task"] == "iris/mlp-4-10-3-sigmoid/sgd"


def test_summary_is_consistent_with_per_ic_values(small_sweep):
    kept = small_sweep.kept.values
    assert kept[1].any() and not kept[0].any()  # η = 8 is chaotic on Iris, η = 0.5 is not
    lam = np.where(kept, small_sweep.exponent.values, 0.0).sum(-1) / np.maximum(kept.sum(-1), 1)
    has = kept.any(-1)
    np.testing.assert_allclose(small_sweep.lambda_nmle.values[has], lam[has])
    assert np.all(np.isnan(small_sweep.lambda_nmle.values[~has]))
    np.testing.assert_allclose(small_sweep.rho.values, kept.mean(-1))
    assert small_sweep.lambda_nmle.values[1, 0] > 0.05
    assert (small_sweep.tau.values[0] >= 0).all() and (small_sweep.tau.values[1] == -1).all()  # η = 8 never learns
    reached = small_sweep.tau.values >= 0
    np.testing.assert_array_equal(small_sweep.n_reached.values, reached.sum(-1))
    np.testing.assert_array_equal(small_sweep.n_censored.values, (~reached).sum(-1))
    # ⟨τ⟩ over all ICs: η = 8 never learns, so every IC counts as the STEPS updates run
    np.testing.assert_allclose(small_sweep.tau_mean.values[1], STEPS)
    np.testing.assert_allclose(small_sweep.tau_mean.values[0], small_sweep.tau.values[0].mean(-1))
    np.testing.assert_allclose(small_sweep.tau_mean_reached.values[0], small_sweep.tau.values[0].mean(-1))
    assert np.isnan(small_sweep.tau_mean_reached.values[1]).all()
    # the configured (default: window) estimator's summary is the one in lambda_nmle/rho; phase instead of a gap
    assert small_sweep.attrs["lyapunov_estimator"] == "window"
    np.testing.assert_array_equal(small_sweep.lambda_nmle_window.values, small_sweep.lambda_nmle.values)
    np.testing.assert_array_equal(small_sweep.rho_window.values, small_sweep.rho.values)
    assert small_sweep.phase.values[:, 0].tolist() == ["λ≤0", "chaotic"]
    np.testing.assert_array_equal(small_sweep.n_diverged.values, small_sweep.diverged.values.sum((-2, -1)))


def test_save_load_round_trip(small_sweep, tmp_path):
    path = results.save(small_sweep, tmp_path)
    assert path == tmp_path / "results.nc" and path.stat().st_size > 0
    back = results.load(tmp_path)
    assert set(back.data_vars) == set(small_sweep.data_vars)
    for name in small_sweep.data_vars:
        np.testing.assert_array_equal(back[name].values, small_sweep[name].values, err_msg=name)
        assert back[name].dims == small_sweep[name].dims
    assert back.kept.dtype == bool
    assert back.attrs["format_version"] == results.FORMAT_VERSION == 3 and "converted_from_format_version" not in back.attrs
    for coord in ("eta", "eps", "ic", "member", "step"):
        np.testing.assert_array_equal(back[coord].values, small_sweep[coord].values)
    assert back.attrs["dtype"] == "float64" and back.attrs["backend"] == jax.default_backend()
    assert int(back.attrs["device_count"]) == jax.device_count()
    assert back.attrs["version_jax"] == jax.__version__
    assert back.exponent.attrs["units"] == "nat / update"
    xr.testing.assert_identical(results.load(path), back)  # a directory or its results.nc
    with pytest.raises(FileNotFoundError, match="no results"):
        results.load(tmp_path / "nowhere")


def test_summary_csv_columns_and_values(small_sweep, tmp_path):
    results.save(small_sweep, tmp_path)
    table = pd.read_csv(tmp_path / "summary.csv")
    assert list(table.columns) == ["eta", "eps", "n_ic", *results.SUMMARY_VARS]
    assert len(table) == len(ETAS)
    np.testing.assert_allclose(table.eta, ETAS)
    assert (table.n_ic == N_IC).all()
    np.testing.assert_allclose(table.rho, small_sweep.rho.values[:, 0], rtol=1e-5)  # 6 significant digits
    np.testing.assert_allclose(table.lambda_nmle, small_sweep.lambda_nmle.values[:, 0], rtol=1e-5)
    assert table.n_kept.tolist() == small_sweep.n_kept.values[:, 0].tolist()
    assert table.phase.tolist() == ["λ≤0", "chaotic"]


def test_figures_are_written(small_sweep, tmp_path):
    paths = registry.save_figures(small_sweep, tmp_path / "figures")
    assert [p.name for p in paths] == ["summary.png", "distance.png", "loss.png", "lambda_hist.png"]
    for p in paths:
        assert p.parent == tmp_path / "figures"
        content = p.read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 10_000, p.name


def test_finite_sweep_checks_the_window_grid_before_running(iris_task):
    with pytest.raises(ConfigError, match="raise steps to >= 201"):
        finite_sweep(iris_task, eta=[1.0], n_ic=1, steps=100, progress=False)


def test_small_eps_in_float32_is_refused():
    import jax.numpy as jnp

    with pytest.raises(PrecisionError, match="eps=1e-08 is below what float32 resolves.*enable_float64.*tangent method"):
        require_precision(1e-8, jnp.float32)
    with pytest.raises(PrecisionError):
        require_precision([1e-2, 1e-6], jnp.float32)
    require_precision(1e-8, jnp.float64)
    require_precision(1e-2, jnp.float32)


def test_accuracy_is_recorded_in_the_compute_dtype(small_sweep):
    assert small_sweep.accuracy.dtype == np.float64
    assert np.all(np.isin(np.round(small_sweep.accuracy.values[..., 0] * 30, 6) % 1, [0.0]))


@pytest.mark.parametrize("method, variables", [
    ("tangent", {"tangent_exponents": (("eta", "ic", "index"), np.zeros((2, 2, 1))),
                 "lambda_max_tangent": (("eta",), np.array([0.1, 0.3])),
                 "lambda_max_tangent_std": (("eta",), np.zeros(2))}),
    ("sharpness", {"sharpness": (("eta", "ic", "time"), np.ones((2, 2, 3))),
                   "edge_of_stability": (("eta",), np.array([4.0, 0.5])),
                   "sharpness_peak": (("eta",), np.ones(2)), "sharpness_final": (("eta",), np.ones(2))}),
    (None, {"tangent_exponents": (("eta", "ic", "index"), np.zeros((2, 2, 1))),
            "lambda_max_tangent": (("eta",), np.array([0.1, 0.3]))}),  # no method attribute: told by its variables
])
def test_a_format_2_file_loads_naming_its_analysis(tmp_path, method, variables):
    """Format 2 stored the analysis as the attribute ``method``; format 3 calls it ``analysis``."""
    attrs = {"format": results.FORMAT, "format_version": 2, **({"method": method} if method else {})}
    ds = xr.Dataset(variables, coords={"eta": [0.5, 4.0], "ic": [0, 1]}, attrs=attrs)
    (tmp_path / "results.nc").write_bytes(ds.to_netcdf(None, engine="h5netcdf"))
    back = results.load(tmp_path)
    assert back.attrs["analysis"] == (method or "tangent") and "method" not in back.attrs
    assert back.attrs["format_version"] == 3 and back.attrs["converted_from_format_version"] == 2
    table = results.summary_table(back)
    assert list(table.eta) == [0.5, 4.0] and "n_ic" in table.columns
    assert (table.columns[-1] in ("lambda_max_tangent", "lambda_max_tangent_std", "sharpness_final"))


def test_analysis_is_told_by_variables_when_a_file_does_not_name_it():
    from gdchaos.experiments.registry import infer_analysis_name

    finite = {"distance": (("eta", "step"), np.zeros((1, 2)))}
    tangent = {"tangent_exponents": (("eta", "index"), np.zeros((1, 1)))}
    assert infer_analysis_name(xr.Dataset(finite)) == "finite"
    assert infer_analysis_name(xr.Dataset({**finite, **tangent})) == "both"
    assert infer_analysis_name(xr.Dataset(tangent)) == "tangent"
    assert infer_analysis_name(xr.Dataset({"sharpness": (("eta",), [1.0])})) == "sharpness"
    assert infer_analysis_name(xr.Dataset({"other": (("eta",), [1.0])})) is None
