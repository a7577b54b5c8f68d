"""The ensemble split over 4 (fake CPU) devices gives the numbers of the one-device run (to roundoff)."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 4, jax.devices()
    from gdchaos import ensemble
    from gdchaos.lyapunov.tangent_ensemble import run_tangent
    from gdchaos.task import build_task

    task = build_task({"name": "iris"}, {"hidden": [6]}, {"name": "sgd", "batch_size": 32})
    one = jax.local_devices()[:1]
    for eta, n_ic in (([0.5, 5.0], 4), ([0.5, 2.0, 5.0, 9.0], 3)):  # split over ic, then over eta
        kw = dict(eta=eta, eps=[1e-6], n_ic=n_ic, n_perturb=2, steps=30, key=jax.random.key(0), observe=task.observe, progress=False)
        split = ensemble.run(task.tmap, task.model.init, **kw)
        blocked = ensemble.run(task.tmap, task.model.init, block=1, **kw)  # per-device blocks of one group
        alone = ensemble.run(task.tmap, task.model.init, devices=one, **kw)
        for name in split.records:
            # same numbers up to roundoff: XLA may vectorize a shard of the batch differently
            np.testing.assert_allclose(split.records[name], alone.records[name], rtol=1e-8, atol=1e-11, err_msg=name)
            np.testing.assert_allclose(blocked.records[name], alone.records[name], rtol=1e-8, atol=1e-11, err_msg=name)
        np.testing.assert_array_equal(split.diverged_at, alone.diverged_at)
        sharding = ensemble.ensemble_sharding(len(eta), n_ic)
        assert sharding is not None and len(sharding.device_set) > 1, sharding
    kw = dict(eta=[0.5, 5.0], n_ic=4, steps=20, key=jax.random.key(1), k=2, progress=False)
    a = run_tangent(task.tmap, task.model.init, devices=jax.local_devices(), **kw)
    b = run_tangent(task.tmap, task.model.init, devices=one, **kw)
    np.testing.assert_allclose(a.exponents, b.exponents, rtol=1e-12)
    print("identical")
    """
)


def test_sharded_and_single_device_runs_agree_on_four_fake_cpu_devices():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    import os

    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "identical" in out.stdout
