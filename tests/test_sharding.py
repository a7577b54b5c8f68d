"""Several devices: the ensemble split over 4 (fake CPU) devices computes what one device computes.

What is guaranteed (README, "Scaling up"): bitwise equality on the same layout (device
count, block size, IC slices, process count), e.g. a rerun or a resumed run; across
layouts the same arithmetic is vectorized differently, so results differ by float64
roundoff amplified by the dynamics. Over the 20-30 updates of these runs that is within
:data:`LAYOUT_RTOL`: distances to 1e-5 relative (they are differences of nearly equal
trajectories, so their relative error is about 10-100 u/eps, 1e-7 at eps = 1e-8 with
u = 1.1e-16), losses to 1e-9, accuracies and divergence flags exactly.

These tests need 4 devices; CI runs them with
``XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest -m devices``.
"""

import jax
import numpy as np
import pytest

from gdchaos.engine import ensemble
from gdchaos.analyses.lyapunov.tangent_ensemble import run_tangent
from gdchaos.experiments.task import build_task

NEEDS_4 = pytest.mark.skipif(
    jax.local_device_count() < 4,
    reason="needs 4 devices: XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest -m devices",
)
pytestmark = [pytest.mark.devices, NEEDS_4]

LAYOUT_RTOL = {"distance": 1e-5, "loss": 1e-9, "accuracy": 0.0}
"""Relative tolerance per record across layouts (devices, blocks, IC slices, processes) for runs
of <= 30 updates; records not named here must agree exactly."""
RESULTS_RTOL, RESULTS_ATOL = 1e-5, 1e-9
"""Other float fields of a results file across layouts (exponents, R², λ_nMLE, ⟨τ⟩): fits of
the distances, so as close as they; ``atol`` for values near 0 (an exponent of a flat run)."""
TANGENT_RTOL = 1e-9
"""Tangent exponents (time averages of ln|R_ii|) across layouts."""


def assert_layouts_agree(records, reference, diverged_at=None, reference_diverged_at=None):
    """Records of one run on two layouts agree to :data:`LAYOUT_RTOL` (zeros, e.g. the reference member's distance, exactly)."""
    assert set(records) == set(reference)
    for name in reference:
        np.testing.assert_allclose(records[name], reference[name], rtol=LAYOUT_RTOL.get(name, 0.0), atol=0, err_msg=name)
    if diverged_at is not None:
        np.testing.assert_array_equal(diverged_at, reference_diverged_at)


def test_mini_batch_sgd_split_over_eta_agrees_with_one_device():
    """One IC per η: the η axis is split over 4 devices; mini-batch draws (threefry, as the sweep) follow."""
    task = build_task({"name": "iris"}, {"hidden": [6]}, {"name": "sgd", "batch_size": 32})
    devices = jax.local_devices()
    kw = dict(eta=[0.5, 2.0, 5.0, 9.0], eps=[1e-8], n_ic=1, n_perturb=2, steps=30, chunk=10,
              key=jax.random.key(0), observe=task.observe, progress=False)
    sharding = ensemble.ensemble_sharding(4, 1, devices)
    assert sharding is not None and len(sharding.device_set) == 4 and sharding.spec[0] == "ensemble", sharding
    split = ensemble.run(task.tmap, task.model.init, devices=devices, **kw)
    alone = ensemble.run(task.tmap, task.model.init, devices=devices[:1], **kw)
    assert_layouts_agree(split.records, alone.records, split.diverged_at, alone.diverged_at)
    assert np.all(split.records["distance"][..., 1:, -1] > 0)


def test_tangent_exponents_on_four_devices_agree_with_one():
    task = build_task({"name": "iris"}, {"hidden": [6]}, {"name": "sgd"})
    devices = jax.local_devices()
    kw = dict(eta=[0.5, 5.0], n_ic=4, steps=20, key=jax.random.key(1), k=2, progress=False)
    split = run_tangent(task.tmap, task.model.init, devices=devices, **kw)
    alone = run_tangent(task.tmap, task.model.init, devices=devices[:1], **kw)
    assert np.all(np.isfinite(alone.exponents))
    np.testing.assert_allclose(split.exponents, alone.exponents, rtol=TANGENT_RTOL, atol=0)
