"""The vectorized (η, ε, ic, member) ensemble: consistency, perturbations, divergence, axes.

Most runs use the Iris task with the same sizes (2 ICs × 4 members × 20 steps), so
every shape compiles once for the whole module, and a fast-compiling RBG key:
these tests are about vectorization and bookkeeping, not particular random numbers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.engine import ensemble

from gdchaos.core import maps

from gdchaos.core import perturb

from gdchaos.experiments import results
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov import finite_exponents, summarize_exponents

from conftest import fast_key

STEPS = 20
N_IC, N_PERTURB = 2, 3
ETAS = [0.1, 2.0, 8.0]
N_PARAMS = 4 * 10 + 10 + 10 * 3 + 3  # Iris 4-10-3 MLP
N_WEIGHTS = 4 * 10 + 10 * 3
N_BIASES = N_PARAMS - N_WEIGHTS

# Vectorized and separate runs agree to float64 rounding, amplified by the chaotic
# dynamics (η = 8 is chaotic on Iris). Over 20 steps the loss agrees to 1e-12
# relative. The L1 distance is a sum of N_PARAMS differences of O(1) weights, so its
# absolute agreement is 1e-12 per parameter (relative to d ~ 1e-7 it cannot be better
# than ~1e-8: d is a difference of nearly equal numbers).
LOSS_RTOL = 1e-12
DIST_ATOL = 1e-12 * N_PARAMS


def run(task, key=None, **kw):
    args = dict(eps=[1e-8], n_ic=N_IC, n_perturb=N_PERTURB, steps=STEPS, key=fast_key(0) if key is None else key,
                observe=task.observe, progress=False)
    args.update(kw)
    return ensemble.run(task.tmap, task.model.init, **args)


def assert_same_run(a, b):
    """Records of two (η, ε) cells agree to float64 rounding."""
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=LOSS_RTOL, atol=0)
    np.testing.assert_array_equal(a["accuracy"], b["accuracy"])
    np.testing.assert_allclose(a["distance"], b["distance"], rtol=0, atol=DIST_ATOL)


EPSS = [1e-8, 1e-4]


@pytest.fixture(scope="module")
def iris_runs(iris_task):
    """One vectorized (η, ε) grid and a separate run for each of its cells (two compiled shapes)."""
    return {
        "grid": run(iris_task, eta=ETAS, eps=EPSS),
        "single": {(eta, eps): run(iris_task, eta=[eta], eps=[eps]) for eta in ETAS for eps in EPSS},
    }


# ---------------------------------------------------------------- (a), (b) vmapped axes


def cell(res, i, j):
    return {k: v[i, j] for k, v in res.records.items()}


def test_vmapped_eta_equals_separate_runs(iris_runs):
    grid = iris_runs["grid"]
    assert grid.records["distance"].shape == (3, 2, N_IC, N_PERTURB + 1, STEPS)
    np.testing.assert_array_equal(grid.eta, ETAS)
    for i, eta in enumerate(ETAS):
        alone = iris_runs["single"][eta, EPSS[0]]
        assert set(alone.records) == set(grid.records) == {"distance", "loss", "accuracy"}
        assert alone.records["distance"].shape == (1, 1, N_IC, N_PERTURB + 1, STEPS)
        assert_same_run(cell(grid, i, 0), cell(alone, 0, 0))
        np.testing.assert_array_equal(grid.diverged[i, 0], alone.diverged[0, 0])
    # the comparison can tell η values apart: their records differ by far more than the tolerance
    loss = grid.records["loss"][:, 0, :, 0, -1]
    assert np.abs(loss[0] - loss[1]).min() > 1e-3 and np.abs(loss[1] - loss[2]).min() > 1e-3
    d = grid.records["distance"][:, 0, :, 1:, -1]
    assert np.abs(d[2] - d[0]).max() > 1e3 * DIST_ATOL


def test_vmapped_eps_equals_separate_runs(iris_runs):
    grid = iris_runs["grid"]
    np.testing.assert_array_equal(grid.eps, EPSS)
    for i, eta in enumerate(ETAS):
        for j, eps in enumerate(EPSS):
            assert_same_run(cell(grid, i, j), cell(iris_runs["single"][eta, eps], 0, 0))
    # the same unit directions for every ε: the initial distance scales exactly with ε
    d0 = grid.records["distance"][:, :, :, 1:, 0]
    np.testing.assert_allclose(d0[:, 1] / d0[:, 0], 1e4, rtol=1e-6)
    d_end = grid.records["distance"][2, :, :, 1:, -1]
    assert np.abs(d_end[1] - d_end[0]).min() > 1e-6


# ---------------------------------------------------------------- (c) perturbations


def test_reference_distance_is_zero_and_the_perturbation_is_an_eps_box(iris_runs):
    eps = 1e-8
    d = iris_runs["grid"].records["distance"][:, :1]
    assert np.all(d[..., 0, :] == 0.0)  # member 0 is the reference, at every step
    d0 = d[:, 0, :, 1:, 0]
    assert np.all(d0 > 0) and np.all(d0 <= eps * N_WEIGHTS)  # weights only, |δ| ≤ ε each
    # δ ~ U(−ε, ε): E|δ| = ε/2 per weight
    assert d0[0].mean() == pytest.approx(eps * N_WEIGHTS / 2, rel=0.15)
    # the same initial conditions and perturbations for every η
    np.testing.assert_array_equal(d0[0], d0[1])
    np.testing.assert_array_equal(d0[0], d0[2])
    # perturbed members actually move apart from the reference at η = 8
    assert np.all(d[2, 0, :, 1:, -1] > 10 * d0[2])


def test_box_leaves_biases_unperturbed_unless_asked(iris_task):
    eps = 1e-3
    params = jax.jit(iris_task.model.init)(fast_key(5))
    box = jax.jit(perturb.box, static_argnums=(3, 4))
    members = box(fast_key(1), params, eps, 4, False)
    with_bias = box(fast_key(1), params, eps, 4, True)
    for layer in params:
        ref_b, ref_w = params[layer]["bias"], params[layer]["kernel"]
        assert members[layer]["bias"].shape == (5,) + ref_b.shape
        np.testing.assert_array_equal(members[layer]["bias"], np.broadcast_to(ref_b, (5,) + ref_b.shape))
        np.testing.assert_array_equal(members[layer]["kernel"][0], ref_w)
        dw = np.abs(np.asarray(members[layer]["kernel"][1:] - ref_w))
        assert dw.max() <= eps * (1 + 1e-12) and np.all(dw > 0)
        db = np.abs(np.asarray(with_bias[layer]["bias"][1:] - ref_b))
        assert db.max() <= eps * (1 + 1e-12) and np.all(db > 0)
        np.testing.assert_array_equal(with_bias[layer]["bias"][0], ref_b)
        # the same key gives the same weight directions either way
        np.testing.assert_array_equal(with_bias[layer]["kernel"], members[layer]["kernel"])


def test_include_bias_is_passed_through_the_ensemble():
    """Same key, same weight draws: include_bias adds exactly the bias perturbation to d(0)."""
    eps = 1e-3

    def init_state(params, key=None):
        return maps.TrainState(params, (), jnp.zeros((), jnp.int32), key)

    def step(state, hyper):
        new = jax.tree.map(lambda p: p * (1.0 + hyper["learning_rate"]), state.params)
        info = maps.StepInfo(jnp.zeros(()), jnp.zeros(()), jnp.zeros((), bool))
        return state._replace(params=new, count=state.count + 1), info

    tmap = maps.TrainingMap(init_state, step)
    init = lambda key: {"layer0": {"kernel": jax.random.normal(key, (3, 2)), "bias": jnp.zeros(2)}}
    kw = dict(eta=[0.1], eps=[eps], n_ic=2, n_perturb=3, steps=2, key=fast_key(4), progress=False)
    without = ensemble.run(tmap, init, **kw).records["distance"][0, 0, :, 1:, 0]
    with_bias = ensemble.run(tmap, init, include_bias=True, **kw).records["distance"][0, 0, :, 1:, 0]
    assert np.all(without > 0) and np.all(without <= 6 * eps)
    extra = with_bias - without
    assert np.all(extra > 0) and np.all(extra <= 2 * eps * (1 + 1e-9))


# ---------------------------------------------------------------- (d) divergence


def growth_map(blow_at=None):
    """θ ← (1 + η) θ exactly; with ``blow_at``, members with θ₀ > θ₁ turn to inf at that update.

    θ₀/θ₁ is invariant under the map, so who blows up is decided by the start alone.
    The loss is Σθ and the distance of a live member grows exactly as (1 + η)^t.
    """

    def init(params, key=None):
        return maps.TrainState(params, (), jnp.zeros((), jnp.int32), jax.random.key(0) if key is None else key)

    def step(state, hyper):
        p = state.params
        new = p * (1.0 + hyper["learning_rate"])
        if blow_at is not None:
            new = jnp.where((p[0] > p[1]) & (state.count >= blow_at), jnp.inf, new)
        info = maps.StepInfo(jnp.sum(p), jnp.zeros(()), ~jnp.all(jnp.isfinite(new)))
        return state._replace(params=new, count=state.count + 1), info

    return maps.TrainingMap(init, step)


def two_kinds_of_ic(key):
    """θ = (1, 1): about half the members blow up; θ = (1.5, 1): the whole group blows up."""
    return jnp.array([1.0 + 0.5 * (jax.random.uniform(key) > 0.5), 1.0])


def test_divergence_is_flagged_frozen_and_never_poisons_summaries():
    eta, blow_at, steps = 0.1, 10, 60
    res = ensemble.run(growth_map(blow_at), two_kinds_of_ic, eta=[eta], eps=[1e-3], n_ic=8, n_perturb=6,
                       steps=steps, key=fast_key(7), progress=False)
    dead, at = res.diverged[0, 0], res.diverged_at[0, 0]  # (ic, member)
    whole = dead[:, 0]  # the reference diverged: the whole group
    assert whole.any() and not whole.all(), "the key should give both kinds of IC"
    assert np.all(dead[whole])
    partial = dead[~whole]
    assert partial.any() and not partial[:, 1:].all()
    np.testing.assert_array_equal(at, np.where(dead, blow_at, -1))

    d, loss = res.records["distance"][0, 0], res.records["loss"][0, 0]
    assert np.all(np.isfinite(d[..., : blow_at + 1])) and np.all(np.isfinite(loss[..., : blow_at + 1]))
    assert np.all(np.isnan(loss[dead][:, blow_at + 1 :]))
    assert np.all(np.isnan(d[whole][..., blow_at + 1 :]))  # reference gone: every distance NaN
    assert np.all(np.isnan(d[~whole][partial][:, blow_at + 1 :]))
    alive = d[~whole][~partial]
    assert np.all(np.isfinite(alive))
    t = np.arange(steps)
    np.testing.assert_allclose(alive, alive[:, :1] * 1.1**t, rtol=1e-9)  # exact growth
    ref_loss = loss[~whole][:, 0]
    np.testing.assert_allclose(ref_loss, np.broadcast_to(2.0 * 1.1**t, ref_loss.shape), rtol=1e-12)  # the reference lives on

    # Λ = ln(1 + η) on every IC whose reference survived; NaN (never kept) on the others
    fe = finite_exponents(res.records["distance"][:, :, :, 1:], starts=[15, 20], lengths=[20, 30])
    np.testing.assert_allclose(fe.exponent[0, 0][~whole], np.log(1 + eta), rtol=1e-9)
    assert np.all(fe.kept[0, 0][~whole])
    assert np.all(np.isnan(fe.exponent[0, 0][whole])) and not fe.kept[0, 0][whole].any()
    s = summarize_exponents(fe)
    assert s["lambda_nmle"][0, 0] == pytest.approx(np.log(1 + eta), rel=1e-9)
    assert s["lambda_std"][0, 0] == pytest.approx(0.0, abs=1e-9)
    assert s["rho"][0, 0] == pytest.approx((~whole).mean())
    ds = results.to_dataset(res, fe, np.full((1, 1, 8), -1))
    assert int(ds.n_diverged[0, 0]) == dead.sum()
    assert np.isfinite(float(ds.lambda_nmle[0, 0])) and np.isfinite(float(ds.lambda_all[0, 0]))


def test_diverged_members_are_frozen_in_the_state():
    """One update of one group: a member that blows up keeps its last finite parameters."""
    tmap = growth_map(blow_at=10)
    params = jnp.array([[1.0, 1.0], [1.001, 1.0], [1.0, 1.001], [1.002, 1.0]])
    state = jax.vmap(tmap.init)(params)._replace(count=jnp.full(4, 10, jnp.int32))
    step = jax.jit(ensemble.group_step(tmap, None, "l1"))
    hyper = {"learning_rate": jnp.asarray(0.1)}
    carry, rec1 = step((state, jnp.zeros(4, bool), jnp.full(4, -1, jnp.int32)), hyper)
    new_state, dead, dead_at = carry
    assert dead.tolist() == [False, True, False, True]
    assert dead_at.tolist() == [-1, 10, -1, 10]
    np.testing.assert_array_equal(new_state.params[dead], params[dead])  # frozen, finite
    np.testing.assert_allclose(new_state.params[~dead], 1.1 * params[~dead], rtol=1e-15)
    assert np.all(np.isfinite(rec1["distance"])) and np.all(np.isfinite(rec1["loss"]))  # recorded before the update
    carry, rec2 = step(carry, hyper)
    np.testing.assert_array_equal(carry[0].params[dead], params[dead])  # still frozen
    assert carry[2].tolist() == [-1, 10, -1, 10]  # the first divergence step is kept
    assert np.all(np.isnan(rec2["distance"][dead])) and np.all(np.isnan(rec2["loss"][dead]))
    np.testing.assert_allclose(rec2["distance"][~dead], [0.0, 1.1 * 0.001], rtol=1e-9)


def test_linear_regression_blows_up_above_two_over_lambda_max():
    """GD on least squares: η·λ_max(H) > 2 diverges at the exact rate ln|1 − ηλ_max| first."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(50, 3)))
    tmap = maps.gd(lambda p, xb, yb: jnp.mean((xb @ p["kernel"] - yb) ** 2), x, jnp.zeros(50))
    init = lambda key: {"kernel": jax.random.normal(key, (3,))}
    res = ensemble.run(tmap, init, eta=[0.01, 50.0], eps=[1e-6], n_ic=2, n_perturb=2, steps=600,
                       key=fast_key(0), progress=False)
    assert not res.diverged[0].any() and np.all(res.diverged_at[0] == -1)
    assert res.diverged[1].all()
    at = res.diverged_at[1]
    assert np.all(at > 0) and np.all(at < 600)
    loss = res.records["loss"][1, 0, 0, 0]
    t = at[0, 0, 0]
    assert np.all(np.isfinite(loss[:t])) and np.all(np.isnan(loss[t + 1 :]))
    assert np.all(np.isnan(res.records["distance"][1, 0, :, :, -1]))
    lam_max = np.linalg.eigvalsh(2 * np.asarray(x).T @ np.asarray(x) / 50).max()
    fe = finite_exponents(res.records["distance"][:, :, :, 1:], starts=[0, 5], lengths=[20, 30])
    assert fe.kept[1].all()
    np.testing.assert_allclose(fe.exponent[1], np.log(abs(1 - 50.0 * lam_max)), rtol=0.03)
    s = summarize_exponents(fe)
    assert not fe.kept[0].any() and s["rho"][0, 0] == 0 and s["rho"][1, 0] == 1
    assert s["lambda_all"][0, 0] < 0  # converging: distances shrink


