"""A second run with new η and ε values but the same shapes neither retraces nor recompiles.

Two independent counters: a Python side effect inside the wrapped step and observe
functions (it runs only while JAX traces them), and JAX's backend-compile events
(``jax.monitoring``), which count every XLA compilation in the process, including
the ensemble's initialization and any op-by-op dispatch. A tiny 4-3 model keeps
the test fast; shapes, not sizes, are what matter here.
"""

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.core import data

from gdchaos.engine import ensemble

from gdchaos.core import losses

from gdchaos.core import maps

from gdchaos.core import models
from gdchaos.analyses.curvature import run_sharpness
from gdchaos.analyses.lyapunov.tangent_ensemble import run_tangent

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"

# The RBG key implementation only keeps the test fast: XLA:CPU takes seconds to
# optimize every threefry draw site, which is beside the point here.
KEY = jax.random.key(0, impl="rbg")


@pytest.fixture
def backend_compiles():
    """A list that receives one entry per XLA backend compilation while the test runs."""
    events = []

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE:
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def counted():
    """A tiny Iris task whose step and observe count their traces."""
    ds = data.iris()
    net = models.mlp((4, 3))
    dtype = jnp.result_type(float)
    tmap = maps.gd(maps.supervised_loss(net.apply, losses.cross_entropy),
                   jnp.asarray(ds.x_train, dtype), jnp.asarray(ds.y_train))
    x_test, y_test = jnp.asarray(ds.x_test, dtype), jnp.asarray(ds.y_test)
    counted_map, observe, traces = _count_traces(
        tmap, lambda params: {"accuracy": losses.accuracy(net.apply(params, x_test), y_test)})
    return counted_map, observe, net.init, traces


def _count_traces(tmap, observe):
    """``tmap`` and ``observe`` wrapped to count how often JAX traces them."""
    traces = Counter()

    def step(state, hyper):
        traces["step"] += 1  # runs only while JAX traces
        return tmap.step(state, hyper)

    def counted_observe(params):
        traces["observe"] += 1
        return observe(params)

    return maps.TrainingMap(tmap.init, step), counted_observe, traces


def test_new_eta_and_eps_values_reuse_the_compiled_program(counted, backend_compiles):
    tmap, observe, init_params, traces = counted
    kw = dict(n_ic=2, n_perturb=2, steps=10, chunk=5, key=KEY, observe=observe, progress=False)
    first = ensemble.run(tmap, init_params, eta=[0.1, 1.0], eps=[1e-8], **kw)
    # The counters do see compilation: the first call traces step and observe and compiles.
    assert traces["step"] > 0 and traces["observe"] > 0
    assert len(backend_compiles) > 0
    seen, compiled = dict(traces), len(backend_compiles)

    second = ensemble.run(tmap, init_params, eta=[0.3, 7.0], eps=[1e-6], **kw)
    assert dict(traces) == seen, "a new eta/eps grid of the same shape retraced the step"
    assert len(backend_compiles) == compiled, "a new eta/eps grid of the same shape recompiled"
    assert second.compile_seconds < 0.5 * first.compile_seconds

    # ... and the new values were used: same initial conditions and directions, scaled by ε,
    # and different learning rates give different trajectories.
    assert second.eta.tolist() == [0.3, 7.0] and second.eps.tolist() == [1e-6]
    d0_first, d0_second = first.records["distance"][..., 1:, 0], second.records["distance"][..., 1:, 0]
    np.testing.assert_allclose(d0_second, 100 * d0_first, rtol=1e-5)
    np.testing.assert_array_equal(first.records["loss"][..., 0, 0], second.records["loss"][..., 0, 0])
    assert not np.allclose(first.records["loss"][..., 0, -1], second.records["loss"][..., 0, -1])


def test_new_eta_values_reuse_the_compiled_tangent_program(counted, backend_compiles):
    tmap, _, init_params, traces = counted
    kw = dict(n_ic=2, steps=10, chunk=5, key=KEY, progress=False)
    first = run_tangent(tmap, init_params, eta=[0.1, 1.0], **kw)
    assert len(backend_compiles) > 0
    seen, compiled = dict(traces), len(backend_compiles)

    second = run_tangent(tmap, init_params, eta=[0.5, 9.0], **kw)
    assert dict(traces) == seen, "a new eta grid of the same shape retraced the tangent step"
    assert len(backend_compiles) == compiled, "a new eta grid of the same shape recompiled"
    assert not np.allclose(first.exponents, second.exponents)


def test_a_second_sharpness_run_compiles_nothing(backend_compiles):
    """Same task and shapes, new η grid and L2 value: no trace, no compilation (a quadratic keeps it fast)."""
    a = jnp.array([0.5, 1.0, 3.0])
    loss = lambda p: 0.5 * jnp.sum(a * p**2)
    tmap = maps.gd(lambda p, x, y: loss(p), jnp.zeros((1, 1)), jnp.zeros(1))
    counted, observe, traces = _count_traces(tmap, lambda params: {"norm": jnp.sum(params**2)})
    init = lambda key: jax.random.normal(key, (3,))
    kw = dict(n_ic=2, steps=6, every=2, chunk=2, key=KEY, observe=observe, method="full", progress=False)
    first = run_sharpness(counted, init, loss, eta=[0.1, 1.0], hyper={"l2": 1e-3}, **kw)
    assert traces["step"] > 0 and traces["observe"] > 0 and len(backend_compiles) > 0
    seen, compiled = dict(traces), len(backend_compiles)

    second = run_sharpness(counted, init, loss, eta=[0.5, 0.7], hyper={"l2": 1e-2}, **kw)
    assert dict(traces) == seen, "a new eta grid of the same shape retraced the sharpness step"
    assert len(backend_compiles) == compiled, "a new eta grid of the same shape recompiled the sharpness programs"
    assert second.compile_seconds < 0.5 * first.compile_seconds
    # ... and the new values were used: the Hessian is diag(a) + l2, GD shrinks mode i by 1 − η(a_i + l2)
    np.testing.assert_allclose(second.records["top"][..., 0], 3.0 + 1e-2, rtol=1e-12)
    np.testing.assert_allclose(second.records["norm"][:, :, 0], first.records["norm"][:, :, 0], rtol=1e-12)  # same ICs
    assert not np.allclose(first.records["norm"][..., -1], second.records["norm"][..., -1])
