"""Curvature along training: sharpness and chaotic counts over (η, ic), and the analysis=sharpness sweep."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from gdchaos.core import maps
from gdchaos.analyses.curvature import run_sharpness, sharpness
from gdchaos.core.errors import ConfigError
from gdchaos.figures.sweep import curvature_figure, sharpness_figure
from gdchaos.experiments.results import sharpness_dataset
from gdchaos.cli.app import config_dir
from gdchaos.sweep import run_sweep

A = jnp.array([0.5, 1.0, 3.0, 8.0])


def quadratic_map():
    loss_fn = lambda p, x, y: 0.5 * jnp.sum(A * p["w"] ** 2)
    return maps.gd(loss_fn, jnp.zeros((1, 1)), jnp.zeros(1)), (lambda p: loss_fn(p, None, None))


def test_quadratic_sharpness_is_the_top_curvature_and_counts_follow_two_over_eta():
    tmap, loss = quadratic_map()
    init = lambda key: {"w": jax.random.normal(key, (4,))}
    etas = [0.1, 0.3, 0.7, 3.0]  # 2/η = 20, 6.67, 2.86, 0.67
    res = run_sharpness(tmap, init, loss, eta=etas, n_ic=2, steps=30, every=10, key=jax.random.key(0),
                        k=2, method="full", progress=False)
    assert res.step.tolist() == [0, 10, 20]
    np.testing.assert_allclose(res.records["top"], np.broadcast_to([8.0, 3.0], (4, 2, 3, 2)), rtol=1e-12)
    np.testing.assert_allclose(res.records["bottom"], np.broadcast_to([0.5, 1.0], (4, 2, 3, 2)), rtol=1e-12)
    expected = [int(np.sum(np.asarray(A) * e > 2.0)) for e in etas]  # all λ > 0: chaotic iff λ > 2/η
    assert expected == [0, 1, 2, 3]
    np.testing.assert_array_equal(res.records["n_chaotic"], np.broadcast_to(np.array(expected)[:, None, None], (4, 2, 3)))
    assert np.all(res.records["n_positive"] == 4) and np.all(res.records["n_negative"] == 0)
    assert np.all(res.records["n_flat"] == 0) and res.flat_rtol == 4 * np.finfo(np.float64).eps  # N·ε, N = 4
    # the recorded loss follows GD: each mode shrinks by (1 − ηa_i) per update
    w0 = jax.vmap(init)(jax.random.split(jax.random.split(jax.random.key(0), 3)[0], 2))["w"]
    for i, eta in enumerate(etas):
        w10 = w0 * (1 - eta * A) ** 10
        np.testing.assert_allclose(res.records["loss"][i, :, 1], 0.5 * jnp.sum(A * w10**2, axis=-1), rtol=1e-9)


def test_flat_tolerance_reaches_the_counts_and_the_dataset():
    """rtol = 0.1 with λ_max = 8: tol = 0.8, so λ = 0.5 is flat (and no longer positive or, at
    η = 3 where 2/η = 0.67, chaotic)."""
    tmap, loss = quadratic_map()
    init = lambda key: {"w": jax.random.normal(key, (4,))}
    res = run_sharpness(tmap, init, loss, eta=[0.3, 3.0], n_ic=1, steps=20, every=10, key=jax.random.key(0),
                        method="full", progress=False, rtol=0.1)
    assert res.flat_rtol == 0.1
    np.testing.assert_array_equal(res.records["n_flat"], np.ones((2, 1, 2)))
    np.testing.assert_array_equal(res.records["n_positive"], np.full((2, 1, 2), 3))
    np.testing.assert_array_equal(res.records["n_chaotic"][:, 0, 0], [1, 3])  # 8 > 6.67; 1, 3, 8 > 0.67
    ds = sharpness_dataset(res)
    assert ds.attrs["sharpness_flat_rtol"] == 0.1 and ds.n_flat.dims == ("eta", "ic", "time")
    np.testing.assert_array_equal(ds.n_flat.values, res.records["n_flat"])
    assert "|λ| <= tol" in ds.n_flat.attrs["description"] and "0.1·max|λ|" in ds.n_flat.attrs["description"]
    assert "λ > 2/η" in ds.n_chaotic.attrs["description"]
    fig = curvature_figure(ds)
    assert "flat directions" in fig.axes[1].get_ylabel() and "tol = 0.1·max|λ|" in fig.get_suptitle()
    with pytest.raises(ConfigError, match="rtol must be finite and >= 0"):
        run_sharpness(tmap, init, loss, eta=[0.3], n_ic=1, steps=20, every=10, key=jax.random.key(0),
                      method="full", progress=False, rtol=-0.1)


def test_lanczos_tracking_matches_the_full_spectrum(iris_task):
    x, y = iris_task.dataset.x_train, iris_task.dataset.y_train
    loss = lambda p: iris_task.loss_fn(p, x, y)
    kw = dict(eta=[1.0], n_ic=2, steps=20, every=10, key=jax.random.key(2), progress=False)
    full = run_sharpness(iris_task.tmap, iris_task.model.init, loss, method="full", **kw)
    lanczos = run_sharpness(iris_task.tmap, iris_task.model.init, loss, method="lanczos", num_iters=40, **kw)
    np.testing.assert_allclose(lanczos.records["top"], full.records["top"], rtol=1e-6)


def test_sweep_analysis_sharpness_writes_figures_and_uses_the_sweep_initial_conditions(tmp_path, iris_task):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("sweep", overrides=["analysis=sharpness", "eta=[0.5,4.0]", "n_ic=2", "steps=40",
                                          "sharpness.every=20", "progress=false"])
    ds = run_sweep(cfg, tmp_path)
    for name in ("sharpness.png", "curvature.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 0
    np.testing.assert_allclose(ds.edge_of_stability.values, [4.0, 0.5])
    params0 = iris_task.model.init(jax.random.split(jax.random.split(jax.random.key(0), 3)[0], 2)[0])
    direct = sharpness(lambda p: iris_task.loss_fn(p, iris_task.dataset.x_train, iris_task.dataset.y_train), params0)
    np.testing.assert_allclose(ds.sharpness.values[:, 0, 0], float(direct[0]), rtol=1e-6)
    assert "sharpness_peak" in open(tmp_path / "summary.csv").read()
    # the default flat tolerance is N·ε of the run's dtype (iris 4-10-3: N = 83)
    assert ds.attrs["sharpness_flat_rtol"] == pytest.approx(83 * np.finfo(ds.attrs["dtype"]).eps, rel=1e-12)
    assert np.all(ds.n_positive + ds.n_negative + ds.n_flat == 83)  # the auto method is full for 83 parameters


def test_sweep_config_flat_rtol_reaches_the_dataset(tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("sweep", overrides=["analysis=sharpness", "eta=[0.5]", "n_ic=1", "steps=20",
                                          "sharpness.every=20", "sharpness.flat_rtol=0.001", "progress=false"])
    ds = run_sweep(cfg, tmp_path)
    assert ds.attrs["sharpness_flat_rtol"] == 0.001
    assert "0.001·max|λ|" in ds.n_flat.attrs["description"]


def test_divergence_is_flagged_at_the_exact_update_frozen_and_nan_after():
    """GD on ½θ² at η = 3 maps θ to −2θ: from θ₀ = 2^e, θ_t = (−2)^t·2^e exactly (powers of two
    round to themselves). The loss ½θ_t² first overflows when θ_t² = 2^(2(t+e)) reaches
    2^maxexp (float64: 2^1024), at t = maxexp/2 − e; θ_t and the gradient θ_t stay finite
    until t = maxexp − 1 − e. So update t = maxexp/2 − e is the first with a non-finite
    loss: diverged_at. η = 0.5 halves θ each update and never diverges. A measurement at
    step t itself is of the finite θ_t (sharpness 1) whose loss is the overflowing one."""
    loss_fn = lambda p, x, y: 0.5 * jnp.sum(p["w"] ** 2)
    tmap = maps.gd(loss_fn, jnp.zeros((1, 1)), jnp.zeros(1))
    init = lambda key: {"w": 2.0 ** jax.random.randint(key, (1,), 0, 8).astype(jnp.result_type(float))}
    key, n_ic, every = jax.random.key(1), 4, 7
    maxexp = np.finfo(jnp.result_type(float)).maxexp
    e = np.asarray(jax.vmap(init)(jax.random.split(jax.random.split(key, 3)[0], n_ic))["w"][:, 0])
    e = np.log2(e).astype(int)
    expected_at = maxexp // 2 - e
    assert len(set(expected_at.tolist())) > 1, "pick a key with different divergence steps per IC"
    assert np.any(expected_at % every == 0) and np.any(expected_at % every != 0), "pick a key with both cases"
    steps = every * (maxexp // 2 // every + 3)
    res = run_sharpness(tmap, init, lambda p: loss_fn(p, None, None), eta=[0.5, 3.0], n_ic=n_ic, steps=steps,
                        every=every, key=key, method="full", chunk=38, progress=False)

    np.testing.assert_array_equal(res.diverged, [[False] * n_ic, [True] * n_ic])
    np.testing.assert_array_equal(res.diverged_at, [[-1] * n_ic, expected_at])
    for name, rec in res.records.items():
        assert np.all(np.isfinite(rec[0])), name  # the stable η: every measurement finite
        for i, at in enumerate(expected_at):
            assert np.all(np.isfinite(rec[1, i][res.step < at])), (name, i)
            assert not np.any(np.isnan(rec[1, i][res.step == at])), (name, i)  # θ_t is finite
            assert np.all(np.isnan(rec[1, i][res.step > at])), (name, i)
    at_measured = np.flatnonzero(expected_at % every == 0)
    for i in at_measured:
        r = expected_at[i] // every
        assert res.records["top"][1, i, r, 0] == 1.0 and res.records["loss"][1, i, r] == np.inf
    # frozen at the last finite state θ_t = (−2)^t·2^e, t = diverged_at, with count t
    w = np.asarray(res.final_state.params["w"][..., 0])
    np.testing.assert_array_equal(w[1], (-2.0) ** expected_at * 2.0 ** e)
    np.testing.assert_array_equal(np.asarray(res.final_state.count[1]), expected_at)
    np.testing.assert_array_equal(w[0], 0.5 ** steps * 2.0 ** e)
    np.testing.assert_array_equal(np.asarray(res.final_state.count[0]), steps)

    ds = sharpness_dataset(res)
    np.testing.assert_array_equal(ds.sharpness_diverged_at.values, res.diverged_at)
    assert ds.sharpness_diverged.dims == ("eta", "ic") and ds.n_diverged_sharpness.values.tolist() == [0, n_ic]
    np.testing.assert_allclose(ds.sharpness_peak.values, [1.0, 1.0])  # NaNs after divergence left out
    fig = sharpness_figure(ds)
    crosses = [line for ax in fig.axes for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == n_ic and sorted(c.get_xdata()[0] for c in crosses) == sorted(expected_at)
    assert f"{n_ic} of {2 * n_ic} trajectories diverged" in fig.get_suptitle()
