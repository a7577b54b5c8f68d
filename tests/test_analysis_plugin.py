"""Analyses and optimizers as plug-ins: this file registers its own and runs them through ``python -m gdchaos.sweep``.

``plugins=[test_analysis_plugin]`` makes the sweep import this module, which registers the
analysis ``final_loss`` (with its config, summary column and figure) and the optimizer
``halved_sgd``; nothing else in gdchaos knows about either.
"""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from gdchaos.core.errors import ConfigError, check
from gdchaos.experiments import registry, results
from gdchaos.experiments.optimizers import optimizer, optimizer_names, register_optimizer
from gdchaos.experiments.registry import Analysis, register_analysis
from gdchaos.experiments.task import build_task
from gdchaos.figures.base import subplots

HERE = pathlib.Path(__file__).parent


def run(task, grid, cfg):
    """Training loss after ``grid.steps`` updates from ``grid.n_ic`` initial conditions, per η."""
    params0 = jax.vmap(task.model.init)(jax.random.split(jax.random.key(grid.seed), grid.n_ic))

    def final_loss(eta, params):
        def body(state, _):
            return task.tmap.step(state, {**task.hyper, "learning_rate": eta})[0], None

        state, _ = jax.lax.scan(body, task.tmap.init(params), None, length=grid.steps)
        return task.train_loss(state.params)

    loss = np.asarray(jax.jit(jax.vmap(jax.vmap(final_loss, (None, 0)), (0, None)))(jnp.asarray(grid.eta), params0))
    return results.dataset(
        {"final_loss": (("eta", "ic"), loss), "final_loss_mean": (("eta",), loss.mean(axis=1))},
        {"eta": grid.eta, "ic": np.arange(grid.n_ic)},
        {**grid.attrs, "final_loss_scale": cfg.final_loss.scale},
        {"final_loss": "training loss after the last update"},
    )


def validate(cfg):
    check(cfg.final_loss.scale > 0, f"final_loss.scale must be > 0; got {cfg.final_loss.scale}")


def figures(ds, etas=None):
    fig, ax = subplots(figsize=(3, 2))
    ax.plot(ds.eta, ds.final_loss_mean, "o-")
    return {"final_loss.png": fig}


ANALYSIS = register_analysis(Analysis(
    "final_loss", run, summary=("final_loss_mean",), figures=figures, validate=validate,
    config={"steps": 20, "n_ic": 3, "precision": "float64", "final_loss": {"scale": 1.0}},
), overwrite=True)

register_optimizer("halved_sgd", lambda learning_rate: optax.sgd(learning_rate / 2), overwrite=True)


def sweep(tmp_path, *overrides, check_rc=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "gdchaos.sweep", "plugins=[test_analysis_plugin]", "progress=false",
                          "cpu_devices=1", f"hydra.run.dir={tmp_path}", *overrides],
                         capture_output=True, text=True, env=env, cwd=tmp_path.parent, timeout=300)
    if check_rc:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_an_analysis_registered_here_runs_through_the_sweep_into_results_and_a_figure(tmp_path):
    out_dir = tmp_path / "run"
    sweep(out_dir, "analysis=final_loss", "eta=0.05,0.5", "optimizer.name=halved_sgd")
    ds = results.load(out_dir)
    assert ds.attrs["analysis"] == "final_loss" and ds.final_loss.shape == (2, 3)
    table = pd.read_csv(out_dir / "summary.csv")
    assert list(table.columns) == ["eta", "n_ic", "final_loss_mean"]
    assert (out_dir / "figures" / "final_loss.png").read_bytes()[:4] == b"\x89PNG"
    # halved_sgd at η is plain GD at η/2: the same final losses, computed here without the sweep
    task = build_task({"name": "iris", "n_test": 30, "split_seed": 0}, {"hidden": [10], "init": "normal"}, {"name": "sgd"})
    params0 = jax.vmap(task.model.init)(jax.random.split(jax.random.key(0), 3))
    for i, eta in enumerate((0.05, 0.5)):
        p = params0
        grad = jax.vmap(jax.grad(task.train_loss))
        for _ in range(20):
            p = jax.tree.map(lambda w, g: w - eta / 2 * g, p, grad(p))
        np.testing.assert_allclose(ds.final_loss.values[i], jax.vmap(task.train_loss)(p), rtol=1e-10)


def test_a_plugin_validates_its_own_settings_in_one_line(tmp_path):
    out = sweep(tmp_path / "bad", "analysis=final_loss", "final_loss.scale=-1", check_rc=False)
    assert out.returncode == 2 and out.stderr.strip() == "gdchaos.sweep: error: final_loss.scale must be > 0; got -1"
    assert not (tmp_path / "bad").exists()  # refused before Hydra made the run directory


def test_unknown_names_and_the_old_method_key_are_one_line_errors():
    from gdchaos.sweep import precheck

    with pytest.raises(ConfigError, match="analysis/nope"):
        precheck(["analysis=nope"])
    with pytest.raises(ConfigError, match="unknown optimizer 'nope'"):
        build_task({"name": "iris"}, {"hidden": [2]}, {"name": "nope"})
    with pytest.raises(ConfigError, match="use analysis=tangent"):
        precheck(["method=tangent"])
    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        precheck(["plugins=[no_such_module]"])


def test_registries_refuse_a_second_registration_without_overwrite():
    with pytest.raises(ConfigError, match="already registered"):
        register_analysis(Analysis("final_loss", run))
    with pytest.raises(ConfigError, match="already registered"):
        register_optimizer("adam", optax.adam)
    with pytest.raises(ConfigError, match="shipped config"):
        register_analysis(Analysis("finite", run, config={"steps": 1}), overwrite=True)
    assert {"finite", "tangent", "both", "sharpness", "final_loss"} <= set(registry.analysis_names())
    assert {"sgd", "adam", "cgd", "halved_sgd"} <= set(optimizer_names())


def test_cgd_by_name_prunes_the_chaotic_directions_of_a_quadratic():
    """On L = ½ Σ a_i p_i² with η = 1, directions with a_i < 0 or a_i > 2 are chaotic (|1 − η a_i| > 1) and frozen."""
    a = jnp.array([-1.0, 0.5, 3.0])
    loss = lambda p: 0.5 * jnp.sum(a * p**2)
    alias = optimizer("cgd", loss=loss, options={"which": "chaotic", "base": "sgd"})
    tx = alias(1.0)
    p = jnp.ones(3)
    updates, _ = tx.update(jax.grad(loss)(p), tx.init(p), p)
    np.testing.assert_allclose(p + updates, [1.0, 1.0 - 0.5, 1.0], atol=1e-6)  # only the stable a = 0.5 moves
    with pytest.raises(ConfigError, match="takes no options"):
        optimizer("adam", options={"which": "chaotic"})


def test_an_analysis_without_summary_columns_still_saves(tmp_path):
    """summary=() must not stop results.nc from being written (the table then lists the η grid)."""
    register_analysis(Analysis("no_summary", run), overwrite=True)
    ds = results.dataset({"x": (("eta",), [1.0, 2.0])}, {"eta": [0.1, 1.0]}, {"analysis": "no_summary"})
    results.save(ds, tmp_path)
    assert results.load(tmp_path).x.values.tolist() == [1.0, 2.0]
    assert pd.read_csv(tmp_path / "summary.csv").eta.tolist() == [0.1, 1.0]
