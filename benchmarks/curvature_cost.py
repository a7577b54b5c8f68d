"""Cost of matrix-free curvature: one Hessian-vector product vs one gradient; Lanczos HVPs for the sharpness.

    python benchmarks/curvature_cost.py [--quick] [--append benchmarks/README.md]

Part 1 (precision from --dtype, default float32): on the full training set of the Iris
MLP (4-10-3, sigmoid) and a digits MLP (64-64-10, tanh), the time of one gradient
∇L(θ), one Hessian-vector product H v = jvp(grad) (forward-over-reverse, what
``gdchaos.analyses.curvature.hvp`` does) and one product through a gradient linearized once
(``hvp_fn``, what Lanczos uses). Each is timed inside a jitted ``lax.scan`` of R
dependent evaluations (no dispatch overhead; best of 3 after a warm-up). Target: HVP
≤ ~3 gradients.

Part 2 (float64): the number of Lanczos steps (= HVPs) after which the top Ritz value
is within 1e-3 (and 1e-6) relative error of λ_max from ``eigh`` of the explicit Hessian
(built column by column from N HVPs), at the initialization and after some full-batch
GD steps, over 3 random start vectors (median and max). One Lanczos run of m steps
gives all shorter runs for free: the leading j×j block of T_m is T_j. Also the wall
time of the default top-1 Lanczos call (``top_hessian_eigenpairs``, k = 1: 42 HVPs) vs the
explicit Hessian + ``eigh``.
"""

from __future__ import annotations

import sys
import time

from _common import emit, setup, table

ARGS = setup(sys.argv[1:], default_devices="1", default_dtype="float32")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from gdchaos.analyses.curvature import hvp_fn, lanczos, top_hessian_eigenpairs, tridiagonal  # noqa: E402
from gdchaos.analyses.curvature.hvp import flat_hvp_fn  # noqa: E402
from gdchaos.core.models import count_params  # noqa: E402
from gdchaos.experiments.task import build_task  # noqa: E402

CASES = {
    # name: (data, model, GD learning rate for part 2)
    "iris 4-10-3": ({"name": "iris"}, {"hidden": [10]}, 1.0),
    "digits 64-64-10": ({"name": "digits"}, {"hidden": [64], "activation": "tanh"}, 0.5),
}


def best_of(fn, *args, repeats=3):
    jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def full_loss(task):
    x, y = jnp.asarray(task.dataset.x_train), jnp.asarray(task.dataset.y_train)
    x = x.astype(jnp.result_type(float))
    return lambda p: task.loss_fn(p, x, y)


def cost_rows(dtype):
    jax.config.update("jax_enable_x64", dtype == "float64")
    reps = 20 if ARGS.quick else 100
    rows = []
    for name, (data_cfg, model_cfg, _) in CASES.items():
        task = build_task(data_cfg, model_cfg, {"name": "sgd"})
        loss = full_loss(task)
        params = task.model.init(jax.random.key(0))
        v0 = jax.tree.map(jnp.ones_like, params)

        @jax.jit
        def grads(p):
            def body(p, _):
                g = jax.grad(loss)(p)
                return jax.tree.map(lambda a, b: a - 1e-12 * b, p, g), None

            return jax.lax.scan(body, p, None, length=reps)[0]

        def unit(v):
            flat = ravel_pytree(v)[0]
            return jax.tree.map(lambda a: a / jnp.linalg.norm(flat), v)

        @jax.jit
        def hvps(p, v):
            def body(v, _):
                return unit(jax.jvp(jax.grad(loss), (p,), (v,))[1]), None

            return jax.lax.scan(body, v, None, length=reps)[0]

        @jax.jit
        def linearized(p, v):
            matvec = hvp_fn(loss, p)
            return jax.lax.scan(lambda v, _: (unit(matvec(v)), None), v, None, length=reps)[0]

        t_grad = best_of(grads, params) / reps
        t_hvp = best_of(hvps, params, v0) / reps
        t_lin = best_of(linearized, params, v0) / reps
        rows.append([name, count_params(params), task.dataset.x_train.shape[0], dtype, t_grad * 1e6, t_hvp * 1e6,
                     t_hvp / t_grad, t_lin * 1e6, t_lin / t_grad])
        print(rows[-1], flush=True)
    header = ["model", "params N", "train samples", "dtype", "gradient µs", "HVP µs", "HVP / gradient",
              "linearized HVP µs", "linearized / gradient"]
    note = (f"\n\nOne evaluation on the full training set, timed inside a jitted scan of {reps} dependent "
            "evaluations (best of 3). HVP = jax.jvp of jax.grad; linearized = jax.linearize(grad) once, then "
            "one application per product (its one-off cost is included in the scan).")
    return table(header, rows) + note


