"""Reproduce the papers' checkable claims offline and write the table (markdown and CSV).

    python examples/reproduce.py                          # full run: examples/REPRODUCTION.md and .csv
    python examples/reproduce.py --quick --out /tmp/q.md  # shrunk sizes (about 2 min): indicative verdicts
    python examples/reproduce.py --only chemnitz H7       # the claims of a paper (prefix) and claim H7
    python examples/reproduce.py --list                   # the claims and their commands, nothing run

Each claim is one entry of :data:`CLAIMS`: the paper, the claim with the paper's number
and where it is stated, the command a user types, a function that computes gdchaos's
number through the public API, the tolerance and the verdict rule. Verdicts:

    reproduced                       gdchaos's number agrees with the paper's within the tolerance
    not reproduced                   it does not
    paper number wrong (derivation)  the paper's own number or formula is wrong; the note derives the right one
    needs data: <command>            needs MNIST, Fashion-MNIST, CIFAR-10 or USPS; the command runs it where the data exist
    qualitative                      a shape or statement without a number; gdchaos's measurement is shown
    quick: indicative only           ``--quick`` shrank a statistical claim; the note gives what the full-size rule says

A claim whose computation fails shows ``error: <exception>`` and the script exits with 1;
a non-finite number is such an error, never a verdict.

Runs of ``python -m gdchaos.sweep`` are composed exactly as the command line composes
them (Hydra, the shipped ``conf/``) and run in-process without writing files; runs that
differ only in η share one compiled program (the union of their η grids, with the same
draws per η as separate runs).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import functools
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # as the sweep's cpu_devices=auto
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import jax  # noqa: E402
import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import gdchaos  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "REPRODUCTION.md"

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
PAPER_WRONG = "paper number wrong (derivation)"
NEEDS_DATA = "needs data"
QUALITATIVE = "qualitative"
QUICK = "quick: indicative only"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, PAPER_WRONG, NEEDS_DATA, QUALITATIVE, QUICK)
"""Every verdict starts with one of these (``needs data`` continues with ``: <command>``)."""

QUICK_SWEEP = ("n_ic=8", "steps=201", "chunk=201")
"""Overrides ``--quick`` appends to a sweep: 8 ICs and the shortest run the default fit-window grid allows."""


# --------------------------------------------------------------------------- claims


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One ``python -m gdchaos.sweep`` run: its overrides, and those ``--quick`` appends."""

    args: tuple[str, ...]
    quick: tuple[str, ...] = QUICK_SWEEP

    @property
    def command(self) -> str:
        return "python -m gdchaos.sweep " + " ".join(shlex.quote(a) for a in self.args)


@dataclasses.dataclass(frozen=True)
class Result:
    """gdchaos's number (formatted), the verdict and a note (derivation, details)."""

    value: str
    verdict: str
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One checkable claim of a paper and how gdchaos checks it.

    ``compute(ctx) -> Result``. ``statistical``: the number depends on sample sizes that
    ``--quick`` shrinks (its verdict then is :data:`QUICK`). ``quick_skip``: the verdict of a
    claim that ``--quick`` does not compute (only where the verdict does not depend on
    gdchaos's number: qualitative and needs-data claims with costly measurements).
    """

    id: str
    paper: str
    where: str
    text: str
    command: str
    tolerance: str
    compute: Callable[["Context"], Result]
    sweeps: tuple[Sweep, ...] = ()
    statistical: bool = False
    quick_skip: str | None = None


CLAIMS: list[Claim] = []


def claim(id, paper, where, text, command, tolerance, *, sweeps=(), statistical=False, quick_skip=None):
    """Register the decorated ``compute(ctx) -> Result`` as a claim (see :class:`Claim`)."""

    def register(compute):
        CLAIMS.append(Claim(id, paper, where, text, command, tolerance, compute, tuple(sweeps), statistical, quick_skip))
        return compute

    return register


def finite(*values) -> None:
    """Refuse non-finite numbers: they are never turned into a verdict."""
    for v in values:
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"non-finite gdchaos number {arr.tolist()}: no verdict")


def within(value, target, tol) -> bool:
    """|value − target| ≤ tol, for finite values only."""
    finite(value, target)
    return abs(float(value) - float(target)) <= tol


def agree(ok: bool) -> str:
    return REPRODUCED if ok else NOT_REPRODUCED


def needs(command: str) -> str:
    return f"{NEEDS_DATA}: {command}"


def py(code: str) -> str:
    """A ``python -c`` command line."""
    return f'python -c "{code}"'


def only(claim_id: str) -> str:
    """The command that recomputes one row of the table."""
    return f"python examples/reproduce.py --only {claim_id}"


# --------------------------------------------------------------------------- context


class Context:
    """What a claim's compute function gets: the mode, sizes and the finished sweep runs."""

    def __init__(self, quick: bool, runs: dict):
        self.quick = quick
        self._runs = runs

    def size(self, full, quick):
        return quick if self.quick else full

    def sweep(self, sweep: Sweep):
        """The Dataset of ``sweep`` (its η values), as ``python -m gdchaos.sweep`` computes it."""
        return self._runs[sweep]


def compose(args) -> "object":
    """The config ``python -m gdchaos.sweep <args>`` runs (checked as the command checks it)."""
    from gdchaos.cli.overrides import vectorize_overrides
    from gdchaos.sweep import precheck

    return precheck(vectorize_overrides(list(args)))


def _floats(value) -> list[float]:
    from omegaconf import OmegaConf

    return [float(v) for v in value] if OmegaConf.is_list(value) else [float(value)]


def run_finite(cfg, eta: list[float]):
    """``finite_sweep`` with the settings of a composed sweep config (as ``gdchaos.sweep.run_sweep``), no files."""
    import inspect

    from omegaconf import OmegaConf

    from gdchaos.experiments.finite import finite_sweep
    from gdchaos.analyses.lyapunov.finite import FilterWarning

    if cfg.analysis != "finite":
        raise ValueError(f"only analysis=finite sweeps run here; got method={cfg.analysis}")
    if cfg.precision == "float32":
        raise ValueError("this script runs in float64; a sweep with precision=float32 would differ")
    task = gdchaos.build_task(*(OmegaConf.to_container(cfg[g], resolve=True) for g in ("data", "model", "optimizer")),
                              loss=cfg.loss)
    ly = cfg.lyapunov
    kwargs = dict(
        eta=eta, eps=_floats(cfg.eps), n_ic=cfg.n_ic, n_perturb=cfg.n_perturb, steps=cfg.steps, seed=cfg.seed,
        starts=list(range(ly.start_min, ly.start_max + 1, ly.start_step)),
        lengths=list(range(ly.length_min, ly.length_max + 1, ly.length_step)),
        min_r2=ly.min_r2, min_exponent=ly.min_exponent, accuracy_target=cfg.accuracy_target,
        include_bias=cfg.perturbation.include_bias, distance=cfg.perturbation.distance, chunk=cfg.chunk,
        progress=False,
    )
    accepted = inspect.signature(finite_sweep).parameters
    kwargs.update({k: ly[k] for k in ly if k in accepted and k not in kwargs})  # e.g. lyapunov.estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FilterWarning)  # no kept Λ at small η is a result here, not a problem
        return finite_sweep(task, **kwargs)


def run_sweeps(sweeps, quick: bool, log=print) -> tuple[dict, list[dict]]:
    """Run every sweep; sweeps whose configs differ only in η share one run over the union of their η.

    Returns ``{sweep: Dataset at its η}`` and one timing record per run.
    """
    from omegaconf import OmegaConf

    composed = {s: compose(s.args + (s.quick if quick else ())) for s in dict.fromkeys(sweeps)}
    groups: dict[str, list[Sweep]] = {}
    for s, cfg in composed.items():
        rest = OmegaConf.to_container(cfg, resolve=True)
        rest.pop("eta")
        groups.setdefault(OmegaConf.to_yaml(rest), []).append(s)
    out, timings = {}, []
    for members in groups.values():
        cfg = composed[members[0]]
        eta = sorted({e for s in members for e in _floats(composed[s].eta)})
        overrides = " ".join(members[0].args + (members[0].quick if quick else ()))
        log(f"  sweep {overrides} (η = {eta}) ...")
        start = time.perf_counter()
        ds = run_finite(cfg, eta)
        wall = time.perf_counter() - start
        timings.append(dict(sweeps=[s.command for s in members], overrides=overrides, eta=eta, wall=wall,
                            compile=ds.attrs.get("compile_seconds"), run=ds.attrs.get("run_seconds")))
        log(f"    {wall:.0f} s (compile {ds.attrs.get('compile_seconds', 0):.0f} s, run {ds.attrs.get('run_seconds', 0):.0f} s)")
        for s in members:
            out[s] = ds.sel(eta=_floats(composed[s].eta))
    return out, timings


APPS = ("gdchaos.sweep", "gdchaos.toymap", "gdchaos.phase", "gdchaos.intermittency", "gdchaos.minima")


def compose_app(name: str, overrides: list[str]):
    """The config of ``python -m gdchaos.<name> <overrides>`` (composed with the shipped ``conf/``, not checked)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gdchaos.cli.app import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=overrides)


def _jobs(args: list[str]) -> list[list[str]]:
    """The jobs of a Hydra multirun: each comma list of a shape-changing key expanded (η and ε stay vectorized)."""
    from gdchaos.cli.overrides import VECTORIZED_KEYS

    jobs = [[]]
    for arg in args:
        key, _, value = arg.partition("=")
        if key not in VECTORIZED_KEYS and "," in value and not value.startswith(("[", "(", "range", "{")):
            jobs = [job + [f"{key}={v}"] for job in jobs for v in value.split(",")]
        else:
            jobs = [job + [arg] for job in jobs]
    return jobs


def command_error(command: str) -> str | None:
    """Why ``command`` would not start as typed, or None.

    ``python -m gdchaos.<app> ...``: every job composes with the shipped configs and passes the
    app's checks (nothing is run); ``python -c ...``: the code compiles; ``python <file>``: the file exists.
    """
    import importlib

    from gdchaos.cli.app import config_dir
    from gdchaos.core.errors import ConfigError
    from gdchaos.cli.overrides import vectorize_overrides

    try:
        parts = shlex.split(command)
    except ValueError as err:
        return f"cannot split the command line: {err}"
    if parts[:1] != ["python"] or len(parts) < 2:
        return "not a python command"
    if parts[1] == "-c":
        try:
            compile(parts[2], "<command>", "exec")
        except (SyntaxError, IndexError) as err:
            return f"the code does not compile: {err}"
        return None
    if parts[1] != "-m":
        return None if (HERE.parent / parts[1]).is_file() else f"no such file {parts[1]}"
    app, args = parts[2], parts[3:]
    if app not in APPS:
        return f"unknown app {app}"
    try:
        for job in _jobs(args):
            overrides = [a for a in vectorize_overrides(job) if not a.startswith("-")]
            for arg in overrides:  # the experiment group is optional: Hydra would silently ignore a wrong name
                key, _, name = arg.partition("=")
                if key.lstrip("+") == "experiment" and not (Path(config_dir()) / "experiment" / f"{name}.yaml").is_file():
                    return f"no experiment config {name!r} in conf/experiment"
            importlib.import_module(app).validate(compose_app(app.split(".")[1], overrides))
    except ConfigError as err:
        return str(err)
    except Exception as err:  # Hydra's composition errors (unknown config, key, malformed value)
        return " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return None


def at(ds, name: str, eta: float, eps: float | None = None) -> float:
    """``ds[name]`` at η (and ε, default the first)."""
    da = ds[name].sel(eta=eta)
    if "eps" in da.dims:
        da = da.sel(eps=eps) if eps is not None else da.isel(eps=0)
    return float(da.values)


# --------------------------------------------------------------------------- small shared pieces


@functools.lru_cache(maxsize=None)
def iris_task():
    """Iris, 4-10-3 sigmoid MLP, N(0, 1) weights, zero biases, full-batch GD, cross-entropy (the papers' setup)."""
    return gdchaos.build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})


