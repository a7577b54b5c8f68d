"""How the wall time of one vectorized ensemble grows with members, steps and η-grid size.

    python benchmarks/scaling.py [--quick] [--float32|--float64] [--no-split] [--append FILE]

Task: the default sweep's (Iris 4-10-3 sigmoid, full-batch GD, test accuracy
observed every step), run with ``gdchaos.engine.ensemble.run`` as the sweep runs it
(one XLA device per core on CPU; ``--no-split``: one). Three sweeps, each
varying one size with the others fixed:

- members M = n_ic × 2 (reference + one ε-box member per initial condition;
  ``n_perturb`` ≥ 1, so the smallest ensemble has 2), M = 2 → 1000, one η;
- steps T, with a fixed ensemble;
- η-grid size, with a fixed ensemble per η.

Run time excludes compilation (reported apart: each new shape compiles once).
For each sweep the script fits t = a + b·x (relative least squares) and reads
off where the wall time is flat (per-call overhead a dominates, throughput grows
∝ x), where it grows linearly (throughput saturated at 1/b), and the local
log-log slope between neighbouring points.
"""

from __future__ import annotations

import sys
import time

from _common import emit, peak_rss_mb, setup, table

ARGS = setup(sys.argv[1:], default_dtype="float64")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gdchaos import ensemble  # noqa: E402
from gdchaos.experiments.task import build_task  # noqa: E402

SWEEP_ETA = [0.01, 0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0]

FULL = {
    "members": {"n_ic": [1, 2, 5, 10, 25, 50, 100, 250, 500], "steps": 200},
    "steps": {"steps": [10, 20, 50, 100, 200, 500, 1000, 2000], "n_eta": 1, "n_ic": 50, "n_perturb": 5},
    "eta": {"n_eta": [1, 2, 5, 10, 14, 20, 50, 100], "n_ic": 10, "n_perturb": 5, "steps": 200},
}
QUICK = {
    "members": {"n_ic": [1, 5, 25, 100, 250, 500], "steps": 100},
    "steps": {"steps": [10, 50, 100, 200, 500], "n_eta": 1, "n_ic": 50, "n_perturb": 5},
    "eta": {"n_eta": [1, 2, 5, 14, 50], "n_ic": 10, "n_perturb": 5, "steps": 100},
}


def eta_grid(n):
    """``n`` learning rates: the sweep's grid when n = 14, else spread over [0.01, 20]."""
    return SWEEP_ETA if n == len(SWEEP_ETA) else list(np.geomspace(0.01, 20.0, n)) if n > 1 else [1.0]


def even_ic(n):
    """``n`` rounded to a multiple of the device count (when at least that), so the ic axis splits."""
    d = jax.device_count()
    return n if n < d else max(d, round(n / d) * d)


def n_split(n_eta, n_ic):
    """How many devices ``ensemble.run`` splits this ensemble over."""
    sharding = ensemble.ensemble_sharding(n_eta, n_ic)
    return 1 if sharding is None else sharding.mesh.devices.size


def measure(task, *, n_eta, n_ic, n_perturb, steps, eps):
    """(compile s, best run s, first call wall s) of one ensemble; short runs are repeated (compiled once)."""
    kw = dict(eta=eta_grid(n_eta), eps=[eps], n_ic=n_ic, n_perturb=n_perturb, steps=steps,
              key=jax.random.key(0), observe=task.observe, hyper=task.hyper, progress=False)
    t0 = time.perf_counter()
    res = ensemble.run(task.tmap, task.model.init, **kw)
    first_wall = time.perf_counter() - t0
    run, compile_s = res.run_seconds, res.compile_seconds
    repeats = (0 if run > 1.5 else 2) if ARGS.quick else (0 if run > 5 else 2 if run > 0.3 else 4)
    for _ in range(repeats):
        run = min(run, ensemble.run(task.tmap, task.model.init, **kw).run_seconds)
    return compile_s, run, first_wall


def fit(x, t):
    """t ≈ a + b·x minimizing Σ((a + b·x − t)/t)²; returns (a, b) with a, b ≥ 0."""
    x, t = np.asarray(x, float), np.asarray(t, float)
    w = 1.0 / t
    (a, b), *_ = np.linalg.lstsq(np.stack([w, w * x], axis=1), np.ones_like(t), rcond=None)
    if a < 0:
        a, b = 0.0, float(np.sum(w * w * x * t) / np.sum(w * w * x * x))
    if b < 0:
        a, b = float(np.exp(np.mean(np.log(t)))), 0.0
    return float(a), float(b)


def regime(slope):
    if slope < 0.3:
        return "flat (overhead-bound)"
    if slope < 0.8:
        return "sub-linear (cost per member-step falling)"
    if slope <= 1.25:
        return "linear (throughput saturated)"
    return "super-linear (cost per member-step rising; noise or cache pressure)"


