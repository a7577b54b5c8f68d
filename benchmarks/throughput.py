"""Member-steps per second: gdchaos's vectorized ensemble vs a sequential per-step loop.

    python benchmarks/throughput.py [--quick] [--dtype float32|float64|both] [--append benchmarks/README.md]

(a) gdchaos: η × ic × member trajectories advance in one compiled, chunked scan
    (``gdchaos.ensemble.run``, with test accuracy and distances recorded per step).
(b) sequential: the reference pipelines' shape — one trajectory after another, one
    Python-dispatched jitted step at a time, recording loss, test accuracy and the
    distance to its reference each step. Timed on a subset and reported per member-step.
Both are measured in this one run, on the same machine, after compilation.
"""

from __future__ import annotations

import sys
import time

from _common import emit, peak_rss_mb, setup, table

ARGS = setup(sys.argv[1:])

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gdchaos import ensemble  # noqa: E402
from gdchaos.perturb import l1_distance  # noqa: E402
from gdchaos.task import build_task  # noqa: E402

ASSUMED_PEAK = {"float32": 2 * 3.0e9 * 32, "float64": 2 * 3.0e9 * 16}
"""CPU peak FLOP/s assumed: 2 cores × 3.0 GHz × (32 f32 | 16 f64) FLOP/cycle (two AVX2 FMA units)."""

CASES = {
    # name: (data cfg, model cfg, (n_eta, n_ic, n_perturb, steps) full, quick, sequential (n_traj, steps))
    "iris 4-10-3": ({"name": "iris"}, {"hidden": [10]}, (20, 50, 5, 1000), (20, 10, 5, 200), (3, 300)),
    "digits 64-64-10": ({"name": "digits"}, {"hidden": [64], "activation": "tanh"}, (8, 10, 5, 200), (4, 4, 3, 50), (3, 100)),
    "mnist-shaped 784-64-10 (60k)": (
        {"name": "synthetic", "n_samples": 75000, "n_features": 784, "n_classes": 10, "n_test": 15000},
        {"hidden": [64], "activation": "tanh"},
        (2, 2, 1, 10),
        (1, 2, 1, 4),
        (1, 4),
    ),
}


def sequential_rate(task, n_traj: int, steps: int) -> float:
    """Member-steps/s of one-trajectory-at-a-time training with a per-step Python loop."""
    step = jax.jit(lambda s: task.tmap.step(s, {"learning_rate": 0.5, **task.hyper}))
    observe = jax.jit(task.observe)
    distance = jax.jit(l1_distance)
    params0 = task.model.init(jax.random.key(0))
    state = task.tmap.init(params0)
    ref = [params0]
    for _ in range(steps):  # the reference trajectory, stored (as the reference code does)
        state, _ = step(state)
        ref.append(state.params)
    jax.block_until_ready(ref[-1])
    start = time.perf_counter()
    for j in range(n_traj):
        params = jax.tree.map(lambda a: a + 1e-8 * (j + 1), params0)
        state = task.tmap.init(params)
        for t in range(steps):
            loss = float(step(state)[1].loss)  # host read per step, as a logging loop does
            acc = float(observe(state.params)["accuracy"])
            dist = float(distance(state.params, ref[t]))
            state, _ = step(state)
    elapsed = time.perf_counter() - start
    del loss, acc, dist
    return n_traj * steps / elapsed


def flops_per_member_step(task) -> float:
    sizes = [p.shape for p in jax.tree.leaves(task.model.init(jax.random.key(0)))]
    n_params = sum(int(np.prod(s)) for s in sizes)
    n_train, n_test = len(task.dataset.x_train), len(task.dataset.x_test)
    return 6.0 * n_train * n_params + 2.0 * n_test * n_params


def main():
    dtypes = ["float32", "float64"] if ARGS.dtype == "both" else [ARGS.dtype]
    rows = []
    for dtype in dtypes:
        jax.config.update("jax_enable_x64", dtype == "float64")
        for name, (data_cfg, model_cfg, full, quick, seq) in CASES.items():
            task = build_task(data_cfg, model_cfg, {"name": "sgd"})
            n_eta, n_ic, n_perturb, steps = quick if ARGS.quick else full
            res = ensemble.run(task.tmap, task.model.init, eta=np.linspace(0.1, 5.0, n_eta), eps=[1e-3],
                               n_ic=n_ic, n_perturb=n_perturb, steps=steps, key=jax.random.key(0),
                               observe=task.observe, hyper=task.hyper, progress=False)
            members = n_eta * n_ic * (n_perturb + 1)
            vec = members * steps / res.run_seconds
            seq_rate = sequential_rate(task, *seq)
            flops = flops_per_member_step(task) * vec
            rows.append([name, dtype, f"{n_eta}×{n_ic}×{n_perturb + 1}×{steps}", res.compile_seconds,
                         res.run_seconds, vec, seq_rate, vec / seq_rate, flops / 1e9,
                         flops / ASSUMED_PEAK[dtype]])
            print(rows[-1], flush=True)
    header = ["case", "dtype", "η×ic×member×steps", "compile s", "run s", "gdchaos member-steps/s",
              "sequential member-steps/s", "ratio", "achieved GFLOP/s", "fraction of assumed peak"]
    note = (f"\n\nAssumed CPU peak: 2 cores × 3.0 GHz × 32 (f32) / 16 (f64) FLOP/cycle. "
            f"FLOPs counted as 6·n_train·params + 2·n_test·params per member-step. "
            f"Peak host RSS: {peak_rss_mb():.0f} MB. Devices: {jax.device_count()}.")
    emit("Throughput: vectorized ensemble vs sequential per-step loop", table(header, rows) + note, ARGS.append)


if __name__ == "__main__":
    main()
