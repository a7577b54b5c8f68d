"""Blocked group scans, device splits and data-as-arguments compile the same mathematics."""

import gc
import importlib
import pkgutil
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdchaos
from gdchaos.engine import ensemble
from gdchaos.engine import programs
from gdchaos.experiments.task import build_task

from conftest import fast_key


def linear_one(x, h):
    """x_{t+1} = a x_t + b per group, recording x_t: x_t = a^t x_0 + b (a^t − 1)/(a − 1)."""
    return h["a"] * x + h["b"], {"x": x}


@pytest.mark.parametrize("block", [None, 1, 2, 5, 7, 100])
def test_group_scan_is_exact_on_a_linear_map_for_every_block_size(block):
    x0 = jnp.arange(2 * 3 * 5.0).reshape(2, 3, 5) / 10  # (eta, ic, member)
    hyper = {"a": jnp.array([0.5, 2.0]), "b": jnp.array([1.0, -1.0])}
    advance = programs.group_scan(linear_one, 4, n_axes=2, block=block)
    x, rec = jax.jit(advance)(x0, hyper)
    a, b = np.array([0.5, 2.0])[:, None, None], np.array([1.0, -1.0])[:, None, None]
    t = np.arange(4)[:, None, None, None]
    expected = a ** t * np.asarray(x0) + b * (a ** t - 1) / (a - 1)
    assert rec["x"].shape == (4, 2, 3, 5)
    np.testing.assert_allclose(rec["x"], expected, rtol=1e-12)
    np.testing.assert_allclose(x, a ** 4 * np.asarray(x0) + b * (a ** 4 - 1) / (a - 1), rtol=1e-12)


def test_blocked_iris_ensemble_matches_the_whole_width_one():
    task = build_task({"name": "iris"}, {"hidden": [5]}, {"name": "sgd"})
    kw = dict(eta=[0.05, 0.2, 0.5], eps=[1e-4, 1e-6], n_ic=3, n_perturb=2, steps=40, chunk=15,
              key=fast_key(), observe=task.observe, progress=False)
    whole = ensemble.run(task.tmap, task.model.init, block=None, **kw)
    for block in (1, 7):  # 18 (eta, eps, ic) groups: a divisor and not (roundoff only: non-chaotic eta)
        blocked = ensemble.run(task.tmap, task.model.init, block=block, **kw)
        for name in whole.records:
            np.testing.assert_allclose(blocked.records[name], whole.records[name], rtol=1e-7, atol=1e-12, err_msg=name)


def test_closed_over_data_become_program_arguments_not_constants():
    data = jnp.linspace(0.0, 1.0, 400_000)

    def fn(w):
        return jnp.sum(jnp.tanh(data * w)), w + 1

    call, seconds = programs.compile_program(fn, jnp.asarray(0.5))
    out = call(jnp.asarray(0.5))
    np.testing.assert_allclose(out[0], jnp.sum(jnp.tanh(data * 0.5)), rtol=1e-5)
    assert float(out[1]) == 1.5 and seconds > 0
    hlo = call.compiled.as_text()
    assert len(hlo) < 50_000, "the 400k-element array was embedded in the program"
    assert any(c.shape == data.shape for c in call.consts)
    # cached per function and input signature: no second compilation
    again, seconds_again = programs.compile_program(fn, jnp.asarray(2.0))
    assert again is call and seconds_again == 0.0


def test_choose_block_sizes_blocks_to_the_working_set_and_leaves_accelerators_whole():
    one = linear_one
    carry = jnp.zeros((4, 50, 1000))  # 200 groups of 1000 float32 members
    hyper = {"a": jnp.ones(4), "b": jnp.ones(4)}
    assert programs.choose_block(one, carry, hyper, 2, platform="gpu") is None
    per_group = programs.intermediate_bytes(jax.make_jaxpr(one)(jnp.zeros(1000), {"a": 1.0, "b": 1.0}).jaxpr)
    assert per_group >= 2 * 4000  # a·x and a·x + b
    expected = programs.WORKING_SET_BYTES // per_group
    block = programs.choose_block(one, carry, hyper, 2, platform="cpu")
    assert block == (None if expected >= 200 else expected)
    big = jax.ShapeDtypeStruct((4, 50, 4_000_000), jnp.float32)  # one group's intermediates exceed the working set
    assert programs.choose_block(one, big, hyper, 2, platform="cpu") == 1


def test_program_caches_are_bounded_and_release_the_data_of_evicted_steps():
    """Each step closes over its own 'training set'. After CACHE_SIZE newer steps have gone
    through the whole compile path of ``drive`` (choose_block, group_scan, compile_program),
    nothing of gdchaos's keeps the first one's data alive; the newest is still cached."""
    carry, hyper = jnp.zeros((2, 3)), {"a": jnp.array([0.5, 2.0])}
    first_data, newest = None, None
    for i in range(programs.CACHE_SIZE + 1):
        data = jnp.full(1000, float(i))

        def one(x, h, data=data):
            return h["a"] * x + jnp.mean(data), {"x": x}

        block = programs.choose_block(one, carry, hyper, 2, platform="cpu")
        call, _ = programs.compile_program(programs.group_scan(one, 3, 2, block), carry, hyper)
        assert float(call(carry, hyper)[0][0, 0]) == 1.75 * i  # x ← x/2 + i, three times from 0
        if i == 0:
            first_data = weakref.ref(data)
        newest = (one, block)
        del data, one, call
    gc.collect()
    assert first_data() is None, "a program cache keeps the data of an evicted step alive"
    one, block = newest
    assert programs.compile_program(programs.group_scan(one, 3, 2, block), carry, hyper)[1] == 0.0  # still cached


def test_every_lru_cache_in_gdchaos_is_bounded():
    """Caches keyed on training maps and losses hold their datasets: none may grow without bound."""
    caches = {}
    for info in pkgutil.walk_packages(gdchaos.__path__, "gdchaos."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if callable(getattr(obj, "cache_info", None)) and getattr(obj, "__module__", None) == info.name:
                caches[f"{info.name}.{name}"] = obj.cache_info().maxsize
    assert "gdchaos.engine.programs.group_scan" in caches and "gdchaos.analyses.curvature.tracking._programs" in caches
    unbounded = {name: size for name, size in caches.items() if size is None or size > 32}
    assert not unbounded, f"unbounded or large caches: {unbounded}"
