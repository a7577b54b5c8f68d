"""Curvature along training: sharpness and chaotic counts over (η, ic), and the analysis=sharpness sweep."""

import jax
import jax.numpy as jnp
import numpy as np
from hydra import compose, initialize_config_dir

from gdchaos import maps
from gdchaos.curvature import run_sharpness, sharpness
from gdchaos.sweep import config_dir, run_sweep

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
    expected = [int(np.sum(np.asarray(A) * e >= 2.0)) for e in etas]  # all λ > 0: chaotic iff λ ≥ 2/η
    assert expected == [0, 1, 2, 3]
    np.testing.assert_array_equal(res.records["n_chaotic"], np.broadcast_to(np.array(expected)[:, None, None], (4, 2, 3)))
    assert np.all(res.records["n_positive"] == 4) and np.all(res.records["n_negative"] == 0)
    # the recorded loss follows GD: each mode shrinks by (1 − ηa_i) per update
    w0 = jax.vmap(init)(jax.random.split(jax.random.split(jax.random.key(0), 3)[0], 2))["w"]
    for i, eta in enumerate(etas):
        w10 = w0 * (1 - eta * A) ** 10
        np.testing.assert_allclose(res.records["loss"][i, :, 1], 0.5 * jnp.sum(A * w10**2, axis=-1), rtol=1e-9)


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
