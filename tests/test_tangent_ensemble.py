"""Tangent exponents over (η, ic) grids and through the sweep."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import fast_key

from gdchaos.experiments import results
from gdchaos.analyses.lyapunov.tangent_ensemble import run_tangent


def test_vmapped_eta_equals_single_runs_and_direct_spectrum(iris_task):
    key = jax.random.key(0)
    both = run_tangent(iris_task.tmap, iris_task.model.init, eta=[0.01, 5.0], n_ic=2, steps=60, key=key, k=2, progress=False)
    assert both.exponents.shape == (2, 2, 2)
    alone = run_tangent(iris_task.tmap, iris_task.model.init, eta=[5.0], n_ic=2, steps=60, key=key, k=2, progress=False)
    # chaotic at η = 5: roundoff of different batch shapes grows like e^{λt}
    np.testing.assert_allclose(both.exponents[1], alone.exponents[0], rtol=1e-5)
    # small η: GD barely moves, no exponential separation
    assert np.all(np.abs(both.exponents[0, :, 0]) < 0.01)
    # the running estimate (first QR direction) ends at one of the reported exponents (sorted, so not always [0])
    assert np.isclose(both.running_exponent()[..., -1, None], both.exponents, rtol=1e-9).any(axis=-1).all()


def test_same_initial_conditions_as_the_finite_ensemble(iris_task):
    from gdchaos.engine import ensemble

    key = jax.random.key(3)
    tan = run_tangent(iris_task.tmap, iris_task.model.init, eta=[1.0], n_ic=2, steps=20, key=key, progress=False)
    fin = ensemble.run(iris_task.tmap, iris_task.model.init, eta=[1.0], eps=[1e-8], n_ic=2, n_perturb=1, steps=20,
                       key=key, progress=False)
    np.testing.assert_allclose(tan.records["loss"][0], fin.records["loss"][0, 0, :, 0], rtol=1e-12)


def test_quadratic_through_the_ensemble_matches_exact_exponents():
    import jax.numpy as jnp

    from gdchaos.core import maps

    a = jnp.diag(jnp.array([1.0, 4.0]))
    tmap = maps.gd(lambda p, x, y: 0.5 * p @ a @ p, jnp.zeros((1, 2)), jnp.zeros(1))
    res = run_tangent(tmap, lambda key: jax.random.normal(key, (2,)), eta=[0.1, 0.6], n_ic=3, steps=300,
                      key=jax.random.key(0), k=2, transient=50, progress=False)
    exact = np.sort(np.log(np.abs(1 - np.array([0.1, 0.6])[:, None] * np.array([1.0, 4.0]))), axis=1)[:, ::-1]
    np.testing.assert_allclose(res.exponents, np.broadcast_to(exact[:, None], (2, 3, 2)), atol=1e-8)


def test_sweep_method_tangent_runs_in_float32(tmp_path):
    """analysis=tangent needs no float64 (the TPU path); analysis=both is covered in-process below."""
    shrink = ["n_ic=2", "steps=60", "progress=false", "eta=0.5,8", "lyapunov.k=3", "analysis=tangent"]
    out = subprocess.run([sys.executable, "-m", "gdchaos.sweep", *shrink, f"hydra.run.dir={tmp_path}"],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    ds = results.load(tmp_path)
    assert ds.attrs["dtype"] == "float32"
    assert ds.tangent_exponents.shape == (2, 2, 3) and "lambda_nmle" not in ds
    lam = ds.tangent_exponents.values
    assert np.all(np.diff(lam, axis=-1) <= 0)  # sorted descending
    np.testing.assert_allclose(ds.lambda_max_tangent.values, lam[..., 0].mean(axis=1), rtol=1e-6)
    # the running estimate ends at the first QR direction's exponent, ≈ λ_1 after 60 updates
    np.testing.assert_allclose(ds.tangent_ftle.values[..., -1], ds.tangent_log_stretch.values.mean(axis=-1), rtol=1e-5)
    assert lam[1, :, 0].min() > 0.1 > np.abs(lam[0, :, 0]).max()  # Iris: chaotic at η = 8, not at η = 0.5
    assert (tmp_path / "figures" / "tangent.png").exists() and (tmp_path / "figures" / "ftle.png").exists()
    assert "lambda_max_tangent" in (tmp_path / "summary.csv").read_text()


def test_sweep_method_both_merges_the_estimates(tmp_path):
    from hydra import compose, initialize_config_dir

    from gdchaos.cli.app import config_dir
    from gdchaos.sweep import run_sweep

    overrides = ["analysis=both", "n_ic=2", "n_perturb=2", "steps=60", "lyapunov.start_max=10", "lyapunov.length_min=20",
                 "lyapunov.length_max=40", "progress=false", "eta=[0.5,8.0]", "lyapunov.k=2"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("sweep", overrides=overrides)
    ds = run_sweep(cfg, tmp_path)
    for name in ("lambda_nmle", "tangent_exponents", "tangent_window_exponent"):
        assert name in ds
    # brute force: mean of the per-update log-stretches over each IC's fit window [s, s + L)
    for e in range(2):
        for i in range(2):
            s0, n = int(ds.window_start[e, 0, i]), int(ds.window_length[e, 0, i])
            expected = float(np.mean(ds.tangent_log_stretch.values[e, i, s0:s0 + n]))
            assert float(ds.tangent_window_exponent[e, 0, i]) == pytest.approx(expected, rel=1e-10, abs=1e-14)
    assert all((tmp_path / "figures" / f).exists() for f in ("summary.png", "tangent.png", "ftle.png"))


def test_finite_eps_agrees_with_tangent_over_the_same_window(iris_task):
    """Where the linearization holds (ε = 1e-8), Λ equals the tangent growth rate over Λ's window."""
    import xarray as xr

    from gdchaos.experiments.both import add_window_matched_tangent
    from gdchaos.experiments.finite import finite_sweep
    from gdchaos.experiments.tangent import tangent_sweep

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


