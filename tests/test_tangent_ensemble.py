"""Tangent exponents over (η, ic) grids and through the sweep."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from gdchaos import results
from gdchaos.lyapunov.tangent import lyapunov_spectrum
from gdchaos.lyapunov.tangent_ensemble import run_tangent


def test_vmapped_eta_equals_single_runs_and_direct_spectrum(iris_task):
    key = jax.random.key(0)
    both = run_tangent(iris_task.tmap, iris_task.model.init, eta=[0.01, 5.0], n_ic=2, steps=60, key=key, k=2, progress=False)
    assert both.exponents.shape == (2, 2, 2)
    alone = run_tangent(iris_task.tmap, iris_task.model.init, eta=[5.0], n_ic=2, steps=60, key=key, k=2, progress=False)
    # chaotic at η = 5: roundoff of different batch shapes grows like e^{λt}
    np.testing.assert_allclose(both.exponents[1], alone.exponents[0], rtol=1e-5)
    # small η: GD barely moves, no exponential separation
    assert np.all(np.abs(both.exponents[0, :, 0]) < 0.01)
    # the running estimate ends at the reported exponent
    np.testing.assert_allclose(both.running_exponent()[..., -1], both.exponents[..., 0], rtol=1e-9)


def test_same_initial_conditions_as_the_finite_ensemble(iris_task):
    from gdchaos import ensemble

    key = jax.random.key(3)
    tan = run_tangent(iris_task.tmap, iris_task.model.init, eta=[1.0], n_ic=2, steps=20, key=key, progress=False)
    fin = ensemble.run(iris_task.tmap, iris_task.model.init, eta=[1.0], eps=[1e-8], n_ic=2, n_perturb=1, steps=20,
                       key=key, progress=False)
    np.testing.assert_allclose(tan.records["loss"][0], fin.records["loss"][0, 0, :, 0], rtol=1e-12)


def test_quadratic_through_the_ensemble_matches_exact_exponents():
    import jax.numpy as jnp

    from gdchaos import maps

    a = jnp.diag(jnp.array([1.0, 4.0]))
    tmap = maps.gd(lambda p, x, y: 0.5 * p @ a @ p, jnp.zeros((1, 2)), jnp.zeros(1))
    res = run_tangent(tmap, lambda key: jax.random.normal(key, (2,)), eta=[0.1, 0.6], n_ic=3, steps=300,
                      key=jax.random.key(0), k=2, transient=50, progress=False)
    exact = np.sort(np.log(np.abs(1 - np.array([0.1, 0.6])[:, None] * np.array([1.0, 4.0]))), axis=1)[:, ::-1]
    np.testing.assert_allclose(res.exponents, np.broadcast_to(exact[:, None], (2, 3, 2)), atol=1e-8)


def test_sweep_method_tangent_runs_in_float32(tmp_path):
    """method=tangent needs no float64 (the TPU path); method=both is covered in-process below."""
    shrink = ["n_ic=2", "steps=60", "progress=false", "eta=0.5,8", "lyapunov.k=3", "method=tangent"]
    out = subprocess.run([sys.executable, "-m", "gdchaos.sweep", *shrink, f"hydra.run.dir={tmp_path}"],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    ds = results.load(tmp_path)
    assert ds.attrs["dtype"] == "float32"
    assert ds.tangent_exponents.shape == (2, 2, 3) and "lambda_nmle" not in ds
    assert (tmp_path / "figures" / "tangent.png").exists() and (tmp_path / "figures" / "ftle.png").exists()
    assert "lambda_max_tangent" in (tmp_path / "summary.csv").read_text()


def test_sweep_method_both_merges_the_estimates(tmp_path):
    from hydra import compose, initialize_config_dir

    from gdchaos.sweep import config_dir, run_sweep

    overrides = ["method=both", "n_ic=2", "n_perturb=2", "steps=60", "lyapunov.start_max=10", "lyapunov.length_min=20",
                 "lyapunov.length_max=40", "progress=false", "eta=[0.5,8.0]", "lyapunov.k=2"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("sweep", overrides=overrides)
    ds = run_sweep(cfg, tmp_path)
    for name in ("lambda_nmle", "tangent_exponents", "tangent_window_exponent"):
        assert name in ds
    assert all((tmp_path / "figures" / f).exists() for f in ("summary.png", "tangent.png", "ftle.png"))


def test_finite_eps_agrees_with_tangent_over_the_same_window(iris_task):
    """Where the linearization holds (ε = 1e-8), Λ equals the tangent growth rate over Λ's window."""
    import xarray as xr

    from gdchaos.experiment import add_window_matched_tangent, finite_sweep, tangent_sweep

    kw = dict(eta=[8.0], n_ic=6, steps=160, seed=0, progress=False)
    finite = finite_sweep(iris_task, eps=[1e-8], n_perturb=5, starts=range(0, 31, 5), lengths=range(30, 101, 5), **kw)
    tangent = tangent_sweep(iris_task, **kw)
    ds = add_window_matched_tangent(xr.merge([finite, tangent], combine_attrs="drop_conflicts"))
    kept = ds.kept.values[0, 0]
    assert kept.sum() >= 3
    lam, matched = ds.exponent.values[0, 0][kept], ds.tangent_window_exponent.values[0, 0][kept]
    # per IC: random ε-box directions still align with the top Lyapunov vector inside the window
    np.testing.assert_allclose(lam, matched, rtol=0.5)
    assert np.corrcoef(lam, matched)[0, 1] > 0.7
    assert abs(lam.mean() - matched.mean()) < 0.15 * lam.mean()
