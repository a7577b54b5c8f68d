"""Weight diagnostics: ablation, displacement vs path, trajectory recorder, regime gallery,
post-learning ensembles, their figures, and the diagnostics example."""

import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import fast_key

from gdchaos.figures import diagnostics as dplots
from gdchaos.engine import ensemble
from gdchaos.core import perturb
from gdchaos.analyses import weights
from gdchaos.core.errors import ConfigError
from gdchaos.experiments.task import build_task

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "diagnostics_iris.py"


@pytest.fixture(scope="module")
def tiny_task():
    """Iris with a 4-3-3 sigmoid MLP and full-batch GD: small and fast to compile."""
    return build_task({"name": "iris"}, {"hidden": [3]}, {"name": "sgd"})


def test_ablation_equals_direct_recomputation(iris_task):
    task = iris_task
    x, y = task.dataset.x_train, task.dataset.y_train
    rng = np.random.default_rng(3)  # nonzero biases too, so ablating them matters
    shapes = jax.eval_shape(task.model.init, jax.random.key(0))
    params = jax.tree.map(lambda s: rng.normal(size=s.shape), shapes)
    loss = jax.jit(lambda p: task.loss_fn(p, x, y))
    imp = weights.ablation_importance(loss, params)
    assert jax.tree.structure(imp) == jax.tree.structure(params)
    base = float(loss(params))
    for layer, kind, index in [("layer0", "kernel", (0, 0)), ("layer0", "kernel", (3, 7)), ("layer1", "kernel", (9, 2)),
                               ("layer0", "bias", (4,)), ("layer1", "bias", (1,))]:
        by_hand = jax.tree.map(np.array, params)
        by_hand[layer][kind][index] = 0.0
        expected = float(loss(by_hand)) - base
        np.testing.assert_allclose(float(imp[layer][kind][index]), expected, rtol=1e-10, atol=1e-14)
    chunked = weights.ablation_importance(loss, params, relative=True, batch_size=16)
    for a, b in zip(jax.tree.leaves(chunked), jax.tree.leaves(imp)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) / base, rtol=1e-10, atol=1e-14)


def test_displacement_and_path_length_on_a_hand_made_trajectory():
    w = np.array([[2.0, 0.0, -1.0], [3.0, 1.0, -1.0], [1.0, -1.0, 1.0], [4.0, 0.5, 1.0]])
    traj = {"a": {"kernel": w.reshape(4, 1, 3)}, "b": {"bias": w[:, :2]}}
    d = weights.displacement_vs_path(traj)
    # Δw = |w(T) − w(0)| / |w(0)|: |4−2|/2, |0.5−0|/0 undefined, |1−(−1)|/1
    np.testing.assert_allclose(d.relative["a"]["kernel"][0], [1.0, np.nan, 2.0])
    # D_w = Σ |w(t) − w(t−1)|: 1+2+3, 1+2+1.5, 0+2+0
    np.testing.assert_allclose(d.path_length["a"]["kernel"][0], [6.0, 4.5, 2.0])
    np.testing.assert_allclose(d.absolute["b"]["bias"], [2.0, 0.5])
    assert d.relative["b"]["bias"].shape == (2,)
    with pytest.raises(ConfigError, match=">= 2 snapshots"):
        weights.displacement_vs_path({"w": np.ones((1, 3))})


def test_recorder_matches_stepping_by_hand(tiny_task):
    task = tiny_task
    params = _draw(lambda k: jax.vmap(task.model.init)(jax.random.split(k, 2)), jax.random.key(1))
    steps, every = 12, 4
    traj = weights.record_trajectories(task.tmap, params, {"learning_rate": 0.5}, steps, every=every)
    assert traj.loss.shape == (2, steps) and traj.weight_norm.shape == (2, steps)
    leaf = jax.tree.leaves(traj.params)[0]
    assert leaf.shape[:2] == (2, steps // every + 1)
    step = jax.jit(task.tmap.step)  # one update at a time, no scan
    for ic in range(2):
        state = task.tmap.init(jax.tree.map(lambda a: a[ic], params))
        snaps = [state.params]
        for t in range(steps):
            norm = np.sqrt(sum(float(np.sum(np.square(v))) for v in jax.tree.leaves(state.params)))
            state, info = step(state, {"learning_rate": 0.5})
            np.testing.assert_allclose(traj.loss[ic, t], info.loss, rtol=1e-12)
            np.testing.assert_allclose(traj.weight_norm[ic, t], norm, rtol=1e-12)
            if (t + 1) % every == 0:
                snaps.append(state.params)
        for s, snap in enumerate(snaps):
            for a, b in zip(jax.tree.leaves(traj.params), jax.tree.leaves(snap)):
                np.testing.assert_allclose(a[ic, s], b, rtol=1e-12)
        for a, b in zip(jax.tree.leaves(traj.final), jax.tree.leaves(state.params)):
            np.testing.assert_allclose(a[ic], b, rtol=1e-12)
    with pytest.raises(ConfigError, match="every must be a positive divisor"):
        weights.trajectory_recorder(task.tmap, 10, every=3)


def test_regime_gallery_returns_loss_and_norm_axes_per_eta(tiny_task):
    from gdchaos.figures.diagnostics import plot_regime_gallery

    gallery = weights.regime_gallery(tiny_task, (0.01, 1.0, 5.0), n_ic=2, steps=30, key=fast_key(0))
    fig = plot_regime_gallery(gallery.eta, gallery.trajectory, labels=gallery.labels, title=gallery.title)
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["η = 0.01 (monotone)", "η = 1 (edge of stability)", "η = 5 (intermittent)"]
    assert fig.axes[0].get_ylabel() == "training loss L" and fig.axes[3].get_ylabel() == "weight norm ‖θ‖₂"
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)
    assert gallery.trajectory.loss.shape == (3, 2, 30)
    # the same ICs at every η: identical loss and norm at t = 0
    np.testing.assert_allclose(gallery.trajectory.loss[:, :, 0], gallery.trajectory.loss[:1, :, 0].repeat(3, 0))
    np.testing.assert_allclose(np.asarray(fig.axes[3].get_lines()[0].get_ydata()), gallery.trajectory.weight_norm[0, 0])