@functools.lru_cache(maxsize=None)
def iris_flat():
    """The Iris training loss on flat parameter vectors, ``loss(v)``, and ``unravel(v) -> params``."""
    task = iris_task()
    x, y = jnp.asarray(task.dataset.x_train), jnp.asarray(task.dataset.y_train)
    unravel = jax.flatten_util.ravel_pytree(jax.jit(task.model.init)(jax.random.key(0)))[1]
    return (lambda v: task.loss_fn(unravel(v), x, y)), unravel


@functools.lru_cache(maxsize=None)
def iris_hessian():
    """``H(v)``: the Hessian of the Iris training loss at flat parameters (compiled once)."""
    return jax.jit(jax.hessian(iris_flat()[0]))


def mc_key(seed: int) -> jax.Array:
    """A PRNG key for Monte Carlo checks: the RBG generator compiles much faster on XLA:CPU than threefry."""
    return jax.random.key(seed, impl="rbg")


def iris_init(seed: int = 0) -> jax.Array:
    """A random initial θ of the Iris model (N(0, 1) weights, zero biases), flat."""
    params = jax.jit(iris_task().model.init)(jax.random.key(seed))
    return jax.flatten_util.ravel_pytree(params)[0]


def flat_step(tmap, unravel, hyper: dict):
    """One update of ``tmap`` from fresh state at flat parameters ``v``, flat."""

    def step(v):
        state, _ = tmap.step(tmap.init(unravel(v)), hyper)
        return jax.flatten_util.ravel_pytree(state.params)[0]

    return step


def n_params(model) -> int:
    return gdchaos.count_params(jax.eval_shape(model.init, jax.random.key(0)))


def count_command(expr: str) -> str:
    return py(f"import jax, gdchaos as g; print(g.count_params(jax.eval_shape(g.{expr}.init, jax.random.key(0))))")


def exact_count(expected: int, model, derivation: str) -> Result:
    n = n_params(model)
    return Result(f"{n:,}", agree(n == expected), derivation)


# =========================================================================== danovski2024

DANOVSKI = "danovski2024"
D_SWEEP = Sweep(("experiment=danovski2024_iris",))
D_EPS = (1e-14, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2)
D_EPS_SWEEP = Sweep(
    ("experiment=danovski2024_iris", "eta=1", "eps=" + ",".join(f"{e:g}" for e in D_EPS), "n_ic=100"),
    quick=QUICK_SWEEP + ("eps=1e-12,1e-8,1e-4",),
)


@claim("D1", DANOVSKI, "Sec. 2.1", "4–10–3 network: # = 83 trainable parameters (the dimension of the system)",
       count_command("mlp((4, 10, 3))"), "exact")
def _d_params(ctx):
    return exact_count(83, gdchaos.mlp((4, 10, 3)), "4·10 + 10 + 10·3 + 3 = 83")


@claim("D2", DANOVSKI, "Sec. 2.1", "Iris: N = 150 samples, 4 features, 3 classes; 120 for training, 30 for testing",
       py("from gdchaos import data; d = data.iris(); print(d.x_train.shape, d.x_test.shape, d.n_classes)"), "exact")
def _d_data(ctx):
    d = gdchaos.core.data.iris()
    shapes = (d.x_train.shape, d.x_test.shape, d.n_classes)
    return Result(f"train {d.x_train.shape}, test {d.x_test.shape}, {d.n_classes} classes",
                  agree(shapes == ((120, 4), (30, 4), 3)))


ESTIMATOR_TEXT = {
    "ratio": "Eq. 3 read as a ratio from t = 0, Λ = ln(d̄(τ)/d̄(0))/τ (lyapunov.estimator=ratio, as in the experiment config)",
    "window": "the slope of ln d̄ over the best-R² window (lyapunov.estimator=window; the run's *_window columns)",
}


def by_estimator(ds, name: str, estimator: str, eta: float, eps: float | None = None) -> float:
    """``name`` (``lambda_nmle`` or ``rho``) of one estimator: its ``_<estimator>`` summary, else the configured one."""
    if f"{name}_{estimator}" in ds:
        return at(ds, f"{name}_{estimator}", eta, eps)
    if ds.attrs.get("lyapunov_estimator", "window") == estimator:
        return at(ds, name, eta, eps)
    raise KeyError(f"the run has no {name} for the {estimator} estimator")


def _lambda_at_1(estimator: str):
    def compute(ctx):
        ds = ctx.sweep(D_SWEEP)
        lam, rho = by_estimator(ds, "lambda_nmle", estimator, 1.0), by_estimator(ds, "rho", estimator, 1.0)
        spread = f" ± {at(ds, 'lambda_std', 1.0):.3f}" if ds.attrs.get("lyapunov_estimator") == estimator else ""
        return Result(f"λ_nMLE = {lam:.3f}{spread} (ρ = {rho:.2f})", agree(within(lam, 0.33, 0.05)), ESTIMATOR_TEXT[estimator])

    return compute


def _rho_at_1(estimator: str):
    def compute(ctx):
        ds = ctx.sweep(D_SWEEP)
        rho = by_estimator(ds, "rho", estimator, 1.0)
        return Result(f"ρ = {rho:.2f} of {ds.sizes['ic']} ICs", agree(within(rho, 0.9, 0.1)), ESTIMATOR_TEXT[estimator])

    return compute


def _lambda_vs_eps(estimator: str):
    def compute(ctx):
        ds = ctx.sweep(D_EPS_SWEEP)
        eps = [float(e) for e in ds.eps.values]
        lam = [by_estimator(ds, "lambda_nmle", estimator, 1.0, e) for e in eps]
        small = [v for e, v in zip(eps, lam) if e <= 1e-8]
        finite(small)
        text = ", ".join(f"{e:.0e}: {v:.3f}" for e, v in zip(eps, lam))
        rho = ", ".join(f"{by_estimator(ds, 'rho', estimator, 1.0, e):.2f}" for e in eps)
        misses = [f"{e:.0e} ({v:.3f})" for e, v in zip(eps, lam) if e <= 1e-8 and not within(v, 0.33, 0.05)]
        return Result(f"λ_nMLE(ε) = {text}", agree(not misses),
                      f"{ESTIMATOR_TEXT[estimator]}; ρ per ε: {rho}"
                      + (f"; outside ± 0.05 of 0.33 at ε = {', '.join(misses)}" if misses else ""))

    return compute


D3_TEXT = "η = 1, ε = 1e-8, 5 perturbations, 500 ICs, R² > 0.9 and Λ > 0.05: λ_nMLE ≈ 0.33"
D4_TEXT = "η = 1: around 90 % of the initial conditions are kept by the filter (ρ ≈ 0.9)"
D6_TEXT = "λ_nMLE vs ε ∈ [1e-14, 1e-2] at η = 1 stabilises to ≈ 0.33 as ε decreases"
_d_lambda = claim("D3", DANOVSKI, "Sec. 4.1, Fig. 8", D3_TEXT + " [Λ: Eq. 3 as a ratio from t = 0]",
                  D_SWEEP.command + "  (η = 1 row)", "± 0.05", sweeps=[D_SWEEP], statistical=True)(_lambda_at_1("ratio"))
_d_lambda_window = claim("D3w", DANOVSKI, "Sec. 4.1, Fig. 8", D3_TEXT + " [Λ: best-R² window slope]",
                         D_SWEEP.command + "  (η = 1 row, lambda_nmle_window)", "± 0.05", sweeps=[D_SWEEP],
                         statistical=True)(_lambda_at_1("window"))
_d_rho = claim("D4", DANOVSKI, "Sec. 4.1", D4_TEXT + " [Λ: Eq. 3 as a ratio from t = 0]",
               D_SWEEP.command + "  (η = 1 row)", "± 0.10", sweeps=[D_SWEEP], statistical=True)(_rho_at_1("ratio"))
_d_rho_window = claim("D4w", DANOVSKI, "Sec. 4.1", D4_TEXT + " [Λ: best-R² window slope]",
                      D_SWEEP.command + "  (η = 1 row, rho_window)", "± 0.10", sweeps=[D_SWEEP],
                      statistical=True)(_rho_at_1("window"))


@claim("D5", DANOVSKI, "Sec. 3.1", "η = 0.01: distances neither grow exponentially nor shrink; exponential "
       "expansion is not expected (no kept Λ)", D_SWEEP.command + "  (η = 0.01 row)", "ρ ≤ 0.05",
       sweeps=[D_SWEEP], statistical=True)
def _d_small_eta(ctx):
    ds = ctx.sweep(D_SWEEP)
    rho, lam_all = at(ds, "rho", 0.01), at(ds, "lambda_all", 0.01)
    finite(rho)
    return Result(f"ρ = {rho:.2f}; mean Λ of all ICs (no filter) = {lam_all:.4f}", agree(rho <= 0.05))


_d_eps = claim("D6", DANOVSKI, "Sec. 4.1, Fig. 8 (right)", D6_TEXT + " [Λ: Eq. 3 as a ratio from t = 0]",
               D_EPS_SWEEP.command, "ε ≤ 1e-8: all within ± 0.05 of 0.33", sweeps=[D_EPS_SWEEP],
               statistical=True)(_lambda_vs_eps("ratio"))
_d_eps_window = claim("D6w", DANOVSKI, "Sec. 4.1, Fig. 8 (right)", D6_TEXT + " [Λ: best-R² window slope]",
                      D_EPS_SWEEP.command + "  (lambda_nmle_window)", "ε ≤ 1e-8: all within ± 0.05 of 0.33",
                      sweeps=[D_EPS_SWEEP], statistical=True)(_lambda_vs_eps("window"))


