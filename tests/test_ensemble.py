"""The vectorized (η, ε, ic, member) ensemble: consistency, perturbations, divergence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdchaos import ensemble, maps
from gdchaos.errors import ConfigError
from gdchaos.lyapunov import finite_exponents, summarize


def run(task, **kw):
    args = dict(eps=[1e-8], n_ic=2, n_perturb=3, steps=30, key=jax.random.key(0), observe=task.observe, progress=False)
    args.update(kw)
    return ensemble.run(task.tmap, task.model.init, **args)


def test_vmapped_eta_equals_separate_runs(iris_task):
    grid = [0.1, 2.0, 8.0]
    together = run(iris_task, eta=grid)
    assert together.records["distance"].shape == (3, 1, 2, 4, 30)
    for i, eta in enumerate(grid):
        alone = run(iris_task, eta=[eta])
        for name in ("distance", "loss", "accuracy"):
            np.testing.assert_allclose(together.records[name][i], alone.records[name][0], rtol=1e-6, atol=0)


def test_vmapped_eps_equals_separate_runs_and_scales_initial_distance(iris_task):
    together = run(iris_task, eta=[1.0], eps=[1e-8, 1e-4])
    for j, eps in enumerate([1e-8, 1e-4]):
        alone = run(iris_task, eta=[1.0], eps=[eps])
        np.testing.assert_allclose(together.records["distance"][:, j], alone.records["distance"][:, 0], rtol=1e-6)
    d0 = together.records["distance"][0, :, :, 1:, 0]
    # same unit directions for every eps: initial distance scales exactly with eps
    np.testing.assert_allclose(d0[1] / d0[0], 1e4, rtol=1e-4)


def test_reference_has_zero_distance_and_perturbation_is_bounded(iris_task):
    res = run(iris_task, eta=[0.5], eps=[1e-3])
    d = res.records["distance"][0, 0]
    assert np.all(d[:, 0] == 0)
    n_weights = 4 * 10 + 10 * 3
    assert np.all(d[:, 1:, 0] > 0)
    assert np.all(d[:, 1:, 0] <= 1e-3 * n_weights)
    # U(-eps, eps) per weight: mean |delta| = eps / 2
    assert d[:, 1:, 0].mean() == pytest.approx(1e-3 * n_weights / 2, rel=0.15)


def test_biases_unperturbed_by_default():
    from gdchaos.perturb import box

    params = {"layer0": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
    members = box(jax.random.key(1), params, 0.1, n=4)
    assert np.all(members["layer0"]["bias"] == 0)
    assert np.all(members["layer0"]["kernel"][0] == 1)
    assert np.all(np.abs(members["layer0"]["kernel"][1:] - 1) <= 0.1)
    assert np.any(members["layer0"]["kernel"][1:] != 1)
    with_bias = box(jax.random.key(1), params, 0.1, n=4, include_bias=True)
    assert np.any(with_bias["layer0"]["bias"][1:] != 0)


def test_diverged_members_are_flagged_frozen_and_excluded():
    """Linear regression with η above 2/λ_max blows up; η below it converges."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(50, 3)))
    y = jnp.zeros(50)

    def loss(p, xb, yb):
        return jnp.mean((xb @ p["kernel"] - yb) ** 2)

    tmap = maps.gd(loss, x, y)
    init = lambda key: {"kernel": jax.random.normal(key, (3,))}
    res = ensemble.run(tmap, init, eta=[0.01, 50.0], eps=[1e-6], n_ic=2, n_perturb=2, steps=600,
                       key=jax.random.key(0), progress=False)
    assert not res.diverged[0].any()
    assert res.diverged[1].all()
    at = res.diverged_at[1]
    assert np.all(at > 0) and np.all(at < 600)
    loss_rec = res.records["loss"][1, 0, 0, 0]
    t = at[0, 0, 0]
    assert np.all(np.isfinite(loss_rec[:t])) and np.all(np.isnan(loss_rec[t + 1 :]))
    assert np.all(np.isnan(res.records["distance"][1, 0, 0, :, -1]))
    # before blowing up, distances grow at the exact GD rate ln|1 - η λ_max(H)|, H = 2 XᵀX / n
    lam_max = np.linalg.eigvalsh(2 * np.asarray(x).T @ np.asarray(x) / 50).max()
    fe = finite_exponents(res.records["distance"][:, :, :, 1:], starts=[0, 5], lengths=[20, 30])
    assert fe.kept[1].all()
    np.testing.assert_allclose(fe.exponent[1], np.log(abs(1 - 50.0 * lam_max)), rtol=0.03)
    # the converging η is not chaotic and its summary is not poisoned by the diverged one
    s = summarize(fe)
    assert not fe.kept[0].any() and s["rho"][0, 0] == 0
    assert s["lambda_all"][0, 0] < 0


def test_one_diverged_member_leaves_the_others_in_the_mean():
    """A map that blows up only the members whose parameter starts above 1."""

    def step(state, hyper):
        p = state.params
        new = jnp.where(p[0] > 1.0, jnp.inf, p * (1.0 + hyper["learning_rate"]))
        info = maps.StepInfo(jnp.sum(p), jnp.zeros(()), ~jnp.all(jnp.isfinite(new)))
        return state._replace(params=new, count=state.count + 1), info

    init_state = lambda params, key=None: maps.TrainState(params, (), jnp.zeros((), jnp.int32), key)
    tmap = maps.TrainingMap(init_state, step)
    init = lambda key: jnp.array([0.9995, 1.0])
    res = ensemble.run(tmap, init, eta=[1e-6], eps=[1e-2], n_ic=1, n_perturb=8, steps=5,
                       key=jax.random.key(3), progress=False)
    dead = res.diverged[0, 0, 0]
    assert dead.any() and not dead.all() and not dead[0]
    d = res.records["distance"][0, 0, 0]
    assert np.all(np.isnan(d[dead][:, 1:]))
    assert np.all(np.isfinite(d[~dead]))


def test_sgd_members_share_batches_and_runs_are_reproducible():
    from gdchaos.task import build_task

    task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd", "batch_size": 16})
    a = run(task, eta=[0.05], eps=[1e-10], steps=40)
    b = run(task, eta=[0.05], eps=[1e-10], steps=40)
    np.testing.assert_array_equal(a.records["loss"], b.records["loss"])
    # same batches for all members: at small eta the distance stays at the 1e-10 scale
    assert np.nanmax(a.records["distance"]) < 1e-6
    # the loss differs from step to step because batches differ
    assert np.ptp(a.records["loss"][0, 0, 0, 0, :5]) > 0


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"eta": []}, "eta grid is empty"),
        ({"eta": [-1.0]}, "learning rates must be > 0"),
        ({"eps": [0.0]}, "eps must be > 0"),
        ({"n_perturb": 0}, "n_perturb must be >= 1"),
        ({"distance": "l3"}, "unknown distance"),
    ],
)
def test_bad_arguments_say_the_fix(iris_task, kw, message):
    args = {"eta": [0.1], **kw}
    with pytest.raises(ConfigError, match=message):
        run(iris_task, **args)


def test_sharded_run_equals_single_device(iris_task):
    """Splitting the ic axis over devices (when several exist) changes no number."""
    devices = jax.local_devices()
    a = run(iris_task, eta=[0.5, 5.0], n_ic=2, devices=devices[:1])
    b = run(iris_task, eta=[0.5, 5.0], n_ic=2, devices=devices)
    np.testing.assert_array_equal(a.records["distance"], b.records["distance"])