def _draw(fn, key):
    """``fn(key)`` compiled with light optimization (random draws compile slowly on XLA:CPU)."""
    return ensemble.run_once(jax.jit(fn), key)[0]


def _l1(a, b):
    return sum(float(np.sum(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_post_learning_reproduces_a_direct_computation(tiny_task):
    task = tiny_task
    key, t0, steps, eta, eps, n_perturb = jax.random.key(7), 6, 5, 0.8, 1e-4, 2
    res = weights.post_learning(task.tmap, task.model.init, t0=t0, eta=[eta], eps=[eps], n_ic=2,
                                n_perturb=n_perturb, steps=steps, key=key)
    assert res.records["distance"].shape == (1, 1, 2, n_perturb + 1, steps)
    assert res.pretrain_loss.shape == (1, 2, t0)
    # By hand: draw as ensemble.run does, train t0 updates one at a time, perturb, follow the members.
    step = jax.jit(task.tmap.step)
    k_ic, k_perturb, k_batch = jax.random.split(key, 3)
    ic_keys, p_keys, b_keys = (jax.random.split(k, 2) for k in (k_ic, k_perturb, k_batch))
    hyper = {"learning_rate": eta}
    initial = _draw(jax.vmap(task.model.init), ic_keys)
    trained = []
    for ic in range(2):
        state = task.tmap.init(jax.tree.map(lambda a: a[ic], initial), b_keys[ic])
        for t in range(t0):
            state, info = step(state, hyper)
            np.testing.assert_allclose(res.pretrain_loss[0, ic, t], info.loss, rtol=1e-12)
        trained.append(state)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[s.params for s in trained])
    boxes = jax.jit(jax.vmap(lambda k, p: perturb.box(k, p, eps, n_perturb)))
    all_members, _ = ensemble.run_once(boxes, p_keys, stacked)
    for ic in range(2):
        state = trained[ic]
        members = jax.tree.map(lambda a: a[ic], all_members)
        states = [state._replace(params=jax.tree.map(lambda a: a[j], members)) for j in range(n_perturb + 1)]
        for t in range(steps):
            for j in range(n_perturb + 1):
                expected = _l1(states[j].params, states[0].params)
                np.testing.assert_allclose(res.records["distance"][0, 0, ic, j, t], expected, rtol=1e-9, atol=1e-18)
            stepped = [step(s, hyper) for s in states]
            for j, (_, info) in enumerate(stepped):
                np.testing.assert_allclose(res.records["loss"][0, 0, ic, j, t], info.loss, rtol=1e-12)
            states = [s for s, _ in stepped]
    fe = weights.post_learning_exponents(res, starts=[0], lengths=[3])
    assert fe.exponent.shape == (1, 1, 2)


def test_post_learning_argument_errors(tiny_task):
    kw = dict(eta=[0.5], eps=[1e-6], n_ic=2, n_perturb=2, steps=8, key=jax.random.key(4))
    with pytest.raises(ConfigError, match="t0 must be an integer >= 0"):
        weights.post_learning(tiny_task.tmap, tiny_task.model.init, t0=-1, **kw)
    with pytest.raises(ConfigError, match="eps must be > 0"):
        weights.post_learning(tiny_task.tmap, tiny_task.model.init, t0=3, **{**kw, "eps": [0.0]})


def test_diagnostic_figures_have_their_panels():
    importance = {"layer0": {"kernel": np.arange(12.0).reshape(4, 3) - 5, "bias": np.zeros(3)},
                  "layer1": {"kernel": np.ones((3, 2)), "bias": np.zeros(2)}}
    fig = dplots.plot_ablation(importance)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["layer0/kernel", "layer1/kernel"]
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (3, 4)  # rows: output units, columns: input units
    with pytest.raises(ConfigError, match="no 2-D leaves"):
        dplots.plot_ablation({"bias": np.zeros(3)})


def _load_example():
    spec = importlib.util.spec_from_file_location("diagnostics_iris", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diagnostics_example_writes_every_figure(tmp_path):
    summary = _load_example().main(["--quick", "--out", str(tmp_path)])
    for name in ("regime_gallery", "ablation", "displacement", "loss_acf", "kantz", "post_learning"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["quick"] is True and saved["post_learning"]["t0"] == summary["post_learning"]["t0"]
    assert np.isfinite(saved["kantz"]["exponent"])