@claim("D7", DANOVSKI, "Sec. 3.2, Fig. 6", "ε = 1e-8 perturbations made after 4,000 updates at η = 0.01: the "
       "distance stays flat or decays slowly; no exponential growth and no exponential shrinkage",
       py("import jax, gdchaos as g; g.enable_float64(); t = g.build_task({'name': 'iris'}, {'hidden': [10]}, "
          "{'name': 'sgd'}); r = g.post_learning(t.tmap, t.model.init, t0=4000, eta=[0.01], eps=[1e-8], n_ic=20, "
          "n_perturb=5, steps=1000, key=jax.random.key(0)); d = r.records['distance'][..., 1:, :].mean(-2); "
          "print((d[..., -1] / d[..., 0]).squeeze())"),
       "shape", quick_skip=QUALITATIVE)
def _d_post(ctx):
    from gdchaos.analyses.weights import post_learning_exponents

    task = iris_task()
    res = gdchaos.post_learning(task.tmap, task.model.init, t0=4000, eta=[0.01], eps=[1e-8], n_ic=20, n_perturb=5,
                                steps=1000, key=jax.random.key(0))
    d = res.records["distance"][..., 1:, :].mean(axis=-2)  # mean over perturbed members: (eta, eps, ic, step)
    ratio = (d[..., -1] / d[..., 0]).ravel()
    finite(ratio)
    kept = post_learning_exponents(res).kept.ravel()
    return Result(f"d(t₀+1000)/d(t₀): median {np.median(ratio):.2f} (range {ratio.min():.2f}–{ratio.max():.2f}); "
                  f"ICs with a kept exponential fit: {int(kept.sum())} of {kept.size}", QUALITATIVE,
                  "20 ICs; a ratio near 1 is neither exponential growth nor exponential decay over 1000 updates")


@claim("D8", DANOVSKI, "Sec. 3.1, Fig. 5 (right)", "η = 0.01: per-weight displacement Δw and path length D_w "
       "are linearly related; no weights with small displacement and large path (no random-walk drift)",
       only("D8"), "shape")
def _d_drift(ctx):
    task = iris_task()
    steps = ctx.size(5000, 1000)
    params0 = jax.tree.map(lambda a: a[None], task.model.init(jax.random.key(0)))
    traj = gdchaos.analyses.weights.record_trajectories(task.tmap, params0, {"learning_rate": 0.01}, steps, every=10)
    disp = gdchaos.displacement_vs_path(jax.tree.map(lambda a: a[0], traj.params))
    absolute = np.concatenate([np.ravel(a) for a in jax.tree.leaves(disp.absolute)])
    path = np.concatenate([np.ravel(a) for a in jax.tree.leaves(disp.path_length)])
    moved = path > 1e-12
    straightness = absolute[moved] / path[moved]
    finite(straightness)
    return Result(f"|w(T) − w(0)| / D_w over the {moved.sum()} weights that move: median {np.median(straightness):.3f}, "
                  f"5th percentile {np.percentile(straightness, 5):.3f}", QUALITATIVE,
                  f"{steps} updates, one IC, snapshots every 10 updates; a ratio of 1 is a straight (ballistic) path, "
                  "a random walk gives a ratio ≪ 1")


@claim("D9", DANOVSKI, "Sec. 4.2, Figs. 9 and 12", "η = 5: the loss alternates between (period-3) "
       "quasi-periodic phases and random-like bursts; a few weights are intermittent while the rest stay constant, "
       "and their burst onsets coincide", "python -m gdchaos.intermittency eta=[5] n_ic=32 steps=2000", "shape",
       quick_skip=QUALITATIVE)
def _d_intermittency(ctx):
    from gdchaos.analyses import intermittency

    series = intermittency.record_series(iris_task(), eta=[5.0], n_ic=32, steps=2000, key=jax.random.key(0))
    ds = intermittency.analyze(series)
    regimes = list(intermittency.REGIMES)
    loss_regime = [regimes[k] for k in ds.loss_regime.values[0] if k >= 0]
    periods = [int(p) for p, r in zip(ds.loss_dominant_period.values[0], loss_regime) if r == "intermittent"]
    fractions = dict(zip(regimes, ds.summary_weight_regime_fraction.values[0]))
    coincide, chance = float(ds.summary_onset_coincidence[0]), float(ds.summary_onset_chance[0])
    finite(coincide, chance)
    counts = ", ".join(f"{p} (×{periods.count(p)})" for p in sorted(set(periods), key=lambda p: -periods.count(p)))
    return Result(f"intermittent loss in {loss_regime.count('intermittent')} of {len(loss_regime)} ICs (their dominant "
                  f"periods: {counts or 'none'}); weights: {100 * fractions['constant']:.0f} % constant, "
                  f"{100 * fractions['intermittent']:.0f} % intermittent; weight-burst onsets within ±3 updates of a "
                  f"loss-burst onset: {100 * coincide:.0f} % (chance {100 * chance:.0f} %)", QUALITATIVE,
                  "gdchaos.analyses.intermittency defaults: a step is laminar where the series nearly repeats (period ≤ 12, "
                  "tolerance 1e-3 of its rms) for ≥ 10 updates")


# =========================================================================== jimenez-gonzalez2026

JIMENEZ = "jimenez-gonzalez2026"
J_SWEEP = Sweep(("experiment=jimenez2026_iris",))
MNIST = "python -m gdchaos.sweep experiment=jimenez2026_mnist_tanh"


@claim("J1", JIMENEZ, "App. B", "Iris 4–10–3: 83 trainable parameters", count_command("mlp((4, 10, 3))"), "exact")
def _j_iris_params(ctx):
    return exact_count(83, gdchaos.mlp((4, 10, 3)), "4·10 + 10 + 10·3 + 3 = 83")


@claim("J2", JIMENEZ, "App. B", "MNIST 784–64–10: 50,890 parameters", count_command("mlp((784, 64, 10))"), "exact")
def _j_mnist_params(ctx):
    return exact_count(50_890, gdchaos.mlp((784, 64, 10)), "784·64 + 64 + 64·10 + 10 = 50,890")


@claim("J3", JIMENEZ, "App. B, Fig. 10", "deep MLP 784–32–32–10: 26,506 parameters",
       count_command("mlp((784, 32, 32, 10))"), "exact")
def _j_deep_params(ctx):
    return exact_count(26_506, gdchaos.mlp((784, 32, 32, 10)), "784·32 + 32 + 32·32 + 32 + 32·10 + 10 = 26,506")


@claim("J4", JIMENEZ, "App. B, Fig. 12", "CNN (3×3 convs with 8 and 16 kernels, padding 1, 2×2 max-pool after "
       "each, dense output): 9,098 parameters", count_command("cnn((28, 28, 1), 10)"), "exact")
def _j_cnn_params(ctx):
    return exact_count(9_098, gdchaos.cnn((28, 28, 1), 10),
                       "conv 3·3·1·8 + 8 = 80; conv 3·3·8·16 + 16 = 1,168; 28 → 14 → 7, dense 7·7·16·10 + 10 = 7,850")


@claim("J5", JIMENEZ, "App. B, Fig. 13", "CIFAR-10 MLP 3072–256–10: 789,258 parameters",
       count_command("mlp((3072, 256, 10))"), "exact")
def _j_cifar_params(ctx):
    return exact_count(789_258, gdchaos.mlp((3072, 256, 10)), "3072·256 + 256 + 256·10 + 10 = 789,258")


@claim("J6", JIMENEZ, "main text, before Eq. 3", "a perturbed network w_k + U(−ε, ε) is at most at distance "
       "Card(Ω)·ε from Ω(0)",
       py("import jax, gdchaos as g; g.enable_float64(); p = g.mlp((4, 10, 3)).init(jax.random.key(0)); "
          "m = g.perturb.box(jax.random.key(1), p, 1e-8, 1000, include_bias=True); "
          "print(max(float(g.perturb.l1_distance(jax.tree.map(lambda a: a[i], m), p)) for i in range(1, 1001)) / (83 * 1e-8))"),
       "bound ≤ 1")
def _j_bound(ctx):
    task = iris_task()
    eps, n = 1e-8, ctx.size(2000, 500)

    @jax.jit
    def distances(key):
        params = task.model.init(key)
        members = gdchaos.core.perturb.box(mc_key(1), params, eps, n, include_bias=True)
        return jax.vmap(lambda m: gdchaos.core.perturb.l1_distance(m, params))(jax.tree.map(lambda a: a[1:], members))

    scaled = np.asarray(distances(mc_key(0))) / (n_params(task.model) * eps)
    finite(scaled)
    return Result(f"max d_j(0)/(83 ε) = {scaled.max():.3f}, mean {scaled.mean():.3f} ({n} members)",
                  agree(scaled.max() <= 1.0),
                  "each |δ_k| ≤ ε, so d = Σ_k |δ_k| ≤ Card(Ω) ε; the mean is Card(Ω) ε/2. With the reference code's "
                  "weights-only perturbation (perturbation.include_bias=false) the bound is 70 ε on Iris.")


def _onset_and_tau_minimum(ds):
    eta = [float(e) for e in ds.eta.values]
    rho = [at(ds, "rho", e) for e in eta]
    tau = [at(ds, "tau_mean", e) for e in eta]
    finite(rho, tau)
    onset = next((i for i, r in enumerate(rho) if r >= 0.5), None)
    best = int(np.argmin(tau))
    return eta, rho, tau, onset, best


@claim("J7", JIMENEZ, "App. B, Fig. 8", "Iris: the minimum of ⟨τ⟩ (test accuracy ≥ 0.9) coincides with the "
       "onset of positive λ_nMLE", J_SWEEP.command, "argmin ⟨τ⟩ within one grid step of the first η with ρ ≥ 0.5",
       sweeps=[J_SWEEP], statistical=True)
def _j_iris(ctx):
    ds = ctx.sweep(J_SWEEP)
    eta, rho, tau, onset, best = _onset_and_tau_minimum(ds)
    if onset is None:
        return Result("no η with ρ ≥ 0.5", NOT_REPRODUCED)
    lam = [at(ds, "lambda_nmle", e) for e in eta]
    profile = "; ".join(f"{e:g}: ρ {r:.2f}, λ {v:.2f}, ⟨τ⟩ {t:.0f}" for e, r, v, t in zip(eta, rho, lam, tau))
    return Result(f"⟨τ⟩ minimal at η = {eta[best]:g} (⟨τ⟩ = {tau[best]:.0f}); ρ ≥ 0.5 from η = {eta[onset]:g}",
                  agree(abs(best - onset) <= 1),
                  f"⟨τ⟩ over all ICs, never-reached censored at the run length; per η: {profile}")


