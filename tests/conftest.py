"""Test session set-up: one CPU device, float64 (the finite-ε method needs it), a headless plot backend.

All happen at import, before any test module creates an array: arrays made
before ``jax_enable_x64`` stay float32. The device count is fixed before JAX starts,
so an in-process sweep (default ``cpu_devices=auto``) cannot give a test worker more
devices depending on which test ran first; tests of the split set their own count.
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=1".strip()

import jax  # noqa: E402
import matplotlib  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "devices: needs several devices; CI runs them again on 4 fake CPU devices: "
        "XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest -m devices",
    )


TINY_SWEEP = [
    "n_ic=2",
    "n_perturb=2",
    "steps=60",
    "lyapunov.start_max=10",
    "lyapunov.length_min=20",
    "lyapunov.length_max=40",
    "progress=false",
]
"""Overrides that shrink a sweep to seconds (2 ICs × 2 members × 60 updates, a small window grid)."""

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
    from gdchaos.experiments.task import build_task

    return build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