def explicit_hessian(loss, params):
    """N×N Hessian from N HVPs (``lax.map`` in chunks, bounded memory)."""
    matvec, flat, _ = flat_hvp_fn(loss, params)
    eye = jnp.eye(flat.size, dtype=flat.dtype)
    return jax.lax.map(matvec, eye, batch_size=256)


def steps_to(theta_max_by_j, lam_max, rtol):
    err = np.abs(theta_max_by_j - lam_max) / abs(lam_max)
    ok = np.flatnonzero(err <= rtol)
    return int(ok[0]) + 1 if ok.size else None


def lanczos_rows():
    jax.config.update("jax_enable_x64", True)
    gd_steps = 50 if ARGS.quick else 200
    seeds = (0, 1, 2)
    rows = []
    for name, (data_cfg, model_cfg, eta) in CASES.items():
        task = build_task(data_cfg, model_cfg, {"name": "sgd"})
        loss = full_loss(task)
        params0 = task.model.init(jax.random.key(0))
        n = count_params(params0)
        m = min(n, 120)
        state = task.tmap.init(params0)
        hyper = {"learning_rate": eta}
        train = jax.jit(lambda s: jax.lax.fori_loop(0, gd_steps, lambda _, c: task.tmap.step(c, hyper)[0], s))
        trained = train(state).params

        @jax.jit
        def run_lanczos(p, key):
            matvec, flat, _ = flat_hvp_fn(loss, p)
            k1, k2 = jax.random.split(key)
            t = tridiagonal(lanczos(matvec, jax.random.normal(k1, flat.shape, flat.dtype), m, k2))
            return jnp.stack([jnp.linalg.eigvalsh(t[:j, :j])[-1] for j in range(1, m + 1)])

        top1 = jax.jit(lambda p: top_hessian_eigenpairs(loss, p, 1).values)
        hess = jax.jit(lambda p: jnp.linalg.eigvalsh(explicit_hessian(loss, p)))
        for label, p in (("init", params0), (f"after {gd_steps} GD steps (η = {eta})", trained)):
            t0 = time.perf_counter()
            eigs = np.asarray(jax.block_until_ready(hess(p)))
            t_explicit = time.perf_counter() - t0  # one call; at "init" it includes compilation
            lam_max = float(eigs[-1])
            need3, need6 = [], []
            for seed in seeds:
                ritz = np.asarray(run_lanczos(p, jax.random.key(seed)))
                need3.append(steps_to(ritz, lam_max, 1e-3))
                need6.append(steps_to(ritz, lam_max, 1e-6))
            t_top1 = best_of(top1, p)
            err = abs(float(top1(p)[0]) - lam_max) / abs(lam_max)

            def summary(v):
                if any(x is None for x in v):
                    return f"> {m} in {sum(x is None for x in v)} of {len(v)}"
                return f"{int(np.median(v))} (max {max(v)})"

            rows.append([name, n, label, lam_max, float(eigs[0]), summary(need3), summary(need6),
                         t_top1 * 1e3, err, t_explicit])
            print(rows[-1], flush=True)
    header = ["model", "params N", "point", "λ_max", "λ_min", "HVPs to 1e-3 (median, max)", "HVPs to 1e-6",
              "top_hessian_eigenpairs k=1 ms", "its rel. error", "explicit H + eigvalsh s"]
    note = ("\n\nfloat64; λ from eigvalsh of the explicit Hessian (built from N HVPs; one call, the init row "
            "includes its compilation); 3 random Lanczos starts, up to 120 steps; top_hessian_eigenpairs k = 1 uses the "
            "default min(N, 42) Lanczos steps (best of 3 after compilation).")
    return table(header, rows) + note


def main():
    for dtype in ARGS.dtypes:
        emit(f"Hessian-vector product cost vs gradient ({dtype})", cost_rows(dtype), ARGS.append)
    emit("Lanczos HVPs to the sharpness vs explicit eigh (float64)", lanczos_rows(), ARGS.append)


if __name__ == "__main__":
    main()