for _id, _where, _text, _cmd in (
    ("J8", "main text, Fig. 3", "MNIST 784–64–10 tanh, η = 10, 50 ICs: λ_nMLE ≈ 0.68", MNIST + " eta=10"),
    ("J9", "main text, Fig. 2", "MNIST, η = 10: exponential phase of d(t) up to τ ≈ 30 epochs",
     MNIST + " eta=10  (median_saturation_time)"),
    ("J10", "main text, Figs. 4–5", "MNIST: exploitation–exploration transition for η ∈ [1, 10]; ⟨τ⟩ minimal at "
     "η ≈ 7.5 where ρ ≈ 100 %", MNIST),
    ("J11", "App. B, Fig. 9", "MNIST sigmoid: the ⟨τ⟩ minimum extends over a broad range; ⟨τ⟩ rises only for "
     "η ≳ 30", "python -m gdchaos.sweep experiment=jimenez2026_mnist_sigmoid "
     "eta=0.5,1,2.5,5,7.5,10,15,20,25,30,35,40"),
    ("J12", "App. B, Fig. 9", "MNIST ReLU: the same qualitative structure",
     "python -m gdchaos.sweep experiment=jimenez2026_mnist_relu"),
    ("J13", "App. B, Fig. 10", "MNIST 784–32–32–10: the minimum ⟨τ⟩ is ≈ 20× that of the shallow net",
     "python -m gdchaos.sweep experiment=jimenez2026_mnist_deep"),
    ("J14", "App. B, Fig. 11", "MNIST tanh with L2 λ = 1e-3 and 1e-5: the ⟨τ⟩ minimum stays at the onset of "
     "positive λ_nMLE", "python -m gdchaos.sweep experiment=jimenez2026_mnist_l2_1e-3,jimenez2026_mnist_l2_1e-5"),
    ("J15", "App. B, Fig. 12", "MNIST CNN, 2,000 epochs, 40 ICs, target 80 %: the sweet spot in η remains",
     "python -m gdchaos.sweep experiment=jimenez2026_mnist_cnn"),
    ("J16", "App. B, Fig. 13", "CIFAR-10 3072–256–10, target 30 %: the same qualitative behaviour",
     "python -m gdchaos.sweep experiment=jimenez2026_cifar10"),
    ("J17", "App. C, Fig. 14", "MNIST tanh, η = 7.5 and 10: the sharpness approaches 2/η once training "
     "stabilises", "python -m gdchaos.sweep analysis=sharpness data=mnist model.hidden=[64] "
     "model.activation=tanh eta=7.5,10 steps=201"),
):
    claim(_id, JIMENEZ, _where, _text, _cmd, "—")(
        lambda ctx, cmd=_cmd: Result("—", needs(cmd.split("  (")[0]), "offline stand-in on the shipped 8×8 digits: "
                                     "experiment=digits_tanh (Figs. 2–5), experiment=sharpness_digits (Fig. 14)"))


@claim("J18", JIMENEZ, "App. A, Eqs. A1–A2, Figs. 6–7", "GD on the double well V = w⁴/4 − w²/2, "
       "f(w) = w[1 − η(w² − 1)]: period-doubling cascade to chaos, with periodic windows and regions of λ > 0",
       "python -m gdchaos.toymap 'eta=range(0.5,2.0,0.002)'",
       "first doublings at η = 1 and √5 − 1 (± 0.01)")
def _j_cascade(ctx):
    from gdchaos.analyses.toymaps import count_distinct, double_well, gd_map, lyapunov_curve, orbit_diagram

    w = jnp.linspace(-1.5, 1.5, 7)
    step = gd_map(double_well)
    map_error = max(float(jnp.max(jnp.abs(step(w, e)[0] - w * (1 - e * (w**2 - 1))))) for e in (0.3, 1.7))
    etas = np.round(np.arange(0.5, 2.0, 0.002), 6)
    orbits = orbit_diagram(double_well, etas, n_init=8, transient=3000, keep=256)
    period = np.median(np.asarray(count_distinct(orbits.points)), axis=1)
    lam = np.asarray(lyapunov_curve(orbits).exponent)
    first = lambda mask: float(etas[np.argmax(mask)]) if mask.any() else math.nan
    eta2, eta4 = first(period == 2), first(period == 4)
    chaos = lam > 1e-3
    eta_chaos = first(chaos)
    windows = int(np.sum(~chaos[np.argmax(chaos):] & np.isfinite(lam[np.argmax(chaos):]) & (etas[np.argmax(chaos):] < 1.9)))
    finite(eta2, eta4, eta_chaos)
    ok = within(eta2, 1.0, 0.01) and within(eta4, math.sqrt(5) - 1, 0.01) and windows > 0 and map_error < 1e-12
    return Result(f"period 2 from η = {eta2:g}, period 4 from η = {eta4:g}, first λ > 0 at η = {eta_chaos:g}, "
                  f"{windows} grid points of periodic windows (λ ≤ 0) inside the chaotic range; max λ = {np.nanmax(lam):.3f}",
                  agree(ok),
                  f"map f(w) = w − ηV'(w) equals w[1 − η(w² − 1)] to {map_error:.1e}. By hand: f'(±1) = 1 − 2η = −1 at η = 1; "
                  "the 2-cycle has multiplier 9 − 2(1 + η)² = −1 at η = √5 − 1 ≈ 1.2361")


@claim("J19", JIMENEZ, "App. A, Eq. A3", "λ = lim (1/t) Σ_k |ln f'(w_k)|",
       "python -m gdchaos.toymap eta=0.25,0.5,0.75", "exact")
def _j_eq_a3(ctx):
    from gdchaos.analyses.toymaps import double_well, lyapunov_vs_eta

    etas = np.array([0.25, 0.75])
    curve = lyapunov_vs_eta(double_well, etas, n_init=4, transient=500, steps=500, init_mean=0.5, init_std=0.1)
    lam = np.asarray(curve.exponent)
    finite(lam)
    at_minimum = np.log(np.abs(1 - 2 * etas))  # orbits settle on w* = 1, where f'(1) = 1 − 2η
    printed = np.abs(np.log(np.abs(1 - 2 * etas)))  # |ln f'| (with |f'|, else undefined at η = 0.75)
    right = np.allclose(lam, at_minimum, atol=1e-9) and np.all(lam < 0)
    verdict = PAPER_WRONG if right and not np.allclose(lam, printed, atol=1e-3) else agree(np.allclose(lam, printed))
    return Result(f"λ(η = 0.25) = {lam[0]:.4f}, λ(η = 0.75) = {lam[1]:.4f} (stable minima)", verdict,
                  "The absolute value belongs inside the logarithm: λ = lim (1/t) Σ ln|f'(w_k)|. As printed, |ln f'| ≥ 0, "
                  "so λ could never be negative and the stable ranges of Fig. 7 could not appear. At the minimum w* = 1, "
                  "f'(1) = 1 − 2η: at η = 0.25, ln|0.5| = −0.693 (gdchaos) while |ln 0.5| = +0.693 would call a stable "
                  "fixed point chaotic; at η = 0.75, ln|−0.5| = −0.693 while ln(f') is not even defined.")


# =========================================================================== herrmann2022 (appendix)

HERRMANN = "herrmann2022"
H_FASHION = "python -m gdchaos.sweep experiment=herrmann2022_fashion16"


@claim("H1", HERRMANN, "Thm A.1, Eq. 17", "the tangent map of (S)GD is Y ← (I − γH)Y",
       only("H1"), "≤ 1e-10 relative")
def _h_tangent(ctx):
    loss, unravel = iris_flat()
    theta, gamma = iris_init(), 0.7
    step = flat_step(iris_task().tmap, unravel, {"learning_rate": gamma})
    v = jax.random.normal(jax.random.key(3), theta.shape)
    jvp = jax.jit(lambda t, u: jax.jvp(step, (t,), (u,))[1])(theta, v)
    h = iris_hessian()(theta)
    err = float(jnp.linalg.norm(jvp - (v - gamma * h @ v)) / jnp.linalg.norm(v))
    finite(err)
    return Result(f"‖jvp(step)·v − (I − γH)v‖/‖v‖ = {err:.1e} (Iris, γ = {gamma})", agree(err < 1e-10),
                  "gdchaos's tangent maps are jax.jvp of the training step; H from jax.hessian of the loss")


def _momentum_tangents(steps: int, gamma: float, beta: float):
    """Y(t) = ∂θ(t)/∂θ(0) of heavy-ball GD on Iris (jacfwd of the unrolled map) and the Hessians H(θ(t))."""
    loss, unravel = iris_flat()
    task = iris_task()
    x, y = jnp.asarray(task.dataset.x_train), jnp.asarray(task.dataset.y_train)
    tmap = gdchaos.core.maps.momentum(task.loss_fn, x, y, beta=beta)

    def trajectory(v):
        def one(state, _):
            state, _ = tmap.step(state, {"learning_rate": gamma})
            return state, jax.flatten_util.ravel_pytree(state.params)[0]

        _, thetas = jax.lax.scan(one, tmap.init(unravel(v)), None, length=steps)
        return jnp.concatenate([v[None], thetas])

    theta = iris_init(1)
    thetas = jax.jit(trajectory)(theta)
    ys = jax.jit(jax.jacfwd(trajectory))(theta)  # (steps + 1, N, N)
    hs = [np.asarray(iris_hessian()(t)) for t in thetas[:-1]]
    return np.asarray(ys), np.stack(hs)


def _momentum_recursion(hs, gamma: float, beta: float, first: int):
    """Y(t+1) = Y(t) − γ Σ_{s=first}^{t} β^{t−s} H(s) Y(s), Y(0) = I."""
    ys = [np.eye(hs.shape[-1])]
    for t in range(hs.shape[0]):
        ys.append(ys[t] - gamma * sum(beta ** (t - s) * hs[s] @ ys[s] for s in range(first, t + 1)))
    return np.stack(ys)


@claim("H2", HERRMANN, "Thm A.3, Eqs. 29 and 32", "tangent map of SGD with momentum: "
       "Y(t+1) = Y(t) − γ Σ_{s=1}^{t} β^{t−s} H(s) Y(s) (Eq. 29)",
       only("H2"),
       "≤ 1e-9 relative")
