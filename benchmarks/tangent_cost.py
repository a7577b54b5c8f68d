"""Cost of a tangent (Lyapunov) step with k vectors vs a plain training step.

    python benchmarks/tangent_cost.py [--quick] [--append benchmarks/README.md]

Both are vmapped over the same (η × ic) ensemble and timed in this one run after
compilation; the ratio is (time per tangent step) / (time per plain step). Memory:
the tangent state holds k parameter-sized vectors; no N×N Jacobian is built.
"""

from __future__ import annotations

import sys
import time

from _common import emit, setup, table

ARGS = setup(sys.argv[1:], default_devices="1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gdchaos.lyapunov.tangent import tangent_map  # noqa: E402
from gdchaos.models import count_params  # noqa: E402
from gdchaos.task import build_task  # noqa: E402

CASES = {
    # name: (data, model, (n_eta, n_ic) full, quick)
    "iris 4-10-3": ({"name": "iris"}, {"hidden": [10]}, (20, 10), (4, 4)),
    "digits 64-64-10": ({"name": "digits"}, {"hidden": [64], "activation": "tanh"}, (4, 4), (2, 2)),
}


def time_scan(step, state, hyper, steps, repeats=2):
    run = jax.jit(lambda s: jax.lax.scan(lambda c, _: (step(c, hyper)[0], None), s, None, length=steps)[0])
    jax.block_until_ready(run(state))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state))
        best = min(best, time.perf_counter() - t0)
    return best / steps


def main():
    jax.config.update("jax_enable_x64", ARGS.dtype == "float64")
    steps = 10 if ARGS.quick else 30
    rows = []
    for name, (data_cfg, model_cfg, full, quick) in CASES.items():
        n_eta, n_ic = quick if ARGS.quick else full
        task = build_task(data_cfg, model_cfg, {"name": "sgd"})
        params = jax.vmap(task.model.init)(jax.random.split(jax.random.key(0), n_eta * n_ic))
        states = jax.vmap(task.tmap.init)(params)
        hyper = {"learning_rate": 0.5}
        plain = time_scan(jax.vmap(task.tmap.step, in_axes=(0, None)), states, hyper, steps)
        n = count_params(jax.tree.map(lambda a: a[0], params))
        for k in (1, 8, 32):
            lmap = tangent_map(task.tmap.step, k)
            lstates = jax.vmap(lmap.init)(states, jax.random.split(jax.random.key(1), n_eta * n_ic))
            tangent = time_scan(jax.vmap(lmap.step, in_axes=(0, None)), lstates, hyper, steps)
            rows.append([name, n, k, f"{n_eta}×{n_ic}", plain * 1e3, tangent * 1e3, tangent / plain])
            print(rows[-1], flush=True)
    header = ["model", "params", "k", "ensemble η×ic", "plain step ms", "tangent step ms", "ratio"]
    emit("Tangent step cost vs plain training step", table(header, rows), ARGS.append)


if __name__ == "__main__":
    main()