# --------------------------------------------------------------------------- exact bookkeeping


def _flip_map(factor):
    """GD on ½·a·θ² with a = 1 + factor at η = 1: θ ↦ −factor·θ, exponent ln(factor) exactly."""
    import jax.numpy as jnp

    from gdchaos.core import maps

    return maps.gd(lambda p, x, y: 0.5 * (1.0 + factor) * p ** 2, jnp.zeros((1, 1)), jnp.zeros(1))


@pytest.mark.parametrize("transient,renorm_every", [(0, 1), (5, 4), (3, 2), (7, 3), (4, 4)])
def test_running_exponent_is_exact_for_any_renorm_and_transient(transient, renorm_every):
    import jax.numpy as jnp

    steps = 103
    res = run_tangent(_flip_map(1.4), lambda key: jnp.asarray(1.0), eta=[1.0], n_ic=1, steps=steps,
                      key=fast_key(0), transient=transient, renorm_every=renorm_every, chunk=50, progress=False)
    run = res.running_exponent()[0, 0]
    # first averaged block: the first one that starts at or after the transient, ending at update c
    first_block = -(-transient // renorm_every)
    c = renorm_every * (first_block + 1)
    assert np.all(np.isnan(run[: c - 1]))
    np.testing.assert_allclose(run[c - 1:], np.log(1.4), rtol=1e-12)
    assert res.exponents[0, 0, 0] == pytest.approx(np.log(1.4), rel=1e-12)


def test_divergence_is_flagged_frozen_and_counted():
    """θ_t = (−1e10)^t: the loss ½·(1 + 1e10)·θ_t² first overflows float64 at the update derived below."""
    import math

    import jax.numpy as jnp

    from gdchaos.experiments.results import tangent_dataset

    a = 1.0 + 1e10
    t_inf = next(t for t in range(100) if math.log10(0.5 * a) + 20 * t > math.log10(np.finfo(np.float64).max))
    tmap = _flip_map(1e10)
    res = run_tangent(tmap, lambda key: jnp.asarray(1.0), eta=[1.0, 1e-11], n_ic=2, steps=40, key=fast_key(0),
                      chunk=16, progress=False)
    assert res.diverged.tolist() == [[True, True], [False, False]]
    assert res.diverged_at.tolist() == [[t_inf, t_inf], [-1, -1]]
    loss = res.records["loss"][0, 0]
    assert np.all(np.isfinite(loss[:t_inf])) and np.isinf(loss[t_inf]) and np.all(np.isnan(loss[t_inf + 1:]))
    assert np.all(np.isnan(res.records["log_stretch"][0, 0, t_inf:]))
    assert np.all(np.isnan(res.exponents[0]))
    np.testing.assert_allclose(res.exponents[1, :, 0], np.log(abs(1 - 1e-11 * a)), rtol=1e-9)
    assert np.all(np.isfinite(np.asarray(res.final_state.state.inner.params)))  # frozen, not inf
    ds = tangent_dataset(res)
    assert ds.n_diverged_tangent.values.tolist() == [2, 0]
    assert np.isnan(ds.lambda_max_tangent.values[0]) and np.isfinite(ds.lambda_max_tangent.values[1])


def test_exponents_sorted_descending_and_final_state_continues_the_run():
    import jax.numpy as jnp

    from gdchaos.core import maps
    from gdchaos.analyses.lyapunov import exponents
    from gdchaos.analyses.lyapunov.tangent_ensemble import tangent_step

    a = jnp.array([0.2, 3.6])  # GD at η = 1: factors 0.8 and −2.6, exponents ln 2.6 > ln 0.8
    tmap = maps.gd(lambda p, x, y: 0.5 * jnp.sum(a * p ** 2), jnp.zeros((1, 2)), jnp.zeros(1))
    init = lambda key: jax.random.normal(key, (2,)) * 1e-30
    kw = dict(eta=[1.0], n_ic=2, key=jax.random.key(1), k=2, transient=15, progress=False)
    whole = run_tangent(tmap, init, steps=40, **kw)
    # after the transient the basis is aligned to (0.8/2.6)^15 ≈ 2e-8
    np.testing.assert_allclose(whole.exponents[0], np.broadcast_to([np.log(2.6), np.log(0.8)], (2, 2)), rtol=1e-6)
    half = run_tangent(tmap, init, steps=20, **kw)
    _, step = tangent_step(tmap, 2, transient=15)
    step_all = jax.jit(jax.vmap(jax.vmap(step, in_axes=(0, None)), in_axes=(0, {"learning_rate": 0})))
    carry = half.final_state
    for _ in range(20):
        carry, _ = step_all(carry, {"learning_rate": jnp.array([1.0])})
    lam = np.asarray(jax.vmap(jax.vmap(lambda c: exponents(c.state)))(carry))
    np.testing.assert_allclose(-np.sort(-lam, axis=-1), whole.exponents, rtol=1e-12)