def _h_momentum(ctx):
    gamma, beta, steps = 0.5, 0.9, 6
    ys, hs = _momentum_tangents(steps, gamma, beta)
    scale = float(np.max(np.abs(ys)))
    err32 = float(np.max(np.abs(_momentum_recursion(hs, gamma, beta, 0) - ys))) / scale
    err29 = float(np.max(np.abs(_momentum_recursion(hs, gamma, beta, 1) - ys))) / scale
    finite(err32, err29)
    verdict = PAPER_WRONG if err32 < 1e-9 < err29 else agree(err29 < 1e-9)
    return Result(f"max |Y − Y_jvp|/max|Y|: sum from s = 0 (Eq. 32) {err32:.1e}; from s = 1 (Eq. 29) {err29:.1e}",
                  verdict, "Eq. 29's sum must start at s = 0, as in Eq. 32: with v(−1) = 0, θ(1) = θ(0) − γ g(θ(0)), so "
                  "Y(1) = I − γH(0), whereas Eq. 29 at t = 0 gives Y(1) = Y(0) = I. gdchaos's momentum tangent is the jvp of "
                  f"the (θ, v) step (Iris, γ = {gamma}, β = {beta}, {steps} steps).")


@claim("H3", HERRMANN, "Thm A.5, Eq. 35", "direction v_i is locally chaotic (LLE ln|1 − γλ_i| ≥ 0) iff "
       "λ_i ≤ 0 or λ_i ≥ 2/γ", only("H3"), "exact")
def _h_criterion(ctx):
    gamma = 0.5
    lam = jnp.array([-1.0, 0.0, 0.5, 2.0, 3.9, 4.0, 5.0])  # 2/γ = 4
    quad = gdchaos.local_exponents(lambda p: 0.5 * jnp.sum(lam * p**2), jnp.zeros(lam.size), gamma)
    mismatch = int(jnp.sum((quad.exponents >= 0) != ((quad.eigenvalues <= 0) | (gamma * quad.eigenvalues >= 2))))
    ev = np.linalg.eigvalsh(np.asarray(iris_hessian()(iris_init())))
    mu = np.asarray(gdchaos.analyses.lyapunov.gd_local_exponents(ev, 1.0))
    decided = np.abs(ev) > 1e-9 * np.abs(ev).max()  # leave numerically flat directions out of the Iris check
    mismatch_iris = int(np.sum(((mu >= 0) != ((ev <= 0) | (ev >= 2.0)))[decided]))
    return Result(f"mismatches: {mismatch} of {lam.size} (quadratic, γ = {gamma}), {mismatch_iris} of "
                  f"{int(decided.sum())} (Iris Hessian at init, γ = 1)", agree(mismatch == 0 and mismatch_iris == 0),
                  "(1 − γλ)² ≥ 1 ⇔ γλ ≤ 0 or γλ ≥ 2. Boundary cases λ = 0 and λ = 2/γ have LLE = 0 exactly "
                  "(edge-chaotic); gdchaos's n_chaotic counts LLE > 0 strictly and reports flat directions apart (n_flat).")


@claim("H4", HERRMANN, "Thm A.6, Eq. 39", "the maximal Lyapunov exponent is at most the time average of the "
       "maximal local exponents, λ₁ ≤ (1/t) Σ_s λ₁^(s)",
       only("H4"), "inequality")
def _h_bound(ctx):
    from gdchaos.analyses.lyapunov import gd_local_exponents, lyapunov_spectrum

    loss, _ = iris_flat()
    theta = iris_init(2)
    grad = jax.grad(loss)
    eta, steps = 5.0, ctx.size(300, 100)

    def step(v, hyper):
        return v - hyper["learning_rate"] * grad(v), None

    lam, _ = lyapunov_spectrum(step, theta, {"learning_rate": eta}, steps, 1, key=jax.random.key(0))
    snaps = jax.jit(lambda v: jax.lax.scan(lambda u, _: (step(u, {"learning_rate": eta})[0], u), v, None,
                                           length=steps)[1])(theta)
    local = [np.max(np.asarray(gd_local_exponents(np.linalg.eigvalsh(np.asarray(iris_hessian()(v))), eta)))
             for v in snaps]
    bound = float(np.mean(local))
    lam1 = float(lam[0])
    finite(lam1, bound)
    return Result(f"λ₁ = {lam1:.4f} ≤ ⟨max_i ln|1 − ηλ_i|⟩ = {bound:.4f} (Iris, η = {eta}, {steps} updates)",
                  agree(lam1 <= bound + 1e-12), "finite-time λ₁ from QR of the tangent map; the local exponents "
                  "from the Hessian eigenvalues along the same trajectory; the bound holds for every finite t since "
                  "‖Y(t)‖ ≤ Π_s ‖J(θ_s)‖")


def _cgd_jacobian(gamma: float, lam: jax.Array):
    """Jacobian of one CGD step on ½θᵀHθ, H = Q diag(λ) Qᵀ with a random rotation Q, and Q."""
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(5), (lam.size, lam.size)))
    h = q @ jnp.diag(jnp.asarray(lam)) @ q.T
    tmap = gdchaos.cgd_map(lambda p, x, y: 0.5 * p @ h @ p, jnp.zeros((1, lam.size)), jnp.zeros(1), which="chaotic")

    def step(p):
        return tmap.step(tmap.init(p), {"learning_rate": gamma})[0].params

    theta = jax.random.normal(jax.random.key(6), (lam.size,))
    return np.asarray(jax.jit(jax.jacfwd(step))(theta)), np.asarray(q)


CGD_LAMBDA = np.array([-1.0, 0.2, 0.5, 1.5, 2.5, 5.0])  # γ = 0.5: 2/γ = 4, chaotic: −1 and 5


@claim("H5", HERRMANN, "Thm A.7", "pruning the chaotic Hessian directions from the update (CGD) leaves no "
       "exponentially diverging direction: every LLE ≤ 0", only("H5"), "max LLE ≤ 1e-12")
def _h_cgd(ctx):
    jac, _ = _cgd_jacobian(0.5, CGD_LAMBDA)
    lle = np.log(np.abs(np.linalg.eigvals(np.asarray(jac, dtype=float))))
    finite(lle.max())
    return Result(f"LLEs of the CGD step: {', '.join(f'{v:.3f}' for v in sorted(lle, reverse=True))}",
                  agree(lle.max() <= 1e-12), "gdchaos.cgd_map on ½θᵀHθ, H = Q diag(−1, 0.2, 0.5, 1.5, 2.5, 5) Qᵀ, "
                  "γ = 0.5: the two chaotic directions (λ = −1, 5) get eigenvalue 1 (LLE 0); Jacobian by jax.jacfwd")


@claim("H6", HERRMANN, "Thm A.7, Eq. 55", "the modified Jacobian has eigenvalue 1 on pruned directions and "
       "(1 − λ_i) on preserved ones", only("H6"), "≤ 1e-10")
def _h_eq55(ctx):
    gamma = 0.5
    jac, q = _cgd_jacobian(gamma, CGD_LAMBDA)
    along = np.einsum("ji,jk,ki->i", q, jac, q)  # v_iᵀ J v_i
    chaotic = np.asarray((CGD_LAMBDA <= 0) | (gamma * CGD_LAMBDA >= 2))
    expected = np.where(chaotic, 1.0, 1 - gamma * np.asarray(CGD_LAMBDA))
    printed = np.where(chaotic, 1.0, 1 - np.asarray(CGD_LAMBDA))
    err, err_printed = float(np.abs(along - expected).max()), float(np.abs(along - printed).max())
    finite(err, err_printed)
    shown = ", ".join(f"λ = {lam:g}: {v:.3f}" for lam, v in zip(np.asarray(CGD_LAMBDA), along))
    verdict = PAPER_WRONG if err < 1e-10 < err_printed else agree(err_printed < 1e-10)
    return Result(f"v_iᵀ J v_i: {shown}", verdict,
                  "(I − γPH)v_i = v_i − γλ_i P v_i, so a preserved direction has eigenvalue 1 − γλ_i, not 1 − λ_i (γ "
                  f"is missing in Eq. 55; here γ = {gamma}: λ = 2.5 gives −0.25, while 1 − λ = −1.5 would even be "
                  "unstable). The index ranges are also swapped: Eq. 44 keeps v_l for l > k, so the pruned ones are "
                  "i ≤ k (eigenvalue 1), while the text calls i > k pruned.")


def _torch_pair_distances(n_pairs: int):
    net = gdchaos.mlp((784, 20, 10), activation="relu", init="torch")

    @jax.jit
    def distances(ka, kb):
        draw = jax.vmap(net.init)
        return jax.vmap(gdchaos.core.perturb.l2_distance)(draw(ka), draw(kb))

    return np.asarray(distances(jax.random.split(mc_key(7), n_pairs), jax.random.split(mc_key(8), n_pairs)))


@claim("H7", HERRMANN, "Thm A.8", "two default-initialized (PyTorch) 784–20–10 MLPs have expected L2 distance "
       "≈ 6.38",
       py("import jax, gdchaos as g; g.enable_float64(); n = g.mlp((784, 20, 10), 'relu', init='torch'); "
          "d = jax.vmap(g.perturb.l2_distance)(jax.vmap(n.init)(jax.random.split(jax.random.key(7), 400)), "
          "jax.vmap(n.init)(jax.random.split(jax.random.key(8), 400))); print(d.mean())"),
       "5 standard errors + 0.01")
def _h_distance(ctx):
    d = _torch_pair_distances(ctx.size(400, 100))
    mean, se = float(d.mean()), float(d.std() / math.sqrt(d.size))
    exact = math.sqrt(sum(2 * m / 3 * (1 + 1 / k) for k, m in ((784, 20), (20, 10))))
    tol = 5 * se + 0.01
    verdict = REPRODUCED if within(mean, 6.38, tol) else PAPER_WRONG if within(mean, exact, tol) else NOT_REPRODUCED
    return Result(f"{mean:.3f} ± {se:.3f} ({d.size} pairs)", verdict,
                  "w₁ − w₂ with w₁, w₂ ~ U(−a, a) is triangular on (−2a, 2a) with variance 2a²/3, not U(−2a, 2a) "
                  "(variance 4a²/3) as the proof assumes. With a = 1/√k for weights and biases: "
                  "E‖θ₁ − θ₂‖² = Σ_layers (2m/3)(1 + 1/k) = (40/3)(1 + 1/784) + (20/3)(1 + 1/20) = 20.35, so "
                  f"E‖θ₁ − θ₂‖ ≈ √20.35 = {exact:.3f} (= 6.38/√2); the proof's own last line also writes 4m/k for "
                  "the bias terms where its case 2 gives 4m/(3k).")


@claim("H8", HERRMANN, "Thm A.9", "two Gaussian random walks with N(0, σ²I) steps in D dimensions have expected "
       "distance √(2TD)σ after T steps", only("H8"),
       "5 standard errors")