# ---------------------------------------------------------------- (e) shapes and axis order


def test_record_axes_are_eta_eps_ic_member_step():
    assert ensemble.AXES == ("eta", "eps", "ic", "member", "step")
    etas, epss, n_ic, n_perturb, steps = [0.1, 0.2, 0.3], [1e-3, 1e-2], 4, 4, 7
    init = lambda key: jnp.full(2, 1.0) + jax.random.uniform(key, (2,))
    res = ensemble.run(growth_map(), init, eta=etas, eps=epss, n_ic=n_ic, n_perturb=n_perturb, steps=steps,
                       key=fast_key(2), progress=False)
    shape = (3, 2, n_ic, n_perturb + 1, steps)
    assert {k: v.shape for k, v in res.records.items()} == {"distance": shape, "loss": shape}
    assert res.diverged.shape == res.diverged_at.shape == shape[:-1]
    assert res.diverged.dtype == bool and not res.diverged.any()
    d, loss = res.records["distance"], res.records["loss"]
    t = np.arange(steps)
    # eta axis: distance and loss grow as (1 + η)^t
    growth = d[..., 1:, :] / d[..., 1:, :1]
    np.testing.assert_allclose(growth, np.broadcast_to((1 + np.array(etas))[:, None, None, None, None] ** t,
                                                       growth.shape), rtol=1e-9)
    # eps axis: same directions, ten times the size
    np.testing.assert_allclose(d[:, 1, :, 1:] / d[:, 0, :, 1:], 10.0, rtol=1e-9)
    # member axis: member 0 is the reference
    assert np.all(d[:, :, :, 0] == 0) and np.all(d[:, :, :, 1:] > 0)
    # ic axis: the initial conditions differ, and do not depend on η or ε
    l0 = loss[..., 0, 0]  # (eta, eps, ic)
    assert len(np.unique(l0[0, 0])) == n_ic
    np.testing.assert_array_equal(l0, np.broadcast_to(l0[0, 0], l0.shape))
    # step axis: the reference's loss Σθ grows by (1 + η) per step
    np.testing.assert_allclose(loss[:, :, :, 0], loss[:, :, :, 0, :1] * (1 + np.array(etas))[:, None, None, None] ** t,
                               rtol=1e-12)
    np.testing.assert_array_equal(res.eta, etas)
    np.testing.assert_array_equal(res.eps, epss)


