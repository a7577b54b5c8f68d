"""Member-steps per second: gdchaos's vectorized ensemble vs one-trajectory-at-a-time training.

    python benchmarks/throughput.py [--quick] [--float32] [--float64] [--no-split] [--append FILE]

A member-step is one training update of one trajectory, together with its per-step
observables (training loss, test accuracy, L1 distance to the reference trajectory).

(a) gdchaos: the η × ic × member ensemble advances in one compiled, chunked
    ``lax.scan`` (``gdchaos.engine.ensemble.run`` with the task's ``observe``, exactly as
    ``gdchaos.sweep`` calls it), split over one XLA device per core as the sweep does
    (``--no-split``: one device). The same ensemble on one device is also timed.
(b) sequential: the reference pipelines' shape. One trajectory after another (the
    reference first, its parameters stored per step; then each perturbed member),
    one Python-dispatched call of a jitted single-trajectory step per update, which
    returns loss, test accuracy and distance to the stored reference; each value is
    read to host every step, as a logging loop does (``float(...)``, like ``.item()``).
    Also timed without the per-step host read (asynchronous dispatch), and, if
    ``import torch`` works, as the same loop in PyTorch (eager, ``.item()`` per step).
    The baselines run a subset of the ensemble (stated in the output); their
    member-steps/s are extrapolated to the whole ensemble.

Both are measured in this one run, after compilation (compile times are reported
separately). Cases: Iris 4-10-3 sigmoid (tiny: the per-step loop is bound by
Python dispatch; full size = the flagship sweep, 20 η × 50 ICs × 6 members × 1000
steps), 8×8 digits 64-64-10 tanh, and an MNIST-shaped synthetic task, 784-64-10
tanh on 60000 training samples (compute-bound; achieved FLOP/s vs an assumed peak).
``--quick`` shrinks every ensemble and baseline subset (a few minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys
import time
from typing import NamedTuple

from _common import cpu_peak_flops, emit, fmt, peak_rss_mb, setup, table


def _extra(parser):
    parser.add_argument("--cases", default="iris,digits,mnist",
                        help="comma-separated subset of iris, digits, mnist (default: all)")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="assumed float32 peak in GFLOP/s (float64: half); default: from /proc/cpuinfo")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline even if torch imports")


ARGS = setup(sys.argv[1:], extra=_extra)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from gdchaos import ensemble  # noqa: E402
from gdchaos.core.models import count_params  # noqa: E402
from gdchaos.core.perturb import box, l1_distance  # noqa: E402
from gdchaos.experiments.task import build_task  # noqa: E402

SWEEP_ETA = [round(0.01 + i, 2) for i in range(20)]
"""The flagship η grid, ``python -m gdchaos.sweep 'eta=range(0.01,20)'``."""

MNIST_ETA = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0]
"""The reference MNIST η grid (DESIGN.md; ``conf/experiment/digits_tanh.yaml``)."""


class Size(NamedTuple):
    n_eta: int
    n_ic: int
    n_perturb: int
    steps: int


class Case(NamedTuple):
    key: str
    label: str
    data: dict
    model: dict
    eta_grid: list
    full: Size
    quick: Size
    seq: tuple  # (full, quick): (n_eta, n_members, steps) timed sequentially
    single_device: bool  # also time the vectorized ensemble on one device


CASES = [
    Case("iris", "Iris 4-10-3 sigmoid", {"name": "iris"}, {"hidden": [10]}, SWEEP_ETA,
         full=Size(20, 50, 5, 1000), quick=Size(20, 10, 5, 100), seq=((2, 6, 300), (1, 6, 100)),
         single_device=True),
    Case("digits", "digits 64-64-10 tanh", {"name": "digits"}, {"hidden": [64], "activation": "tanh"}, MNIST_ETA,
         full=Size(16, 2, 5, 50), quick=Size(4, 2, 2, 20), seq=((1, 6, 50), (1, 3, 20)),
         single_device=True),
    Case("mnist", "MNIST-shaped 784-64-10 tanh, 60k train", {
        "name": "synthetic", "n_samples": 70000, "n_features": 784, "n_classes": 10, "n_test": 10000},
         {"hidden": [64], "activation": "tanh"}, MNIST_ETA,
         full=Size(2, 2, 1, 10), quick=Size(1, 2, 1, 2), seq=((1, 2, 5), (1, 2, 2)),
         single_device=False),
]


def spread(grid, n):
    """``n`` values spread over ``grid`` (all of it when n >= len(grid))."""
    if n >= len(grid):
        return list(grid)
    return [grid[i] for i in np.linspace(0, len(grid) - 1, n).round().astype(int)]


def eps_for(dtype):
    """ε of the sweep (1e-8) in float64; 1e-3 in float32, where 1e-8 rounds away (same work)."""
    return 1e-8 if dtype == "float64" else 1e-3


# ---------------------------------------------------------------- (a) vectorized


def vectorized(task, size: Size, eta, dtype, devices=None, repeats=1):
    """Run the ensemble as the sweep does; best run time of ``repeats`` (compile from the first).

    Returns (result, wall seconds of the whole first ``ensemble.run`` call).
    """
    best, wall = None, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = ensemble.run(task.tmap, task.model.init, eta=eta, eps=[eps_for(dtype)], n_ic=size.n_ic,
                           n_perturb=size.n_perturb, steps=size.steps, key=jax.random.key(0),
                           observe=task.observe, hyper=task.hyper, progress=False, devices=devices)
        if best is None:
            best, wall = res, time.perf_counter() - t0
        elif res.run_seconds < best.run_seconds:
            best = best._replace(run_seconds=res.run_seconds)
    return best, wall


# ---------------------------------------------------------------- (b) sequential, JAX


def sequential_step(task):
    """Jitted single-trajectory update that also returns (loss, test accuracy, distance to ``ref``)."""

    def step(state, hyper, ref):
        dist = l1_distance(state.params, ref)
        acc = task.observe(state.params)["accuracy"]
        new, info = task.tmap.step(state, hyper)
        return new, (info.loss, acc, dist)

    return jax.jit(step)


def subset_members(task, n_members, dtype, key=0):
    """The reference and ``n_members - 1`` ε-box members of one initial condition (a list of pytrees)."""
    params = task.model.init(jax.random.key(key))
    members = box(jax.random.key(key + 1), params, eps_for(dtype), n_members - 1)
    return [jax.tree.map(lambda a, j=j: a[j], members) for j in range(n_members)]


def sequential(step, task, eta_values, n_members, steps, dtype, sync=True):
    """Member-steps/s of the per-step Python loop over ``len(eta_values) × n_members`` trajectories.

    ``step`` is :func:`sequential_step`'s jitted function. Returns (member-steps/s, seconds of the
    first call (compilation, when not compiled yet), records (η, member, steps, 3)).
    """
    members = subset_members(task, n_members, dtype)
    dt = jnp.result_type(float)
    hypers = [{**{k: jnp.asarray(v, dt) for k, v in task.hyper.items()}, "learning_rate": jnp.asarray(e, dt)}
              for e in eta_values]
    t0 = time.perf_counter()
    state = task.tmap.init(members[0])
    jax.block_until_ready(step(state, hypers[0], members[0]))
    compile_seconds = time.perf_counter() - t0

    records = np.zeros((len(hypers), n_members, steps, 3))
    start = time.perf_counter()
    for h, hyper in enumerate(hypers):
        reference = []
        for j, params in enumerate(members):
            state = task.tmap.init(params)
            out = []
            for t in range(steps):
                if j == 0:
                    reference.append(state.params)  # the reference trajectory, kept for the distances
                state, obs = step(state, hyper, reference[t])
                out.append([float(v) for v in obs] if sync else obs)
            records[h, j] = out if sync else np.asarray(jax.device_get(out))
    elapsed = time.perf_counter() - start
    return len(hypers) * n_members * steps / elapsed, compile_seconds, records


def single_scan(step, task, steps, dtype):
    """Member-steps/s of one trajectory as one compiled ``lax.scan`` (no Python loop, no host reads).

    The best a single trajectory does on this device: the reference for "the ensemble
    is within 2x of single-trajectory throughput" in the compute-bound case.
    """
    params = task.model.init(jax.random.key(0))
    dt = jnp.result_type(float)
    hyper = {**{k: jnp.asarray(v, dt) for k, v in task.hyper.items()}, "learning_rate": jnp.asarray(0.1, dt)}
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: step(s, hyper, params), s, None, length=steps))
    state = task.tmap.init(params)
    jax.block_until_ready(run(state))
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state))
        best = min(best, time.perf_counter() - t0)
    return steps / best


# ---------------------------------------------------------------- (b') sequential, PyTorch


def torch_available():
    if ARGS.no_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_sequential(torch, task, model_cfg, eta_values, n_members, steps, dtype):
    """The same per-step loop in eager PyTorch (full-batch GD by hand, ``.item()`` per step).

    Timed with one thread and with one per core; returns (best member-steps/s, its thread count,
    training losses of the first trajectory), so the baseline is the stronger of the two (tiny
    models run faster on one thread).
    """
    import torch.nn.functional as F

    tdt = torch.float64 if dtype == "float64" else torch.float32
    ds = task.dataset
    x = torch.as_tensor(np.asarray(ds.x_train).reshape(len(ds.x_train), -1), dtype=tdt)
    y = torch.as_tensor(np.asarray(ds.y_train), dtype=torch.long)
    xt = torch.as_tensor(np.asarray(ds.x_test).reshape(len(ds.x_test), -1), dtype=tdt)
    yt = torch.as_tensor(np.asarray(ds.y_test), dtype=torch.long)
    act = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[model_cfg.get("activation", "sigmoid")]

    def to_torch(params):
        out = []
        for name in sorted(params, key=lambda name: int(name.removeprefix("layer"))):
            out += [torch.tensor(np.asarray(params[name]["kernel"]), dtype=tdt),
                    torch.tensor(np.asarray(params[name]["bias"]), dtype=tdt)]
        return out

    def forward(ps, inputs):
        h = inputs
        for i in range(0, len(ps), 2):
            h = h @ ps[i] + ps[i + 1]
            if i + 2 < len(ps):
                h = act(h)
        return h

    members = [to_torch(p) for p in subset_members(task, n_members, dtype)]

    first_losses = []

    def run():
        first_losses.clear()
        start = time.perf_counter()
        for eta in eta_values:
            reference = []
            for j, params in enumerate(members):
                ps = [p.clone().requires_grad_(True) for p in params]
                for t in range(steps):
                    if j == 0:
                        reference.append([p.detach().clone() for p in ps])
                    with torch.no_grad():
                        dist = sum((p - r).abs().sum() for p, r in zip(ps, reference[t]))
                        acc = (forward(ps, xt).argmax(1) == yt).to(tdt).mean()
                    loss = F.cross_entropy(forward(ps, x), y)
                    grads = torch.autograd.grad(loss, ps)
                    with torch.no_grad():
                        for p, g in zip(ps, grads):
                            p.sub_(eta * g)
                    record = loss.item(), acc.item(), dist.item()
                    if j == 0 and len(first_losses) < steps:  # first η, reference trajectory
                        first_losses.append(record[0])
        return len(eta_values) * n_members * steps / (time.perf_counter() - start)

    threads = sorted({1, os.cpu_count() or 1})
    rates = {}
    for n in threads:
        torch.set_num_threads(n)
        rates[n] = run()
    best = max(rates, key=rates.get)
    return rates[best], best, list(first_losses)


# ---------------------------------------------------------------- FLOPs and memory


def analytic_flops(task) -> float:
    """FLOPs of one member-step: forward+backward on the training set (6·n_train·params) + test forward."""
    n_params = count_params(task.model.init(jax.random.key(0)))
    return 6.0 * len(task.dataset.x_train) * n_params + 2.0 * len(task.dataset.x_test) * n_params


def xla_flops(step, task) -> float | None:
    """XLA's cost analysis of the single-trajectory ``step`` (update + observables), if available."""
    try:
        params = task.model.init(jax.random.key(0))
        state = task.tmap.init(params)
        dt = jnp.result_type(float)
        hyper = {**{k: jnp.asarray(v, dt) for k, v in task.hyper.items()}, "learning_rate": jnp.asarray(0.1, dt)}
        cost = step.lower(state, hyper, params).compile().cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return float(cost["flops"])
    except Exception:  # cost analysis is optional and backend-dependent
        return None


