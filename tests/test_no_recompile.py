"""A second sweep with new η and ε values but the same shapes neither retraces nor recompiles."""

import jax

from gdchaos import ensemble, maps
from gdchaos.lyapunov.tangent_ensemble import run_tangent


def test_new_eta_and_eps_values_reuse_the_compiled_program(iris_task):
    traces = {"n": 0}

    def step(state, hyper):
        traces["n"] += 1  # runs only while JAX traces
        return iris_task.tmap.step(state, hyper)

    tmap = maps.TrainingMap(iris_task.tmap.init, step)
    kw = dict(n_ic=2, n_perturb=2, steps=20, key=jax.random.key(0), observe=iris_task.observe, progress=False)
    first = ensemble.run(tmap, iris_task.model.init, eta=[0.1, 1.0], eps=[1e-8], **kw)
    after_first = traces["n"]
    second = ensemble.run(tmap, iris_task.model.init, eta=[0.3, 7.0], eps=[1e-6], **kw)
    assert traces["n"] == after_first
    assert second.compile_seconds < 0.1 * first.compile_seconds
    assert (second.eta == [0.3, 7.0]).all()

    tangent_kw = dict(n_ic=2, steps=20, key=jax.random.key(0), progress=False)
    run_tangent(tmap, iris_task.model.init, eta=[0.1, 1.0], **tangent_kw)
    after_tangent = traces["n"]
    run_tangent(tmap, iris_task.model.init, eta=[0.5, 9.0], **tangent_kw)
    assert traces["n"] == after_tangent