def test_chunked_scan_equals_one_scan():
    init = lambda key: jnp.full(2, 1.0) + jax.random.uniform(key, (2,))
    tmap = growth_map()
    kw = dict(eta=[0.1, 0.3], eps=[1e-3], n_ic=2, n_perturb=2, steps=20, key=fast_key(3), progress=False)
    one = ensemble.run(tmap, init, chunk=20, **kw)
    chunks = ensemble.run(tmap, init, chunk=8, **kw)  # 8 + 8 + 4
    for k in one.records:
        np.testing.assert_array_equal(one.records[k], chunks.records[k])


# ---------------------------------------------------------------- (f) SGD


def test_sgd_members_share_batches_and_runs_are_reproducible():
    """Mini-batch SGD (softmax regression on Iris, batches of 16), default threefry key."""
    from gdchaos.core import data
    from gdchaos.core import losses
    from gdchaos.core import models

    ds = data.iris()
    net = models.mlp((4, 3))
    tmap = maps.sgd(maps.supervised_loss(net.apply, losses.cross_entropy), jnp.asarray(ds.x_train),
                    jnp.asarray(ds.y_train), batch_size=16)
    kw = dict(eta=[0.01], eps=[1e-10], n_ic=2, n_perturb=3, steps=STEPS, progress=False)
    a = ensemble.run(tmap, net.init, key=jax.random.key(0), **kw)
    b = ensemble.run(tmap, net.init, key=jax.random.key(0), **kw)
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])
    c = ensemble.run(tmap, net.init, key=jax.random.key(1), **kw)
    assert not np.allclose(a.records["loss"], c.records["loss"])
    loss = a.records["loss"][0, 0]  # (ic, member, step)
    # the batch changes from step to step ...
    assert np.ptp(loss[:, 0], axis=-1).min() > 1e-2
    # ... but every member of an IC sees the same one: losses agree to the ε scale
    np.testing.assert_allclose(loss[:, 1:], np.broadcast_to(loss[:, :1], loss[:, 1:].shape), rtol=1e-7)
    # and at small η the distance stays at the ε scale (different batches would give ~η·|∇L|)
    d = a.records["distance"][0, 0, :, 1:]
    assert np.all(d <= 1e-10 * 15 * 10) and np.all(d > 0)
    assert not a.diverged.any()


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"eta": []}, "eta grid is empty; give at least one learning rate"),
        ({"eta": [0.1, -1.0]}, r"learning rates must be > 0; got \[0.1, -1.0\]"),
        ({"eps": [0.0]}, r"eps must be > 0; got \[0.0\]"),
        ({"eps": [-1e-8]}, "eps must be > 0"),
        ({"n_perturb": 0}, "n_perturb must be >= 1; got 0"),
        ({"n_ic": 0}, "n_ic must be >= 1"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"distance": "l3"}, "unknown distance 'l3'; choose one of"),
    ],
)
def test_bad_arguments_say_the_fix(iris_task, kw, message):
    args = {"eta": [0.1], **kw}
    with pytest.raises(ConfigError, match=message):
        run(iris_task, **args)