def sizes_mb(res, task, size: Size):
    """(stored observables, what full weight trajectories would take), in MB."""
    stored = sum(v.nbytes for v in res.records.values())
    n_params = count_params(task.model.init(jax.random.key(0)))
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    trajectories = size.n_eta * len(res.eps) * size.n_ic * (size.n_perturb + 1) * size.steps * n_params * itemsize
    return stored / 1e6, trajectories / 1e6


def peak_for(dtype):
    """(assumed peak FLOP/s in ``dtype`` or None, how it was assumed)."""
    if ARGS.peak_gflops is not None:
        f32 = ARGS.peak_gflops * 1e9
        text = f"{ARGS.peak_gflops:g} GFLOP/s float32, half in float64 (--peak-gflops)"
        return {"float32": f32, "float64": f32 / 2}[dtype], text
    if jax.default_backend() != "cpu":
        return None, "no peak assumed off CPU (give --peak-gflops)"
    peak = cpu_peak_flops()
    if peak is None:
        return None, "no peak assumed (/proc/cpuinfo unreadable; give --peak-gflops)"
    return peak[dtype], peak["text"]


def human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


# ---------------------------------------------------------------- main


def measure(case: Case, dtype: str, torch, n_dev: int) -> dict:
    """Every number of one (case, dtype) row."""
    task = build_task(case.data, case.model, {"name": "sgd"})
    size = case.quick if ARGS.quick else case.full
    eta = spread(case.eta_grid, size.n_eta)
    member_steps = size.n_eta * size.n_ic * (size.n_perturb + 1) * size.steps
    shape = f"{size.n_eta}×{size.n_ic}×{size.n_perturb + 1}×{size.steps}"
    repeats = 2 if ARGS.quick and case.single_device else 1  # short runs: best of two
    out = {"case": case, "dtype": dtype, "shape": shape, "member_steps": member_steps}

    print(f"[{dtype}] {case.label}: vectorized {shape} ...", flush=True)
    res, out["first_wall"] = vectorized(task, size, eta, dtype, repeats=repeats)
    out["res"], out["rate"], out["rate_1"] = res, member_steps / res.run_seconds, None
    if case.single_device and n_dev > 1:
        res_1, _ = vectorized(task, size, eta, dtype, devices=jax.devices()[:1], repeats=repeats)
        out["rate_1"] = member_steps / res_1.run_seconds

    n_eta, n_members, steps = case.seq[1] if ARGS.quick else case.seq[0]
    seq_eta, n_members = spread(eta, n_eta), min(n_members, size.n_perturb + 1)
    out["seq_subset"] = (len(seq_eta), n_members, steps)
    print(f"[{dtype}] {case.label}: sequential {len(seq_eta) * n_members * steps} member-steps ...", flush=True)
    step = sequential_step(task)
    out["seq"], out["seq_compile"], synced = sequential(step, task, seq_eta, n_members, steps, dtype)
    out["async"], _, unsynced = sequential(step, task, seq_eta, n_members, steps, dtype, sync=False)
    out["scan"] = single_scan(step, task, steps, dtype)
    np.testing.assert_array_equal(synced, unsynced)  # the same work either way
    out["torch"], out["torch_threads"] = None, None
    if torch is not None:
        print(f"[{dtype}] {case.label}: PyTorch sequential ...", flush=True)
        out["torch"], out["torch_threads"], losses = torch_sequential(
            torch, task, case.model, seq_eta, n_members, steps, dtype)
        # Same trajectory as the JAX loop (first two updates; later, chaos may separate them).
        np.testing.assert_allclose(losses[:2], synced[0, 0, :2, 0], rtol=1e-3)

    out["analytic"], out["xla"] = analytic_flops(task), xla_flops(step, task)
    out["peak"], out["peak_text"] = peak_for(dtype)
    out["stored_mb"], out["traj_mb"] = sizes_mb(res, task, size)
    out["rss"] = peak_rss_mb()
    out["n_params"] = count_params(task.model.init(jax.random.key(0)))
    out["records"] = list(res.records)
    print(f"  vectorized {out['rate']:,.0f}/s ({n_dev} dev), 1 dev {out['rate_1'] or 0:,.0f}/s, "
          f"sequential {out['seq']:,.0f}/s (no sync {out['async']:,.0f}/s, one scanned trajectory {out['scan']:,.0f}/s), "
          f"PyTorch {out['torch'] or 0:,.0f}/s, "
          f"ratio {out['rate'] / out['seq']:.3g}", flush=True)
    return out


