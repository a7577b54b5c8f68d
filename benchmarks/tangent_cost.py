"""Cost of a tangent (Lyapunov) step with k vectors vs a plain training step; tangent vs finite-ε on Iris.

    python benchmarks/tangent_cost.py [--quick] [--no-compare] [--append benchmarks/README.md]

Part 1 (precision from --dtype, default float32, the TPU path): for the Iris MLP
(4-10-3) and a digits MLP (64-64-10, tanh), one step of the plain training map and one
step of its tangent map with k = 1, 8, 32 tangent vectors, each vmapped over an
(η × ic) ensemble (20 × 10; --quick: 4 × 4) and on a single trajectory, all timed in
this one run after compilation (best of 3 scans). The ratio is (time per tangent
step) / (time per plain step) of the same ensemble. Memory: the tangent state holds k
state-sized vectors; no N×N Jacobian is built.

Part 2 (float64, ε = 1e-8; skipped with --no-compare): on Iris at η = 1, 4, 8, 16,
the finite-ε λ_nMLE (best-R² window per IC) beside the tangent λ_max of the same
initial conditions: averaged over Λ's own fit windows, over the first 100 updates,
and over the whole run.
"""

from __future__ import annotations

import sys
import time

from _common import emit, setup, table

ARGS = setup(
    sys.argv[1:],
    default_devices="1",
    default_dtype="float32",
    extra=lambda p: p.add_argument("--no-compare", action="store_true", help="skip the tangent vs finite-ε part"),
)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gdchaos.analyses.lyapunov.tangent import tangent_map  # noqa: E402
from gdchaos.core.models import count_params  # noqa: E402
from gdchaos.experiments.task import build_task  # noqa: E402

CASES = {
    # name: (data, model, steps per timed scan, quick steps)
    "iris 4-10-3": ({"name": "iris"}, {"hidden": [10]}, 40, 20),
    "digits 64-64-10": ({"name": "digits"}, {"hidden": [64], "activation": "tanh"}, 10, 4),
}
KS = (1, 8, 32)


def time_scan(step, state, hyper, steps, repeats=3):
    """Seconds per step of a jitted ``steps``-step scan (best of ``repeats``, after a warm-up run)."""
    run = jax.jit(lambda s, h: jax.lax.scan(lambda c, _: (step(c, h)[0], None), s, None, length=steps)[0])
    jax.block_until_ready(run(state, hyper))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state, hyper))
        best = min(best, time.perf_counter() - t0)
    return best / steps


def cost_rows():
    n_eta, n_ic = (4, 4) if ARGS.quick else (20, 10)
    rows = []
    for name, (data_cfg, model_cfg, steps, quick_steps) in CASES.items():
        steps = quick_steps if ARGS.quick else steps
        task = build_task(data_cfg, model_cfg, {"name": "sgd"})
        for label, size in ((f"{n_eta} η × {n_ic} ic", n_eta * n_ic), ("single", None)):
            keys = jax.random.split(jax.random.key(0), size or 1)
            if size is None:  # one trajectory, no vmap
                params = task.model.init(keys[0])
                states, hyper, batch = task.tmap.init(params), {"learning_rate": 1.0}, lambda f: f
            else:
                eta = np.repeat(np.geomspace(0.01, 16.0, n_eta), n_ic)
                params = jax.vmap(task.model.init)(keys)
                states, hyper, batch = jax.vmap(task.tmap.init)(params), {"learning_rate": jax.numpy.asarray(eta)}, jax.vmap
            plain = time_scan(batch(task.tmap.step), states, hyper, steps)
            n = count_params(params if size is None else jax.tree.map(lambda a: a[0], params))
            for k in KS:
                lmap = tangent_map(task.tmap.step, k)
                init = lambda s, key: lmap.init(s, key)
                lstates = batch(init)(states, keys if size else keys[0])
                tangent = time_scan(batch(lmap.step), lstates, hyper, steps)
                rows.append([name, n, label, k, plain * 1e3, tangent * 1e3, tangent / plain, tangent / plain / k])
                print(rows[-1], flush=True)
    header = ["model", "params N", "ensemble", "k", "plain step ms", "tangent step ms", "ratio", "ratio / k"]
    return table(header, rows)


def compare_rows():
    import xarray as xr

    from gdchaos.experiments.both import add_window_matched_tangent
    from gdchaos.experiments.finite import finite_sweep
    from gdchaos.experiments.tangent import tangent_sweep

    jax.config.update("jax_enable_x64", True)
    task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
    etas, n_ic, steps = [1.0, 4.0, 8.0, 16.0], (4 if ARGS.quick else 10), (300 if ARGS.quick else 1000)
    kw = dict(eta=etas, n_ic=n_ic, steps=steps, seed=0, progress=False)
    finite = finite_sweep(task, eps=[1e-8], n_perturb=5, **kw)
    tangent = tangent_sweep(task, k=1, **kw)
    ds = add_window_matched_tangent(xr.merge([finite, tangent], combine_attrs="drop_conflicts"))
    rows = []
    for i, eta in enumerate(etas):
        kept = ds.kept.values[i, 0].astype(bool)
        lam = ds.exponent.values[i, 0]
        window = ds.tangent_window_exponent.values[i, 0]
        early = ds.tangent_log_stretch.values[i, :, :100].mean(axis=-1)
        full = ds.tangent_exponents.values[i, :, 0]
        corr = np.corrcoef(lam[kept], window[kept])[0, 1] if kept.sum() > 2 else float("nan")
        rows.append([
            eta,
            f"{np.mean(lam[kept]):.3f} ± {np.std(lam[kept]):.3f}" if kept.any() else "—",
            float(kept.mean()),
            float(np.mean(window[kept])) if kept.any() else float("nan"),
            float(np.mean(early)),
            f"{np.mean(full):.3f} ± {np.std(full):.3f}",
            float(corr),
        ])
        print(rows[-1], flush=True)
    header = ["η", "finite λ_nMLE (kept Λ)", "ρ", "tangent over Λ's windows", "tangent, updates 0–99",
              f"tangent λ_max, {steps}-update average", "per-IC corr(Λ, window tangent)"]
    note = (f"\n\nIris 4-10-3 sigmoid, full-batch GD, {n_ic} ICs × {steps} updates, float64; finite: ε = 1e-8, "
            "5 members, default window grid (start 0–100, length 30–100), R² > 0.9, Λ > 0.05.")
    return table(header, rows) + note


def main():
    jax.config.update("jax_enable_x64", ARGS.dtype == "float64")
    emit(f"Tangent step cost vs plain training step ({ARGS.dtype})", cost_rows(), ARGS.append)
    if not ARGS.no_compare:
        emit("Tangent λ_max vs finite-ε λ_nMLE on Iris", compare_rows(), ARGS.append)


if __name__ == "__main__":
    main()