@pytest.mark.devices
@pytest.mark.skipif(jax.local_device_count() < 4,
                    reason="needs 4 devices: XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest -m devices")
def test_sharded_run_equals_single_device(iris_task, tmp_path, monkeypatch):
    """Same layout (4 devices, same blocks): bitwise, also when resumed after a crash. Across
    layouts (1 vs 4 devices, blocks of 1 vs auto): the stated tolerance (test_sharding.LAYOUT_RTOL)."""
    from gdchaos.engine.checkpoint import Checkpoint
    from test_sharding import assert_layouts_agree

    devices = jax.local_devices()
    kw = dict(eta=ETAS, eps=EPSS, n_ic=4, chunk=10)
    assert len(ensemble.ensemble_sharding(len(ETAS), 4, devices).device_set) == 4  # the ic axis over all 4
    alone = run(iris_task, devices=devices[:1], **kw)
    split = run(iris_task, devices=devices, **kw)
    blocked = run(iris_task, devices=devices, block=1, **kw)
    again = run(iris_task, devices=devices, **kw)  # the same layout again: bitwise
    for name in split.records:
        np.testing.assert_array_equal(again.records[name], split.records[name], err_msg=name)

    class Crash(Exception):
        pass

    save = Checkpoint.save

    def save_then_crash(self, index, carry, records):
        save(self, index, carry, records)
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(Checkpoint, "save", save_then_crash)
        with pytest.raises(Crash):
            run(iris_task, devices=devices, checkpoint=tmp_path, **kw)
    assert (tmp_path / "records_00000.npz").exists() and not (tmp_path / "records_00001.npz").exists()
    resumed = run(iris_task, devices=devices, checkpoint=tmp_path, **kw)  # resumed on the same layout: bitwise
    for name in split.records:
        np.testing.assert_array_equal(resumed.records[name], split.records[name], err_msg=name)
    np.testing.assert_array_equal(resumed.diverged_at, split.diverged_at)

    assert_layouts_agree(split.records, alone.records, split.diverged_at, alone.diverged_at)
    assert_layouts_agree(blocked.records, alone.records, blocked.diverged_at, alone.diverged_at)


def test_final_state_continues_the_run():
    """run(steps=20) equals run(steps=12) continued for 8 updates from its final_state with advance()."""
    import jax.numpy as jnp

    from gdchaos.core import maps

    a = jnp.array([0.5, 2.5])
    tmap = maps.gd(lambda p, x, y: 0.5 * jnp.sum(a * jnp.sin(p) ** 2), jnp.zeros((1, 2)), jnp.zeros(1))
    init = lambda key: jax.random.normal(key, (2,))
    kw = dict(eta=[0.5, 1.5], eps=[1e-6], n_ic=2, n_perturb=2, key=jax.random.key(0), progress=False)
    whole = ensemble.run(tmap, init, steps=20, **kw)
    part = ensemble.run(tmap, init, steps=12, **kw)
    hyper = ensemble.eta_hyper(jnp.asarray([0.5, 1.5]), None)
    carry, records, _, _ = ensemble.advance(tmap, part.final_state, hyper, n_ic=2, steps=8, progress=False)
    np.testing.assert_allclose(records["distance"], whole.records["distance"][..., 12:], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.asarray(carry.state.params), np.asarray(whole.final_state.state.params), rtol=1e-12)