def default_sweep_storage(m: dict) -> str:
    """Stored observables vs full trajectories for the default sweep (Iris full size), in ``m``'s dtype."""
    d = m["case"].full
    n = d.n_eta * d.n_ic * (d.n_perturb + 1) * d.steps
    item = jnp.dtype(m["dtype"]).itemsize
    k = len(m["records"])
    return (
        f"- Default sweep ({d.n_eta} η × 1 ε × {d.n_ic} ICs × {d.n_perturb + 1} members × {d.steps} steps, "
        f"{m['dtype']}): stored observables {k} × {n:,} values = {k * n * item / 1e6:,.0f} MB "
        f"({', '.join(m['records'])}) vs full weight trajectories {n:,} × {m['n_params']} params = "
        f"{n * m['n_params'] * item / 1e6:,.0f} MB."
    )


def report(rows: list[dict], torch, n_dev: int) -> str:
    speed_header = ["case", "dtype", "η×ic×member×steps", f"gdchaos member-steps/s ({n_dev} dev)",
                    "gdchaos, 1 dev", "sequential member-steps/s", "ratio (a)/(b)",
                    "sequential, no per-step sync", "one trajectory, compiled scan", "ratio (a)/scan",
                    "PyTorch sequential", "ratio vs PyTorch"]
    speed = [[m["case"].label, m["dtype"], m["shape"], m["rate"], m["rate_1"], m["seq"], m["rate"] / m["seq"],
              m["async"], m["scan"], m["rate"] / m["scan"], None if m["torch"] is None else f"{fmt(m['torch'])} ({m['torch_threads']} thr)",
              m["rate"] / m["torch"] if m["torch"] else None] for m in rows]
    res_header = ["case", "dtype", "compile s", "run s", "first ensemble.run wall s", "sequential compile s",
                  "MFLOP/member-step (analytic)", "MFLOP/member-step (XLA)", "achieved GFLOP/s",
                  "achieved GFLOP/s (XLA count)", "% of assumed peak", "% of peak (XLA count)", "observables MB",
                  "full trajectories MB", "peak RSS MB"]
    resources = [[
        m["case"].label, m["dtype"], m["res"].compile_seconds, m["res"].run_seconds, m["first_wall"],
        m["seq_compile"], m["analytic"] / 1e6, None if m["xla"] is None else m["xla"] / 1e6,
        m["analytic"] * m["rate"] / 1e9, None if m["xla"] is None else m["xla"] * m["rate"] / 1e9,
        None if m["peak"] is None else 100 * m["analytic"] * m["rate"] / m["peak"],
        None if m["peak"] is None or m["xla"] is None else 100 * m["xla"] * m["rate"] / m["peak"],
        m["stored_mb"], m["traj_mb"], m["rss"],
    ] for m in rows]
    verdict = "".join(
        f"- Iris, {m['dtype']}: {m['rate'] / m['seq']:.3g}× the sequential per-step loop "
        f"({'meets' if m['rate'] / m['seq'] >= 100 else 'below'} the ≥100× target).\n"
        for m in rows if m["case"].key == "iris"
    )
    notes = "".join(
        f"- {m['case'].label}, {m['dtype']}: sequential baselines timed on {m['seq_subset'][0]} η × "
        f"{m['seq_subset'][1]} trajectories × {m['seq_subset'][2]} steps = {np.prod(m['seq_subset'])} "
        f"member-steps and extrapolated per member-step: the whole {m['shape']} ensemble "
        f"({m['member_steps']:,} member-steps) would take {human(m['member_steps'] / m['seq'])} sequentially "
        f"vs {human(m['res'].run_seconds)} vectorized (+ {m['res'].compile_seconds:.1f} s compile).\n"
        for m in rows
    )
    storage = "".join(default_sweep_storage(m) + "\n" for m in rows if m["case"].key == "iris")
    eps = "; ".join(f"{d}: ε = {eps_for(d):g}" for d in ARGS.dtypes)
    peak_text = next((m["peak_text"] for m in rows), "n/a")
    return (
        "Member-step = one update of one trajectory plus its loss, test accuracy and L1 distance to the "
        f"reference. (a) `gdchaos.engine.ensemble.run` with the task's observe, split over {n_dev} XLA device(s) "
        "(the 1-device column: the same run on one device). (b) one trajectory at a time, a Python loop "
        "calling a jitted single-trajectory step, reading the three values to host every step (the no-sync "
        "column keeps them on device until the end; the compiled-scan column runs one trajectory as one "
        "`lax.scan` with the same step and observables: the best a single trajectory does). Run times exclude "
        "compilation. "
        f"Perturbation size {eps}"
        + (" (1e-8 rounds away in float32; the work is the same). " if "float32" in ARGS.dtypes else ". ")
        + ("PyTorch: skipped (not installed, it is optional; or --no-torch)." if torch is None
           else f"PyTorch {torch.__version__}: eager, `.item()` per step, the faster of 1 thread and one per "
                f"core (shown as thr).")
        + "\n\n" + table(speed_header, speed) + "\n\n" + verdict + "\n" + notes + "\n"
        + table(res_header, resources) + "\n\n" + storage + "\n"
        "compile s and run s are `EnsembleResult.compile_seconds` / `run_seconds` (the chunked scan only); "
        "the first `ensemble.run` call's wall time also includes compiling the ensemble's initialization "
        "(initial conditions and ε-box draws) and placing it on the devices. FLOPs per member-step are "
        "counted analytically as 6·n_train·params (forward + backward, full batch) + 2·n_test·params (test "
        "forward); the XLA column is `cost_analysis()` of the jitted single-trajectory step with its "
        "observables, a cross-check (XLA skips the unused input gradient of the first layer, so it counts "
        "≈ 4·n_train·params + 2·n_train·(params after layer 1) for training). Achieved GFLOP/s = FLOPs per "
        "member-step × gdchaos member-steps/s, with either count. "
        f"Assumed peak: {peak_text}. Observables MB: what the run stored (one value per record, member and "
        "step); full trajectories MB: every member's parameters at every step. Peak RSS: process maximum so "
        "far (ru_maxrss; cases run in table order)."
    )


def main():
    wanted = [c.strip() for c in ARGS.cases.split(",") if c.strip()]
    unknown = sorted(set(wanted) - {c.key for c in CASES})
    if unknown:
        sys.exit(f"unknown --cases {unknown}; choose from {[c.key for c in CASES]}")
    torch = torch_available()
    n_dev = jax.device_count()
    rows = []
    for dtype in ARGS.dtypes:
        jax.config.update("jax_enable_x64", dtype == "float64")
        rows += [measure(case, dtype, torch, n_dev) for case in CASES if case.key in wanted]
    emit("Throughput: vectorized ensemble vs sequential per-step loop", report(rows, torch, n_dev), ARGS.append)


if __name__ == "__main__":
    main()
