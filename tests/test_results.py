"""Results files round-trip and figures are written."""

import numpy as np
import pytest

from gdchaos import plots, results
from gdchaos.experiment import finite_sweep
from gdchaos.numerics import PrecisionError, require_precision

from conftest import SMALL_WINDOWS


@pytest.fixture(scope="module")
def small_sweep(iris_task):
    return finite_sweep(iris_task, eta=[0.5, 8.0], eps=[1e-8], n_ic=3, n_perturb=2, steps=60,
                        progress=False, **SMALL_WINDOWS)


def test_save_load_round_trip(small_sweep, tmp_path):
    results.save(small_sweep, tmp_path)
    back = results.load(tmp_path)
    for name in ("distance", "loss", "accuracy", "exponent", "kept", "tau", "lambda_nmle", "rho"):
        np.testing.assert_array_equal(back[name].values, small_sweep[name].values)
    for key in ("dtype", "backend", "device_count", "version_jax", "task"):
        assert key in back.attrs
    table = (tmp_path / "summary.csv").read_text().splitlines()
    assert table[0].split(",")[:5] == ["eta", "eps", "n_ic", "lambda_nmle", "lambda_std"]
    assert len(table) == 3
    with pytest.raises(FileNotFoundError, match="no results"):
        results.load(tmp_path / "nowhere")


def test_summary_is_consistent_with_per_ic_values(small_sweep):
    kept = small_sweep.kept.values
    assert kept.any()  # η = 8 is chaotic on Iris
    lam = np.where(kept, small_sweep.exponent.values, 0.0).sum(-1) / np.maximum(kept.sum(-1), 1)
    has = kept.any(-1)
    np.testing.assert_allclose(small_sweep.lambda_nmle.values[has], lam[has])
    assert np.all(np.isnan(small_sweep.lambda_nmle.values[~has]))
    np.testing.assert_allclose(small_sweep.rho.values, kept.mean(-1))


def test_figures_are_written(small_sweep, tmp_path):
    paths = plots.save_all(small_sweep, tmp_path)
    assert [p.name for p in paths] == ["summary.png", "distance.png", "loss.png", "lambda_hist.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_small_eps_in_float32_is_refused():
    import jax.numpy as jnp

    with pytest.raises(PrecisionError, match="tangent method"):
        require_precision(1e-8, jnp.float32)
    require_precision(1e-8, jnp.float64)
    require_precision(1e-2, jnp.float32)
