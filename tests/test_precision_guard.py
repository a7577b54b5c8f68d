"""ε is checked against the dtype the parameters really have, not the global x64 flag."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fast_key

from gdchaos.analyses import directions

from gdchaos.engine import ensemble

from gdchaos.core import maps

from gdchaos.core import perturb

from gdchaos.analyses import weights
from gdchaos.core.errors import PrecisionError
from gdchaos.core.precision import min_resolvable_eps, require_precision

X = jnp.asarray(np.random.default_rng(0).normal(size=(12, 3)))
Y = jnp.asarray(np.arange(12) % 2)


def _flax_task(param_dtype):
    net = nn.Dense(2, param_dtype=param_dtype)
    loss = lambda p, x, y: -jnp.mean(jax.nn.log_softmax(net.apply(p, x))[jnp.arange(len(y)), y])
    return maps.gd(loss, X, Y), lambda k: net.init(k, X[:1])


def test_x64_flag_is_on_but_flax_parameters_are_float32():
    assert jnp.zeros(1).dtype == jnp.float64  # the suite runs with x64 enabled
    _, init = _flax_task(jnp.float32)
    assert jax.eval_shape(init, jax.random.key(0))["params"]["kernel"].dtype == jnp.float32


def test_ensemble_refuses_eps_below_float32_parameters():
    tmap, init = _flax_task(jnp.float32)
    with pytest.raises(PrecisionError, match=r"eps=1e-08 .*float32.*'params/kernel'.*param_dtype=jnp.float64"):
        ensemble.run(tmap, init, eta=[0.1], eps=[1e-8], n_ic=1, n_perturb=1, steps=2, key=jax.random.key(0),
                     progress=False)


def test_ensemble_runs_float64_flax_parameters():
    tmap, init = _flax_task(jnp.float64)
    res = ensemble.run(tmap, init, eta=[0.1], eps=[1e-8], n_ic=1, n_perturb=2, steps=2, key=fast_key(0),
                       progress=False)
    d0 = res.records["distance"][0, 0, 0, 1:, 0]
    assert np.all((d0 > 0) & (d0 <= 6 * 1e-8))  # 6 perturbed kernel entries, each |δ| ≤ ε


def test_float32_parameters_are_fine_at_a_resolvable_eps():
    tmap, init = _flax_task(jnp.float32)
    res = ensemble.run(tmap, init, eta=[0.1], eps=[1e-3], n_ic=1, n_perturb=1, steps=2, key=fast_key(0),
                       progress=False)
    assert np.all(res.records["distance"][0, 0, 0, 1:, 0] > 0)


def test_biases_only_checked_when_perturbed():
    params = {"kernel": jnp.zeros(3, jnp.float64), "bias": jnp.zeros(2, jnp.float32)}
    perturb.box(jax.random.key(0), params, 1e-8, 2)  # bias not perturbed: fine
    with pytest.raises(PrecisionError, match="'bias'"):
        perturb.box(jax.random.key(0), params, 1e-8, 2, include_bias=True)


def test_post_learning_and_directions_check_the_parameters():
    tmap, init = _flax_task(jnp.float32)
    with pytest.raises(PrecisionError):
        weights.post_learning(tmap, init, t0=1, eta=[0.1], eps=[1e-8], n_ic=1, n_perturb=1, steps=1,
                              key=jax.random.key(0))
    p = {"w": jnp.zeros(4, jnp.float32)}
    with pytest.raises(PrecisionError):
        directions.perturb_along(p, {"w": jnp.ones((1, 4), jnp.float32)}, 1e-9)


def test_thresholds_follow_machine_epsilon():
    assert min_resolvable_eps(jnp.float32) == pytest.approx(1e-4)
    assert min_resolvable_eps(jnp.bfloat16) == pytest.approx(1e-4 * 2.0**-7 / 2.0**-23)
    assert min_resolvable_eps(jnp.float64) == pytest.approx(1e-15)
    require_precision(1e-14, jnp.float64)
    with pytest.raises(PrecisionError, match="rounding noise even in float64"):
        require_precision(1e-17, jnp.float64)
