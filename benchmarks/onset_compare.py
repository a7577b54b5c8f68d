"""Onset-of-chaos learning-rate finder vs the LR range test vs a brute-force ⟨τ⟩ grid, on Iris and digits.

    python benchmarks/onset_compare.py [--quick] [--tasks iris digits] [--json FILE]

For each task, three ways to pick a learning rate for full-batch GD:

(a) the onset finder (:func:`gdchaos.analyses.onset.onset_search` with the finite-ε ρ,
    ε = 1e-8, float64): η_onset (ρ = ½) and η_full (ρ first ≥ 0.95), to rtol = 10 %;
(b) the LR range test (:func:`gdchaos.analyses.onset.lr_range_test`, fastai's ``steep``
    rule, 100 updates from 1e-4 to 100, geometric mean over 8 ICs);
(c) the brute-force grid: ⟨τ⟩ measured directly on a log grid, best η = argmin.

Every candidate η is then trained from fresh initial conditions (a seed used by no
finder) and ⟨τ⟩ (updates to the dataset's test-accuracy target, never-reached ICs
censored at T) is reported with its standard error. Costs are member-steps (one
member advanced one update) and seconds (compile + run). The finder's cost is set
against a uniform log grid of ρ with the same resolution over the same bracket
(N = ⌈ln(η_max/η_min)/ln(1 + rtol)⌉ + 1 points at the finder's per-η cost).

Tasks: Iris (4-10-3 sigmoid MLP, N(0, 1) weights, T = 1000; finder 24 ICs × 3 members,
⟨τ⟩ grid of 21 η); digits (8×8, offline; 64-16-10 tanh MLP with fan-in init, T = 300;
finder 16 ICs × 2 members, ⟨τ⟩ grid of 13 η: digits costs ~60× Iris per member-step).
Bracket [0.01, 30] for both; ⟨τ⟩ always over 20 ICs. --quick shrinks the finder and grids.
"""

from __future__ import annotations

import json
import sys
import time

from _common import emit, setup, table

ARGS = setup(
    sys.argv[1:],
    default_devices="auto",
    default_dtype="float64",
    extra=lambda p: (p.add_argument("--tasks", nargs="+", default=["iris", "digits"], choices=["iris", "digits"]),
                     p.add_argument("--json", default=None, help="also write the numbers to this JSON file")),
)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gdchaos.analyses import onset  # noqa: E402
from gdchaos.core.precision import enable_float64  # noqa: E402
from gdchaos.experiments.task import build_task  # noqa: E402

enable_float64()

TASKS = {
    "iris": dict(data={"name": "iris"}, model={"hidden": [10]}, steps=1000, bracket=(0.01, 30.0),
                 full=dict(n_ic=24, n_perturb=2, k=3, grid=21, n_validate=20, range_ic=8),
                 quick=dict(n_ic=8, n_perturb=1, k=3, grid=7, n_validate=20, range_ic=4)),
    "digits": dict(data={"name": "digits"}, model={"hidden": [16], "activation": "tanh", "init": "fan_in"}, steps=300,
                   bracket=(0.01, 30.0),
                   full=dict(n_ic=16, n_perturb=1, k=3, grid=13, n_validate=20, range_ic=8),
                   quick=dict(n_ic=4, n_perturb=1, k=3, grid=5, n_validate=20, range_ic=4)),
}
SEEDS = dict(finder=0, range_test=7, validate=1, grid=2)


