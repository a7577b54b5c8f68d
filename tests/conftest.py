"""Test session set-up: float64 (the finite-ε method needs it) and a headless plot backend."""

import jax
import matplotlib
import pytest

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")


@pytest.fixture(scope="session")
def iris_task():
    """The default Iris task (4-10-3 sigmoid MLP, full-batch GD)."""
    from gdchaos.task import build_task

    return build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})


SMALL_WINDOWS = {"starts": [0, 5, 10], "lengths": [20, 30, 40]}
"""A shrunk fit-window grid for short test runs (needs steps >= 51)."""