def _h_walks(ctx):
    t, n = 100, ctx.size(20000, 4000)
    out = {}
    for dim in (1, 3):
        steps = np.random.default_rng(dim).standard_normal((2, n, t, dim))
        dist = np.linalg.norm(steps[0].sum(axis=1) - steps[1].sum(axis=1), axis=-1)
        out[dim] = (float(dist.mean()), float(dist.std() / math.sqrt(n)), float(np.sqrt(np.mean(dist**2))))
    exact = {d: math.sqrt(2 * t) * math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2)) for d in out}
    ok_exact = all(within(out[d][0], exact[d], 5 * out[d][1]) for d in out)
    claimed_ok = all(within(out[d][0], math.sqrt(2 * t * d), 5 * out[d][1]) for d in out)
    verdict = REPRODUCED if claimed_ok else PAPER_WRONG if ok_exact else NOT_REPRODUCED
    shown = "; ".join(f"D = {d}: mean {m:.2f} ± {s:.2f}, RMS {r:.2f} (√(2TD) = {math.sqrt(2 * t * d):.2f})"
                      for d, (m, s, r) in out.items())
    return Result(shown + f" (T = {t}, σ = 1, {n} pairs)", verdict,
                  "Eq. 58 computes E‖x‖² = Dσ², so √(2TD)σ is the root-mean-square distance. The mean is "
                  "σ√(2T)·√2 Γ((D+1)/2)/Γ(D/2) < √(2TD)σ: √(2/π) ≈ 0.80 of it at D = 1, 0.92 at D = 3, → 1 as D grows "
                  "(negligible for network-sized D). Monte Carlo with numpy (a statement about Gaussian walks).")


@claim("H9", HERRMANN, "Thm A.11, Eq. 65", "subspace overlap ‖VᵀW‖²_F/d_min: 0 for V ⊥ W, 1 for V ⊆ W, in [0, 1]; "
       "random baseline (Eq. 65)", only("H9"), "exact; baseline ± 5 s.e.")
def _h_overlap(ctx):
    from gdchaos.analyses.curvature.along import random_subspace_overlap

    dim, dv, dw, n = 50, 5, 10, ctx.size(2000, 400)
    rng = np.random.default_rng(9)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].T  # orthonormal rows
    orth = float(gdchaos.subspace_overlap(basis[:dv], basis[dv:dv + dw]))
    nested = float(gdchaos.subspace_overlap(basis[:dv], basis[:dw]))
    v = np.linalg.qr(rng.standard_normal((n, dim, dv)))[0].transpose(0, 2, 1)  # n random dv-dim bases (rows)
    w = np.linalg.qr(rng.standard_normal((n, dim, dw)))[0].transpose(0, 2, 1)
    ov = np.asarray(jax.vmap(gdchaos.subspace_overlap)(v, w))
    base = float(random_subspace_overlap(dim, dv, dw))
    mean, se = float(ov.mean()), float(ov.std() / math.sqrt(n))
    ok = within(orth, 0, 1e-12) and within(nested, 1, 1e-12) and 0 <= ov.min() and ov.max() <= 1 and within(mean, base, 5 * se)
    return Result(f"V ⊥ W: {orth:.1e}; V ⊆ W: {nested:.6f}; random pairs in [{ov.min():.3f}, {ov.max():.3f}], mean "
                  f"{mean:.4f} ± {se:.4f} vs baseline {base:.4f}", agree(ok),
                  f"gdchaos.subspace_overlap and random_subspace_overlap; R^{dim}, dim V = {dv}, dim W = {dw}, {n} random "
                  "pairs; baseline E‖VᵀW‖²/d_min = d_v d_w/(N d_min) = d_max/N")


for _id, _where, _text, _cmd in (
    ("H10", "App. B.2, Fig. B.2.1", "USPS: the count of Hessian eigenvalues λ_i > 2/γ is effectively zero "
     "throughout training (USPS is not in tensorflow-datasets; the command runs FashionMNIST at USPS's 16×16)",
     H_FASHION + " analysis=sharpness sharpness.method=full"),
    ("H11", "App. B.2, Figs. B.2.2 and B.2.5", "sigmoid MLPs: the number of positive Hessian eigenvalues "
     "grows during training while the negative count falls", H_FASHION + " model.activation=sigmoid "
     "analysis=sharpness sharpness.method=full"),
    ("H12", "App. C.1, Fig. C.1.1", "the maximal finite-time Lyapunov exponent drops quickly to ≈ 0 during "
     "SGD training (edge-chaotic)", H_FASHION + "  (tangent_ftle)"),
):
    claim(_id, HERRMANN, _where, _text, _cmd, "—")(
        lambda ctx, cmd=_cmd: Result("—", needs(cmd.split("  (")[0]),
                                     "offline stand-in on the shipped 8×8 digits: experiment=herrmann2022_digits"))


# =========================================================================== edge of chaos

EDGE = "edge-of-chaos"
FASHION_TRACK = ("import gdchaos as g; d = g.data.load('fashion_mnist'); e = g.edge_of_chaos; "
                 "t = e.track_training(d, epochs=30, eta=0.02, momentum=0.5, batch_size=32); "
                 "print(e.analyze_growth(t, 0.02, 0.5, 32, 60000))")


@claim("E1", EDGE, "Eq. 3, Fig. 1b", "mean-field order–chaos boundary J² ∫Dz sech⁴(J₀μ + J√q₀ z) = 1: the edge is "
       "J = 1 for J₀/J ≤ 1", "python -m gdchaos.phase", "1/J within 1e-3 of 1")
def _e_boundary(ctx):
    ratio = np.linspace(-1.0, 1.0, 21)
    inv_j = np.asarray(gdchaos.chaos_boundary(ratio))
    finite(inv_j)
    dev = float(np.abs(inv_j - 1).max())
    return Result(f"1/J on the boundary for J₀/J ∈ [−1, 1]: {inv_j.min():.4f}–{inv_j.max():.4f}", agree(dev <= 1e-3),
                  "for J₀/J ≤ 1 the attractor has μ = q₀ = 0, so the criterion is J² = 1")


@claim("E2", EDGE, "Sec. III, Fig. 2", "the initial hidden layer J₀ = 0, J = 0.5 is in the ordered phase",
       py("import gdchaos as g; print(g.mean_field(0.0, 0.5).criterion)"), "criterion < 1")
def _e_init(ctx):
    chi = float(gdchaos.mean_field(0.0, 0.5).criterion)
    finite(chi)
    return Result(f"criterion χ = {chi:.4f}", agree(chi < 1), "χ = J² = 0.25 at μ = q₀ = 0")


@claim("E3", EDGE, "Fig. 1b", "the numerical asymptotic state of x ↦ tanh(Wx) matches the mean-field "
       "boundary well", "python -m gdchaos.phase",
       "mean |Δ(1/J)| ≤ 0.1 for |J₀/J| < 1 and for J₀/J > 1, and a numerical edge in every column", statistical=True)
def _e_heatmap(ctx):
    eoc = gdchaos.analyses.edge_of_chaos
    ratio = np.linspace(-1.0, 2.0, ctx.size(31, 7))
    inv_j = np.linspace(0.04, 2.0, ctx.size(40, 12))
    n, draws, threshold = ctx.size(300, 64), ctx.size(5, 3), -0.01
    heat = eoc.separation_heatmap(ratio, inv_j, jax.random.key(0), n=n, draws=draws, steps=200, average=20,
                                  perturbation=1e-4)
    edge = eoc.locate_edge(inv_j, np.asarray(heat.lyapunov), threshold)
    cmp = eoc.compare_edges(ratio, edge.inv_j, np.asarray(eoc.chaos_boundary(ratio)), (inv_j.min(), inv_j.max()))
    summary = cmp.summary
    missing = summary["missing_j0_le_j"] + summary["missing_j0_gt_j"]
    compared = min(summary["compared_abs_j0_lt_j"], summary["compared_j0_gt_j"])
    inner, outer = summary["mean_abs_j0_lt_j"], summary["mean_j0_gt_j"]
    if compared:  # NaN only where a column set has no numerical edge at all
        finite(inner, outer)
    text = ", ".join(f"{v:.2f}" for v in edge.inv_j)
    lost = [f"J₀/J = {r:g} (mean-field edge 1/J = {m:.3f}, {eoc.EDGE_STATUS[st]} the grid)"
            for r, v, m, st in zip(ratio, edge.inv_j, np.asarray(eoc.chaos_boundary(ratio)), edge.status)
            if np.isnan(v) and inv_j.min() <= m <= inv_j.max()]
    return Result(f"mean |Δ(1/J)| = {inner:.3f} for |J₀/J| < 1 (max {summary['max_abs_j0_lt_j']:.3f}), {outer:.3f} "
                  f"for J₀/J > 1 (max {summary['max_j0_gt_j']:.3f}); columns without a numerical edge: {missing}"
                  + (f": {'; '.join(lost)}" if lost else ""),
                  agree(bool(compared) and inner <= 0.1 and outer <= 0.1 and missing == 0),
                  f"numerical edge 1/J per column J₀/J = {', '.join(f'{r:g}' for r in ratio)}: {text}. "
                  + f"{ratio.size} J₀/J columns × {inv_j.size} values of 1/J ∈ [0.04, 2], N = {n}, {draws} W draws, 200 "
                  f"steps; numerical edge: where the median transverse Lyapunov exponent first reaches {threshold} "
                  "coming down from large 1/J (gdchaos.analyses.edge_of_chaos.locate_edge), as python -m gdchaos.phase does")


@claim("E4", EDGE, "Fig. 5 caption", "default training parameters η = 0.01, α = 0, B = 32 have scale factor "
       "η/((1 − α)B) = 0.0003125", py("import gdchaos as g; print(g.edge_of_chaos.scale_factor(0.01, 0.0, 32))"),
       "exact")
def _e_scale(ctx):
    sf = gdchaos.analyses.edge_of_chaos.scale_factor(0.01, 0.0, 32)
    return Result(f"{sf:g}", agree(within(sf, 0.0003125, 1e-15)))


@claim("E5", EDGE, "Eqs. 8–9, App. C (C1–C5)", "the weight decay that holds J² at J*²: "
       "λ ≈ A(1 − α)B/(4ηSJ*²) = D/(4SJ*²) = 0.00005",
       py("import gdchaos as g; print(g.edge_of_chaos.optimal_weight_decay(12.0, 60000))"), "exact")