def analyse(name, unit, x, t, work_per_x):
    """Local log-log slopes per row and a one-paragraph reading of the fit."""
    slopes = [None] + [float(np.log(t[i] / t[i - 1]) / np.log(x[i] / x[i - 1])) for i in range(1, len(x))]
    a, b = fit(x, t)
    lines = [f"**{name}**: fit t ≈ {a * 1e3:.3g} ms + {b * 1e3:.3g} ms × {unit}."]
    if b <= 0:
        lines.append(f"The wall time does not grow with {unit} here: overhead-bound over the whole range.")
    elif a / b < x[0]:
        lines.append(
            f"Linear over the whole measured range: the fixed per-call cost is below the work of the "
            f"smallest point ({unit} = {x[0]:g}), so throughput is saturated from there on, at "
            f"≈ {work_per_x / b:,.0f} member-steps/s."
        )
    elif a / b > x[-1]:
        lines.append(
            f"Overhead-bound over the whole measured range: the fixed per-call cost exceeds the work even "
            f"at {unit} = {x[-1]:g}; throughput still grows ∝ {unit} "
            f"(asymptote ≈ {work_per_x / b:,.0f} member-steps/s)."
        )
    else:
        cross = a / b
        lines.append(
            f"The fixed per-call cost equals the work at {unit} ≈ {cross:.3g}: below it the wall time is "
            f"nearly flat and throughput grows ∝ {unit}; above it the wall time grows linearly and "
            f"throughput saturates at ≈ {work_per_x / b:,.0f} member-steps/s "
            f"(90% of that from {unit} ≈ {9 * cross:.3g})."
        )
    linear = [f"{x[i - 1]:g}→{x[i]:g}" for i in range(1, len(x)) if 0.8 <= slopes[i] <= 1.25]
    flat = [f"{x[i - 1]:g}→{x[i]:g}" for i in range(1, len(x)) if slopes[i] < 0.3]
    lines.append(
        f"Measured: flat (log-log slope < 0.3) on {', '.join(flat) or 'none'}; "
        f"linear (slope 0.8–1.25) on {', '.join(linear) or 'none'}."
    )
    return slopes, " ".join(lines)


def sweep(task, eps, title, column, unit, points):
    """Measure each point (a dict of n_eta, n_ic, n_perturb, steps; varying ``column``); a markdown block."""
    rows, x, t = [], [], []
    for p in points:
        compile_s, run, wall = measure(task, eps=eps, **p)
        member_steps = p["n_eta"] * p["n_ic"] * (p["n_perturb"] + 1) * p["steps"]
        value = p["n_ic"] * (p["n_perturb"] + 1) if column == "members" else p[column]
        print(f"{unit} {value}: compile {compile_s:.2f} s, run {run:.4f} s", flush=True)
        x.append(value)
        t.append(run)
        rows.append([value, f"{p['n_eta']}×{p['n_ic']}×{p['n_perturb'] + 1}×{p['steps']}",
                     n_split(p["n_eta"], p["n_ic"]), compile_s, wall, run, run / member_steps * 1e6,
                     member_steps / run])
    work_per_x = rows[-1][-1] * t[-1] / x[-1]  # member-steps per unit of x
    slopes, text = analyse(title.split(" (")[0], unit, x, t, work_per_x)
    header = [unit, "η×ic×member×steps", "devices", "compile s", "first call wall s", "run s",
              "µs per member-step", "member-steps/s", "log-log slope", "regime"]
    rows = [r + [s, None if s is None else regime(s)] for r, s in zip(rows, slopes)]
    return f"{title}\n\n{table(header, rows)}\n\n{text}"


def main():
    dtype = ARGS.dtypes[-1]
    if len(ARGS.dtypes) > 1:
        print("scaling runs one dtype; using float64 (the sweep's default for ε = 1e-8)", file=sys.stderr)
    jax.config.update("jax_enable_x64", dtype == "float64")
    eps = 1e-8 if dtype == "float64" else 1e-3
    task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
    cfg = QUICK if ARGS.quick else FULL

    c = cfg["members"]
    members = sweep(task, eps, f"Wall time vs members (T = {c['steps']}, one η)", "members", "members",
                    [dict(n_eta=1, n_ic=even_ic(n), n_perturb=1, steps=c["steps"]) for n in c["n_ic"]])
    c = cfg["steps"]
    fixed = dict(n_eta=c["n_eta"], n_ic=c["n_ic"], n_perturb=c["n_perturb"])
    steps = sweep(task, eps, (
        f"Wall time vs steps ({c['n_eta'] * c['n_ic'] * (c['n_perturb'] + 1)} members; scans run in chunks of "
        "100 steps, so T < 100 compiles a shorter chunk and T not a multiple of 100 a second length)"
    ), "steps", "steps", [dict(fixed, steps=n) for n in c["steps"]])
    c = cfg["eta"]
    fixed = dict(n_ic=c["n_ic"], n_perturb=c["n_perturb"], steps=c["steps"])
    etas = sweep(task, eps, (
        f"Wall time vs η-grid size ({c['n_ic'] * (c['n_perturb'] + 1)} members per η, T = {c['steps']})"
    ), "n_eta", "η values", [dict(fixed, n_eta=n) for n in c["n_eta"]])

    intro = (
        f"Iris 4-10-3 sigmoid, full-batch GD, {dtype} (ε = {eps:g}), test accuracy and L1 distance "
        f"recorded every step; `gdchaos.engine.ensemble.run` over {jax.device_count()} XLA device(s) (the "
        "ensemble is split over devices along ic when n_ic divides evenly, else along η, else not at all; "
        "see the devices column). run s: best of up to 5 runs of the compiled program (compilation "
        "excluded); first call wall s: the whole first `ensemble.run` call, including compiling the "
        "initialization (cached across calls with the same shapes, so it shows on the first point of a "
        f"shape). Peak RSS: {peak_rss_mb():.0f} MB."
    )
    emit("Scaling of one vectorized ensemble", "\n\n".join([intro, members, steps, etas]), ARGS.append)


if __name__ == "__main__":
    main()