def compare(name: str, quick: bool) -> dict:
    spec = TASKS[name]
    sizes = spec["quick" if quick else "full"]
    task = build_task(spec["data"], spec["model"], {"name": "sgd"})
    steps, (eta_min, eta_max) = spec["steps"], spec["bracket"]
    print(f"{task.name}: target accuracy {task.accuracy_target}, T = {steps}", flush=True)

    rho_at = onset.FiniteRho(task, n_ic=sizes["n_ic"], n_perturb=sizes["n_perturb"], steps=202, seed=SEEDS["finder"])
    t0 = time.perf_counter()
    found = onset.onset_search(rho_at, eta_min, eta_max, k=sizes["k"], rtol=0.1, threshold=0.95, max_rounds=12)
    finder_wall = time.perf_counter() - t0
    print(found.message, flush=True)

    t0 = time.perf_counter()
    rt = onset.lr_range_test(task.tmap, task.model.init, eta_min=1e-4, eta_max=100.0, num_it=100, n_ic=sizes["range_ic"],
                             key=jax.random.key(SEEDS["range_test"]), hyper=task.hyper)
    range_wall = time.perf_counter() - t0
    print(f"range test: {rt.suggestion:.4g} (±{rt.spread:.2f} decades), per IC {np.round(rt.suggestions, 4).tolist()}", flush=True)

    grid = np.geomspace(eta_min, eta_max, sizes["grid"])
    t0 = time.perf_counter()
    brute = onset.validate_tau(task, grid, n_ic=sizes["n_validate"], steps=steps, seed=SEEDS["grid"])
    grid_wall = time.perf_counter() - t0
    best = int(np.argmin(brute.tau_mean))
    print("grid ⟨τ⟩: " + ", ".join(f"{e:.3g}:{t:.0f}" for e, t in zip(grid, brute.tau_mean)), flush=True)

    candidates = {"onset finder: η_onset": found.eta_onset, "onset finder: η_full": found.eta_full,
                  f"LR range test ({rt.rule})": rt.suggestion, "brute-force grid: argmin ⟨τ⟩": float(grid[best])}
    valid = {k: v for k, v in candidates.items() if v is not None and np.isfinite(v)}
    check = onset.validate_tau(task, list(valid.values()), n_ic=sizes["n_validate"], steps=steps, seed=SEEDS["validate"])
    tau = {k: (float(m), float(s), int(c)) for k, m, s, c in zip(valid, check.tau_mean, check.tau_sem, check.n_censored)}

    finder_cost = (found.member_steps, found.compile_seconds + found.run_seconds)
    costs = {
        "onset finder: η_onset": (found.member_steps_onset, None),
        "onset finder: η_full": finder_cost,
        f"LR range test ({rt.rule})": (rt.member_steps, rt.compile_seconds + rt.run_seconds),
        "brute-force grid: argmin ⟨τ⟩": (sizes["grid"] * sizes["n_validate"] * steps, brute.compile_seconds + brute.run_seconds),
    }
    return dict(
        task=task.name, target=task.accuracy_target, steps=steps, status=found.status, message=found.message,
        onset_bracket=found.onset_bracket, onset_ci=found.eta_onset_interval, full_ci=found.interval,
        rounds=found.rounds, member_steps=found.member_steps, member_steps_onset=found.member_steps_onset,
        uniform_grid_member_steps=found.grid_member_steps, uniform_grid_points=onset.uniform_grid_points(eta_min, eta_max, 0.1),
        finder_compile_s=found.compile_seconds, finder_run_s=found.run_seconds, finder_wall_s=finder_wall,
        range_suggestions=rt.suggestions.tolist(), range_spread=rt.spread, range_wall_s=range_wall,
        range_member_steps_to_stop=rt.member_steps_to_stop,
        grid=grid.tolist(), grid_tau=brute.tau_mean.tolist(), grid_sem=brute.tau_sem.tolist(), grid_wall_s=grid_wall,
        points=dict(eta=found.points.eta.tolist(), rho=found.points.rho.tolist(), n=found.points.n.tolist()),
        candidates={k: (candidates[k], *tau.get(k, (None, None, None)), *costs[k]) for k in candidates},
        sizes=sizes,
    )


def report(r: dict) -> str:
    rows = []
    for method, (eta, tm, se, cens, cost, secs) in r["candidates"].items():
        rows.append([method, None if eta is None else float(eta), None if tm is None else f"{tm:.0f} ± {se:.0f}",
                     None if cens is None else f"{cens}/{r['sizes']['n_validate']}",
                     None if cost is None else float(cost), None if secs is None else float(secs)])
    text = table(["method", "η", "⟨τ⟩ ± s.e. (fresh ICs)", "censored", "finder member-steps", "finder s (compile+run)"], rows)
    lo, hi = r["onset_bracket"] or (float("nan"), float("nan"))
    ratio = (r["member_steps_onset"] or float("nan")) / r["uniform_grid_member_steps"]
    text += (
        f"\n\n{r['task']}, target test accuracy {r['target']}, T = {r['steps']} updates. Finder status `{r['status']}`, "
        f"{r['rounds']} rounds; η_onset bracket [{lo:.4g}, {hi:.4g}] (relative width {hi / lo - 1:.3f}), 95 % CI "
        f"{tuple(round(x, 4) for x in r['onset_ci']) if r['onset_ci'] else None}; η_full CI "
        f"{tuple(round(x, 4) for x in r['full_ci']) if r['full_ci'] else None}. "
        f"Cost to η_onset: {r['member_steps_onset']} member-steps = {ratio:.1%} of a uniform ρ grid of the same resolution "
        f"({r['uniform_grid_points']} points, {r['uniform_grid_member_steps']:.3g} member-steps); whole search (η_full too): "
        f"{r['member_steps']} ({r['member_steps'] / r['uniform_grid_member_steps']:.1%}), "
        f"{r['finder_compile_s']:.1f} s compile + {r['finder_run_s']:.1f} s run. "
        f"Range test per-IC suggestions {np.round(r['range_suggestions'], 3).tolist()} (spread {r['range_spread']:.2f} decades). "
        f"ρ(η) measured: " + ", ".join(f"{e:.3g}:{p:.2f}" for e, p in zip(r["points"]["eta"], r["points"]["rho"])) + ". "
        "Grid ⟨τ⟩(η): " + ", ".join(f"{e:.3g}:{t:.0f}" for e, t in zip(r["grid"], r["grid_tau"])) + "."
    )
    return text


def main() -> None:
    results = {}
    for name in ARGS.tasks:
        t0 = time.perf_counter()
        results[name] = compare(name, ARGS.quick)
        results[name]["wall_s"] = time.perf_counter() - t0
        emit(f"Onset finder vs LR range test: {name}", report(results[name]), ARGS.append)
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