def _e_weight_decay(ctx):
    eoc = gdchaos.analyses.edge_of_chaos
    s, j_star = 60000, 1.0
    d = 4 * s * j_star**2 * 0.00005  # the D that Eq. 9's 0.00005 implies
    eq9 = eoc.optimal_weight_decay(d, s, j_star)
    residual = 0.0
    for eta, alpha, batch in ((0.01, 0.0, 32), (0.02, 0.5, 32), (0.1, 0.9, 128)):
        a = d * eoc.scale_factor(eta, alpha, batch)  # Eq. 5
        eq8 = a * (1 - alpha) * batch / (4 * eta * s * j_star**2)
        residual = max(residual, abs(eq8 - eq9) / eq9)
        # Eq. C2 = C5 at the fixed point: A B / S per mini-batch up, 4 η λ J*² / (1 − α) down
        residual = max(residual, abs(a * batch / s - 4 * eta * eq8 * j_star**2 / (1 - alpha)) / (a * batch / s))
    return Result(f"λ* = {eq9:g} for D = {d:g}; Eq. 8 = Eq. 9 and C2 = C5 to {residual:.0e}", agree(residual < 1e-12),
                  "C4: 1 − (1 − 2ηλ Σ_m α^m)² ≈ 4ηλ/(1 − α); equating ΔJ²₊ = AB/S with ΔJ²₋ = 4ηλJ*²/(1 − α) gives "
                  "Eq. 8, and A = ηD/((1 − α)B) (Eq. 5) gives Eq. 9. The paper does not print D; 0.00005 with "
                  "S = 60,000 and J* = 1 means D = 12.")


SCALINGS = ((0.01, 0.0, 32), (0.02, 0.0, 32), (0.04, 0.5, 32))
"""(η, α, B) of the J² growth runs: scale factors 3.125e-4, 6.25e-4, 6.25e-4 (one batch size: one compiled program)."""


@claim("E6", EDGE, "Eqs. 4–5, Fig. 3", "in the ordered phase J² = A·epoch + C with A = D·η/((1 − α)B): A is "
       "linear in η, in 1/(1 − α) and in 1/B", py(FASHION_TRACK), "—", quick_skip=needs(py(FASHION_TRACK)))
def _e_scaling(ctx):
    eoc = gdchaos.analyses.edge_of_chaos
    digits = gdchaos.core.data.digits()
    epochs = ctx.size(12, 6)
    ds = []
    for eta, alpha, batch in SCALINGS:
        tr = eoc.track_training(digits, epochs=epochs, eta=eta, momentum=alpha, batch_size=batch, key=jax.random.key(0))
        g = eoc.analyze_growth(tr, eta, alpha, batch, digits.x_train.shape[0])
        ds.append(float(g.d))
    finite(ds)
    return Result(f"digits stand-in (N = 64): D = A/scale factor = {', '.join(f'{v:.0f}' for v in ds)} for "
                  f"(η, α, B) = {', '.join(map(str, SCALINGS))}", needs(py(FASHION_TRACK)),
                  f"{epochs} epochs each; A ∝ η/((1 − α)B) would give the same D for all three: here D varies by "
                  f"{100 * (max(ds) - min(ds)) / np.mean(ds):.0f} % of its mean")


FASHION_DECAY = ("import gdchaos as g; d = g.data.load('fashion_mnist'); t = g.edge_of_chaos.track_training(d, "
                 "epochs=500, eta=0.01, momentum=0.0, batch_size=32, weight_decay=9e-5); "
                 "print(t.j[-1] ** 2, t.test_accuracy.max())")


@claim("E7", EDGE, "Sec. IV, Fig. 6", "weight decay λ = 9e-5 holds the model at the edge of chaos (J² → 1) and gives "
       "the best test accuracy; the estimate λ* ≈ 5e-5 is close", py(FASHION_DECAY), "—")
def _e_fashion(ctx):
    return Result("—", needs(py(FASHION_DECAY)), "weight_decay is the paper's λ in v ← αv − η(g + 2λw); repeat "
                  "with 0 and 5e-4 for Fig. 6(a, c)")


# =========================================================================== chemnitz2025

CHEMNITZ = "chemnitz2025"


def _least_squares(seed: int = 11):
    """An overdetermined least-squares problem (D = 3 < qN = 20) and its unique minimum."""
    kx, ky = jax.random.split(jax.random.key(seed))
    x, y = jax.random.normal(kx, (20, 3)), jax.random.normal(ky, (20,))
    theta = jnp.linalg.lstsq(x, y)[0]
    return (lambda p: 0.5 * jnp.mean((x @ p - y) ** 2)), theta, x


@claim("C1", CHEMNITZ, "Thm 3.5, Eq. 17", "GD at a strict minimum is stable iff η‖Hess L(θ*)‖ < 2",
       only("C1"), "η* to 1e-9; GD verdicts at 0.98 η*, 1.02 η*")
def _c_gd(ctx):
    from gdchaos.analyses.toymaps import orbit_diagram

    loss, theta, x = _least_squares()
    lam_max = float(np.linalg.eigvalsh(np.asarray(x.T @ x / x.shape[0])).max())  # Hessian of ½ mean (xθ − y)²
    crit = float(gdchaos.minimum_stability(loss, theta, 0.1).critical_eta)
    etas = [0.98 * crit, 1.02 * crit]
    verdicts = [gdchaos.minimum_stability(loss, theta, e).verdict for e in etas]
    orbits = orbit_diagram(loss, etas, inits=(theta + 1e-6)[None], transient=0, keep=3000)
    escaped = np.asarray(orbits.escaped)[:, 0]
    final = np.asarray(jnp.linalg.norm(orbits.points[0, 0, -1] - theta))
    ok = within(crit, 2 / lam_max, 1e-9 * crit) and verdicts == ["stable", "unstable"] and not escaped[0] and escaped[1]
    return Result(f"η* = {crit:.6f} (2/λ_max = {2 / lam_max:.6f}); verdicts {verdicts}; GD from θ* + 1e-6: "
                  f"|θ − θ*| = {final:.0e} after 3000 steps at 0.98 η*, escaped at 1.02 η*: {bool(escaped[1])}",
                  agree(ok), "gdchaos.minimum_stability (η* = 2/λ_max) and GD orbits by gdchaos.orbit_diagram; least "
                  "squares with 3 parameters and 20 samples (overdetermined); λ_max independently from numpy's eigvalsh")


def _product_loss(scale: float):
    return lambda p: scale * (1 - p[0] * p[1]) ** 2


@claim("C2", CHEMNITZ, "Thm 3.1, Sec. 3.3", "the global minima of an overparameterized problem form a "
       "(D − qN)-dimensional manifold; Hess L has rank ≤ qN, so Dφ has eigenvalue 1 with multiplicity ≥ D − qN",
       only("C2"), "exact")
def _c_rank(ctx):
    loss = _product_loss(1.0)  # D = 2, q = 1, N = 1: M = {θ₁θ₂ = 1}
    counts = []
    for a in (0.5, 1.0, 2.0, 3.0):
        s = gdchaos.minimum_stability(loss, jnp.array([a, 1 / a]), 0.1)
        counts.append((int(s.n_normal), float(s.sharpness), 2 * (a * a + 1 / (a * a))))
    ok = all(n == 1 and within(sh, ex, 1e-9 * ex) for n, sh, ex in counts)
    return Result("non-flat directions on M: " + ", ".join(str(n) for n, _, _ in counts) + "; normal curvature "
                  + ", ".join(f"{sh:.4g}" for _, sh, _ in counts), agree(ok),
                  "L(θ) = (1 − θ₁θ₂)² (the paper's Fig. 7): D = 2, qN = 1; on M, Hess L = 2∇r∇rᵀ with r = 1 − θ₁θ₂, "
                  "rank 1 with eigenvalue 2(θ₁² + θ₂²), at θ = (a, 1/a), a = 0.5, 1, 2, 3")


@claim("C3", CHEMNITZ, "Fig. 7", "GD with η = 1/2 on L(θ) = (1 − θ₁θ₂)² from θ₀ = (2.5, 0.41) escapes the unstable "
       "part of M and converges to a point of its stable part",
       py("import jax.numpy as jnp, gdchaos as g; g.enable_float64(); o = g.orbit_diagram(lambda p: (1 - p[0] * p[1]) ** 2, "
          "[0.5], inits=jnp.array([[2.5, 0.41]]), transient=0, keep=2000); print(o.escaped, o.points[0, 0, -1])"),
       "exact")
def _c_fig7(ctx):
    from gdchaos.analyses.toymaps import orbit_diagram

    start = jnp.array([[2.5, 0.41]])
    printed = orbit_diagram(_product_loss(1.0), [0.5], inits=start, transient=0, keep=2000)
    halved = orbit_diagram(_product_loss(0.5), [0.5], inits=start, transient=0, keep=2000)
    end = np.asarray(halved.points[0, 0, -1])
    finite(end)
    curvature = float(gdchaos.minimum_stability(_product_loss(0.5), jnp.asarray(end), 0.5).sharpness)
    escaped = bool(printed.escaped[0, 0])
    verdict = PAPER_WRONG if escaped and not bool(halved.escaped[0, 0]) else agree(not escaped)
    return Result(f"as printed: escaped to infinity = {escaped}; with L = ½(1 − θ₁θ₂)²: converges to "
                  f"({end[0]:.3f}, {end[1]:.3f}), normal curvature {curvature:.3f} < 2/η = 4", verdict,
                  "On M the normal curvature of (1 − θ₁θ₂)² is 2(θ₁² + θ₂²) ≥ 4 (equality only at θ = ±(1, 1)), so with "
                  "η = 1/2 the condition 2(θ₁² + θ₂²) < 2/η = 4 (Eq. 19) holds nowhere on M: M has no stable section, "
                  "and GD from (2.5, 0.41) diverges. The figure fits L = ½(1 − θ₁θ₂)² (stable where θ₁² + θ₂² < 4) or "
                  "a learning rate below 1/2.")


@claim("C4", CHEMNITZ, "Thms 3.12–3.14", "SGD at an interpolating minimum is stable if the Lyapunov exponent of "
       "the random product A_Ξn ⋯ A_Ξ1 is negative and unstable if it is positive; with the full batch it is "
       "ln ρ(Dφ|_N)", only("C4"), "± 0.02 (finite product)")
def _c_sgd(ctx):
    n = 2
    x, y = jnp.eye(n), jnp.zeros(n)
    loss_fn = lambda p, xb, yb: 0.5 * jnp.mean((xb @ p - yb) ** 2)
    steps = ctx.size(8000, 4000)
    rows = []
    for eta in (1.5, 2.5):
        sgd = gdchaos.sgd_stability(loss_fn, jnp.zeros(n), x, y, eta, 1, steps=steps)
        full = gdchaos.sgd_stability(loss_fn, jnp.zeros(n), x, y, eta, n, steps=200, transient=10)
        gd = gdchaos.minimum_stability(lambda p: loss_fn(p, x, y), jnp.zeros(n), eta)
        rows.append((eta, float(sgd.exponent), math.log(abs(1 - eta)) / n, sgd.verdict, float(full.exponent),
                     math.log(float(gd.spectral_radius)), gd.verdict))
    finite([r[1] for r in rows], [r[4] for r in rows])
    ok = all(within(r[1], r[2], 0.02) and within(r[4], r[5], 1e-6) for r in rows)
    shown = "; ".join(f"η = {e}: SGD λ = {lam:.3f} (exact {ex:.3f}, {v}), full batch {fb:.3f} = ln ρ {lr:.3f} (GD {gv})"
                      for e, lam, ex, v, fb, lr, gv in rows)
    return Result(shown, agree(ok), "gdchaos.sgd_stability and minimum_stability; two orthonormal samples, batch 1: "
                  "the direction of the drawn sample is "
                  "multiplied by 1 − η, the other by 1, so λ = ½ ln|1 − η|; at η = 2.5 SGD is unstable while GD (ρ = "
                  "|1 − η/2| = 0.25) is stable. This example is not regular (Def. 3.13: Id − A_Ξ is singular), yet its "
                  "directions decouple into scalar random products, so the sign of λ still decides")


