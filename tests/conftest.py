"""Test session set-up: float64 (the finite-ε method needs it) and a headless plot backend.

Both happen at import, before any test module creates an array: arrays made
before ``jax_enable_x64`` stay float32.
"""

import jax
import matplotlib
import pytest

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")

SMALL_WINDOWS = {"starts": [0, 5, 10], "lengths": [20, 30, 40]}
"""A shrunk fit-window grid for short test runs (needs steps >= 51)."""


def fast_key(seed: int = 0):
    """A PRNG key whose random draws compile fast on XLA:CPU.

    XLA:CPU spends about a second optimizing every threefry draw site, which
    dominates short ensemble runs; the RBG implementation compiles in a fraction of
    that. Use it where the test is about vectorization or bookkeeping, not about
    particular random numbers.
    """
    return jax.random.key(seed, impl="rbg")


@pytest.fixture(scope="session")
def iris_task():
    """The default Iris task (4-10-3 sigmoid MLP, full-batch GD, 120/30 split)."""
    from gdchaos.task import build_task

    return build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