@claim("C5", CHEMNITZ, "Sec. 3.5, after Def. 3.13", "a generic global minimum is regular: every A_Ξ and "
       "Id − A_Ξ invertible on N(θ*), and the generated semigroup strongly irreducible",
       "python -m gdchaos.minima regularity.check_id_minus_a=true", "rank of Id − A_Ξ = ηH_Ξ|_N vs dim N")
def _c_regular(ctx):
    import itertools

    from gdchaos import minima as minima_app
    from gdchaos import regularity
    from gdchaos.experiments import minima

    cfg = compose_app("minima", ["regularity.check_id_minus_a=true"])
    problem = minima_app.build_problem(cfg)
    theta, res, _ = minima.fit_minimum(problem, cfg.fit.eta, cfg.fit.steps, cfg.fit.tol)
    flat, unravel = jax.flatten_util.ravel_pytree(theta)
    x, y = problem.x, problem.y
    hessian = jax.jit(jax.hessian(lambda v, xb, yb: problem.loss_fn(unravel(v), xb, yb)))
    values, vectors = np.linalg.eigh(np.asarray(hessian(flat, x, y)))
    basis = vectors[:, np.abs(values) > 1e-8 * np.abs(values).max()]  # N(θ*) = im H
    n, q, dim = int(x.shape[0]), int(problem.n_outputs), basis.shape[1]
    ranks = {}
    for batch in (1, 3):
        for idx in itertools.combinations(range(n), batch):
            m = basis.T @ np.asarray(hessian(flat, x[np.array(idx)], y[np.array(idx)])) @ basis
            sv = np.linalg.svd(m, compute_uv=False)
            ranks[batch] = max(ranks.get(batch, 0), int(np.sum(sv > 1e-8 * sv.max())))
    eta = 0.5 * 2 / float(values.max())
    shown = f"dim N = {dim}; max rank of H_Ξ|_N over all batches: {ranks[1]} (B = 1), {ranks[3]} (B = 3)"
    if not ctx.quick:  # the full check of Def. 3.13 (semigroup algebra, powers) by gdchaos.analyses.regularity
        literal = regularity.minimum_regularity(problem.loss_fn, theta, x, y, eta, 1, check_id_minus_a=True, exponent=False)
        only_a = regularity.minimum_regularity(problem.loss_fn, theta, x, y, eta, 3, check_id_minus_a=False, exponent=False)
        shown += (f"; gdchaos.analyses.regularity: B = 1 as stated: {literal.verdict.split(' (σ')[0]}; B = 3, A_Ξ only: "
                  f"{only_a.verdict.split(' (')[0]}")
    singular = all(r < dim for r in ranks.values())
    return Result(shown, PAPER_WRONG if singular else agree(True),
                  "At an interpolating minimum of an MSE loss, H_Ξ = (1/B) Σ_{i∈Ξ} J_iᵀJ_i has rank ≤ qB, while "
                  f"dim N(θ*) = rank H = qn for generic data (here q = {q}, n = {n}, qn = {q * n}); so Id − A_Ξ = "
                  "ηH_Ξ|_N is singular for every mini-batch with B < n, and condition (i) as written fails at generic "
                  f"minima (conf/minima.yaml: a 2-8-2 tanh MLP fit to 6 synthetic samples, residual {res:.0e}). "
                  "The gdchaos.analyses.regularity verdicts (full run) check Def. 3.13 as stated and with (i) asking only A_Ξ "
                  "invertible, which is what the SGD maps need.")


# --------------------------------------------------------------------------- table


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


PAPERS = (
    "Papers:",
    "",
    "* danovski2024: K. Danovski, M. C. Soriano, L. Lacasa, Dynamical stability and chaos in artificial neural network "
    "trajectories along training, Frontiers in Complex Systems 2, 1367957 (2024).",
    "* jimenez-gonzalez2026: P. Jiménez-González, M. C. Soriano, L. Lacasa, Leveraging chaotic transients in the "
    "training of artificial neural networks, arXiv:2506.08523v2 (2026).",
    "* herrmann2022: L. Herrmann, M. Granz, T. Landgraf, Chaotic dynamics are intrinsic to neural network training "
    "with SGD, NeurIPS 35 (2022), appendix.",
    "* chemnitz2025: D. Chemnitz, M. Engel, C. Kuehn, S.-V. Kuntz, A dynamical systems perspective on the analysis "
    "of neural networks (2025).",
    "* edge-of-chaos: Edge of chaos as a guiding principle for modern neural network training.",
)

COLUMNS = ("id", "paper", "where", "claim", "command", "gdchaos", "tolerance", "verdict", "note", "seconds")


def rows_of(results) -> list[dict]:
    return [dict(id=c.id, paper=c.paper, where=c.where, claim=c.text, command=c.command, gdchaos=r.value,
                 tolerance=c.tolerance, verdict=r.verdict, note=r.note, seconds=f"{s:.1f}") for c, r, s in results]


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_markdown(path: Path, rows: list[dict], header: dict, timings: list[dict], quick: bool) -> None:
    counts = {v: sum(r["verdict"].startswith(v) for r in rows) for v in VERDICTS}
    lines = [
        "# Reproduction of the papers' checkable claims" + (" (quick run)" if quick else ""),
        "",
        f"Generated by `{header['command']}` on {header['date']}.",
        "",
        f"* Machine: {header['machine']}; JAX backend {header['backend']}, {header['devices']} device(s), {header['dtype']}",
        f"* Versions: {header['versions']}; gdchaos commit {header['git']}",
        f"* Wall time: {header['wall'] / 60:.1f} min ({len(rows)} claims)",
        "* Verdicts: " + ", ".join(f"{v}: {n}" for v, n in counts.items() if n),
        "",
        "Each row: the claim with the paper's number and where it is stated, the command that computes gdchaos's "
        "number (run here in-process through the same configs and API), gdchaos's number, the tolerance and the "
        "verdict. Derivations and details are in the notes below the table.",
        "",
        *PAPERS,
        "",
        "| # | paper | claim (paper's number, where) | command | gdchaos | tolerance | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        command = f"`{r['command']}`" if "`" not in r["command"] else r["command"]
        lines.append("| " + " | ".join(cell(v) for v in (r["id"], r["paper"], f"{r['claim']} ({r['where']})", command,
                                                          r["gdchaos"], r["tolerance"], r["verdict"])) + " |")
    lines += ["", "## Notes and derivations", ""]
    lines += [f"* **{r['id']}** {r['note']}" for r in rows if r["note"]]
    if timings:
        lines += ["", "## Sweep runs", "", "Sweeps that differ only in η ran as one program over the union of their η.",
                  "", "| sweeps | overrides run | η | wall s | compile s | run s |", "|---|---|---|---|---|---|"]
        for t in timings:
            lines.append(f"| {cell('; '.join(f'`{s}`' for s in t['sweeps']))} | `{cell(t['overrides'])}` | "
                         f"{cell(t['eta'])} | {t['wall']:.0f} | {t['compile'] or 0:.0f} | {t['run'] or 0:.0f} |")
    lines += ["", "Per-claim seconds are in the CSV beside this file.", ""]
    path.write_text("\n".join(lines))


def select(claims, wanted: list[str] | None):
    """The claims named by id (exactly) or whose paper starts with one of ``wanted``; all if none given."""
    if not wanted:
        return list(claims)
    return [c for c in claims if any(c.id == w or c.paper.startswith(w) for w in wanted)]


def evaluate(c: Claim, ctx: Context) -> Result:
    """Compute one claim; in quick mode a statistical verdict becomes :data:`QUICK`; errors become an error row."""
    if ctx.quick and c.quick_skip:
        return Result("not computed in --quick", c.quick_skip, "run without --quick for gdchaos's number")
    try:
        result = c.compute(ctx)
    except Exception as err:  # a broken claim must show in the table, not stop the others
        return Result(f"error: {type(err).__name__}: {err}", f"error: {type(err).__name__}")
    if ctx.quick and c.statistical and result.verdict in (REPRODUCED, NOT_REPRODUCED):
        note = f"quick sizes; the full-size rule gives: {result.verdict}. {result.note}".strip()
        return Result(result.value, QUICK, note)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shrunk sizes; statistical verdicts are indicative only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown table (the CSV goes beside it)")
    parser.add_argument("--only", nargs="*", help="claim ids (D3, H7, ...) or papers (prefixes: danovski, chemnitz) to run")
    parser.add_argument("--list", action="store_true", help="list the claims and commands, run nothing")
    args = parser.parse_args(argv)
    claims = select(CLAIMS, args.only)
    if args.list:
        for c in claims:
            print(f"{c.id:4s} {c.paper:22s} {c.text}\n     {c.command}")
        return 0
    gdchaos.enable_float64()
    start = time.perf_counter()
    sweeps = [s for c in claims if not (args.quick and c.quick_skip) for s in c.sweeps]
    print(f"{len(claims)} claims, {len(set(sweeps))} sweep(s){' (quick)' if args.quick else ''}")
    runs, timings = run_sweeps(sweeps, args.quick)
    ctx = Context(args.quick, runs)
    results = []
    for c in claims:
        t = time.perf_counter()
        r = evaluate(c, ctx)
        results.append((c, r, time.perf_counter() - t))
        print(f"{c.id:4s} {r.verdict:34.34s} {r.value[:90]}")
    info = gdchaos.provenance()
    header = dict(
        command="python examples/reproduce.py" + (" --quick" if args.quick else "")
        + (f" --only {' '.join(args.only)}" if args.only else ""),
        date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        machine=machine(), backend=info.get("backend"), devices=info.get("device_count"), dtype=info.get("dtype"),
        versions=", ".join(f"{k.removeprefix('version_')} {v}" for k, v in info.items() if k.startswith("version_"))
        or f"jax {jax.__version__}, gdchaos {gdchaos.__version__}, python {platform.python_version()}",
        git=git_state(), wall=time.perf_counter() - start,
    )
    rows = rows_of(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out, rows, header, timings, args.quick)
    write_csv(args.out.with_suffix(".csv"), rows)
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')} in {header['wall'] / 60:.1f} min")
    return 1 if any(r.verdict.startswith("error") for _, r, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
