r"""Hydra entry point: ``python -m gdchaos.minima [overrides]``: SGD stability and regularity of an interpolating minimum.

Builds the configured data, model and MSE loss (``conf/minima.yaml``: a 2-8-2 tanh MLP on six
synthetic samples), finds a global minimum θ* by full-batch GD until every sample is fit to
``fit.tol``, and over the grid η × B computes

* λ(θ*), the exponent of the SGD random product on N(θ*) (:func:`gdchaos.analyses.curvature.stability.sgd_stability`),
* the GD limit 2/λ_max and the GD exponent ln ρ(I − ηH|_N),
* the regularity verdict of chemnitz2025 Def. 3.13 (:mod:`gdchaos.analyses.regularity`), hence whether
  Thm 3.14 applies (regular: stable if λ < 0, unstable if λ > 0),
* optionally the fraction of SGD runs from θ* + δ (‖δ‖ = ``empirical.radius``) that return,

and writes into the run directory ``minima.nc`` (arrays, configuration and provenance),
``minima.csv`` (one row per (B, η)) and ``minima.png`` (λ vs η per B, marked regular or not,
with 2/λ_max; the return fraction below)::

    python -m gdchaos.minima
    python -m gdchaos.minima 'eta=range(0.1,2.0,0.1)' batch_sizes=[1,3]
    python -m gdchaos.minima model.hidden=[12] data.n_samples=10 regularity.check_id_minus_a=true

``eta`` is in units of 2/λ_max(θ*) (``eta_units: critical``) or absolute.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, NamedTuple

from gdchaos.cli.app import hydra_app
from gdchaos.core.errors import ConfigError, check

log = logging.getLogger("gdchaos.minima")
RESULTS_FILE = "minima.nc"
SUMMARY_FILE = "minima.csv"
FIGURE_FILE = "minima.png"


def _select(cfg, key):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key)


def _number(cfg, key: str, positive: bool = True) -> float:
    value = _select(cfg, key)
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > 0 or not positive), f"{key} must be a finite number{' > 0' if positive else ''}; got {value!r}")
    return float(value)


def _integer(cfg, key: str, minimum: int) -> int:
    value = _select(cfg, key)
    check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
          f"{key} must be an integer >= {minimum}; got {value!r}")
    return value


def _int_list(cfg, key: str, minimum: int) -> list[int]:
    from omegaconf import ListConfig

    value = _select(cfg, key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    check(isinstance(value, (list, ListConfig)) and len(value) > 0
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value),
          f"{key} must be a non-empty list of integers >= {minimum}; got {value!r}")
    return [int(v) for v in value]


def validate(cfg) -> list[float]:
    """Check the config before any computation (one-line messages that state the fix); return the η values."""
    from gdchaos.toymap import eta_grid

    eta = eta_grid(cfg.eta)
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=[0.5,1.0] or 'eta=range(0.1,2.0,0.1)'")
    check(all(math.isfinite(e) and e > 0 for e in eta), f"learning rates must be finite and > 0; got {eta[:5]}")
    check(cfg.eta_units in ("critical", "absolute"), f"eta_units must be critical or absolute; got {cfg.eta_units!r}")
    check(cfg.loss == "mse", f"loss must be mse: an interpolating minimum needs a loss that is 0 at a finite fit "
                             f"(cross_entropy has none); got {cfg.loss!r}")
    check(cfg.precision == "float64", f"precision must be float64 (the rank decisions need it); got {cfg.precision!r}")
    check(_select(cfg, "model.kind") in (None, "mlp"), f"model.kind must be mlp (the explicit Hessian needs a small "
                                                       f"model); got {_select(cfg, 'model.kind')!r}")
    _int_list(cfg, "batch_sizes", 1)
    _integer(cfg, "init_seed", 0)
    _integer(cfg, "seed", 0)
    if cfg.fit.eta != "auto":
        _number(cfg, "fit.eta")
    _integer(cfg, "fit.steps", 1)
    _number(cfg, "fit.tol")
    _integer(cfg, "regularity.max_batches", 1)
    check(isinstance(cfg.regularity.check_id_minus_a, bool),
          f"regularity.check_id_minus_a must be true or false; got {cfg.regularity.check_id_minus_a!r}")
    powers = _select(cfg, "regularity.powers")
    if powers is not None and len(powers):
        _int_list(cfg, "regularity.powers", 2)
    for key, minimum in (("word_length", 1), ("max_words", 1), ("max_orbit", 1)):
        _integer(cfg, f"regularity.{key}", minimum)
    for key in ("rank_rtol", "inv_rtol"):
        _number(cfg, f"regularity.{key}")
    if cfg.regularity.zero_rtol is not None:
        _number(cfg, "regularity.zero_rtol")
    steps = _integer(cfg, "stability.steps", 1)
    transient = _integer(cfg, "stability.transient", 0)
    check(transient < steps, f"stability.transient must be < stability.steps ({steps}); got {transient}")
    check(isinstance(cfg.empirical.enabled, bool), f"empirical.enabled must be true or false; got {cfg.empirical.enabled!r}")
    if cfg.empirical.enabled:
        _integer(cfg, "empirical.n_perturb", 1)
        _integer(cfg, "empirical.steps", 1)
        for key in ("radius", "decrease", "escape"):
            _number(cfg, f"empirical.{key}")
    return eta


# --------------------------------------------------------------------------- the problem and θ*


class Problem(NamedTuple):
    """A small supervised MSE problem: ``loss_fn(params, x, y)``, ``apply(params, x) -> outputs``, initial parameters."""

    loss_fn: Callable
    apply: Callable
    params: Any
    x: Any
    y: Any
    n_outputs: int
    label: str


def build_problem(cfg) -> Problem:
    """The :class:`Problem` of the data, model and loss config (checks that it is over-parameterized)."""
    import jax
    import jax.numpy as jnp
    from omegaconf import OmegaConf

    from gdchaos.core import data as data_lib
    from gdchaos.core.losses import get_loss
    from gdchaos.core.maps import supervised_loss
    from gdchaos.experiments.task import build_model

    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    name = data_cfg.pop("name")
    ds = data_lib.load(name, images=False, **data_cfg)
    model, model_name = build_model(OmegaConf.to_container(cfg.model, resolve=True), ds.x_train.shape[1:], ds.n_classes)
    x = jnp.asarray(ds.x_train, jnp.float64).reshape(len(ds.x_train), -1)
    y = jnp.asarray(ds.y_train)
    params = model.init(jax.random.key(cfg.init_seed))
    n_params = sum(int(leaf.size) for leaf in jax.tree.leaves(params))
    constraints = ds.n_classes * len(ds.x_train)
    check(n_params > constraints,
          f"the model has {n_params} parameters for q·n = {ds.n_classes}·{len(ds.x_train)} = {constraints} fit constraints; "
          "an interpolating manifold needs more parameters: widen model.hidden or reduce data.n_samples")
    for b in cfg.batch_sizes:
        check(b < len(ds.x_train), f"batch_sizes must be < the {len(ds.x_train)} training samples (B = n is GD); got {b}")
    loss_fn = supervised_loss(model.apply, get_loss(cfg.loss))
    return Problem(loss_fn, model.apply, params, x, y, ds.n_classes, f"{name}/{model_name}/mse")


def residual(apply, params, x, y) -> float:
    """max_i |f(x_i) − e_{y_i}|: how far the outputs are from the one-hot targets of the MSE loss."""
    import jax.numpy as jnp

    out = apply(params, x)
    return float(jnp.max(jnp.abs(out - jnp.eye(out.shape[-1], dtype=out.dtype)[y])))


def fit_minimum(problem: Problem, eta, steps: int, tol: float, chunk: int = 2000):
    """Full-batch GD θ ← θ − η∇L(θ) to machine precision: on while max_i |f(x_i) − e_{y_i}| > ``tol`` or still
    halving per ``chunk`` updates, at most ``steps`` updates.

    Returns ``(θ*, residual, updates)``.
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    loss_fn, apply, params, x, y = problem.loss_fn, problem.apply, problem.params, problem.x, problem.y
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def advance(v, eta):
        def body(v, _):
            return v - eta * jax.grad(lambda u: loss_fn(unravel(u), x, y))(v), None

        return jax.lax.scan(body, v, None, length=chunk)[0]

    done, res, previous = 0, residual(apply, params, x, y), math.inf
    v = flat
    while done < steps and (res > tol or res < 0.5 * previous):  # on to roundoff: until it stops improving
        v = advance(v, jnp.asarray(eta, flat.dtype))
        done += chunk
        previous, res = res, residual(apply, unravel(v), x, y)
        if not math.isfinite(res):
            raise ConfigError(f"the GD fit diverged at fit.eta={eta:g}; lower fit.eta (or use fit.eta=auto)")
    return unravel(v), res, done


# --------------------------------------------------------------------------- the grid


def _returns(loss_fn, params, x, y, batch_size, etas, cfg, seed: int):
    """Fraction of SGD runs θ_{t+1} = θ_t − η∇L_{Ξ_t}(θ_t) from θ* + δ (‖δ‖ = radius, random direction) that come back:
    L(θ_T) ≤ ``decrease``·L(θ_0) with ‖θ_t − θ*‖ ≤ ``escape`` throughout.

    Ξ_t are uniform B-subsets (drawn up front; the same sequences for every η)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree

    emp = cfg.empirical
    flat, unravel = ravel_pytree(params)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(emp.n_perturb, flat.size))
    deltas = jnp.asarray(emp.radius * u / np.linalg.norm(u, axis=1, keepdims=True), flat.dtype)
    batches = jnp.asarray(np.argsort(rng.random((emp.n_perturb, emp.steps, x.shape[0])), axis=-1)[..., :batch_size])

    def loss(v, xb, yb):
        return loss_fn(unravel(v), xb, yb)

    def one(eta, delta, idx):
        def body(carry, i):
            v, far = carry
            v = v - eta * jax.grad(loss)(v, x[i], y[i])
            dist = jnp.linalg.norm(v - flat)
            return (v, jnp.maximum(far, jnp.where(jnp.isfinite(dist), dist, jnp.inf))), None

        v0 = flat + delta
        (v, far), _ = jax.lax.scan(body, (v0, jnp.asarray(0.0, flat.dtype)), idx)
        l0, l1 = loss(v0, x, y), loss(v, x, y)
        return jnp.isfinite(l1) & (far <= emp.escape) & (l1 <= emp.decrease * l0)

    runs = jax.jit(jax.vmap(jax.vmap(one, (None, 0, 0)), (0, None, None)))(jnp.asarray(etas, flat.dtype), deltas, batches)
    return jnp.mean(runs.astype(flat.dtype), axis=1)


def find_minimum(cfg, problem: Problem):
    """θ* by :func:`fit_minimum` with the ``fit`` config; a one-line error when it does not interpolate.

    Returns ``(θ*, residual, updates, η_fit)``.
    """
    import numpy as np

    from gdchaos.analyses.regularity import normal_space

    loss_fn, x, y = problem.loss_fn, problem.x, problem.y
    if cfg.fit.eta == "auto":
        lam0 = float(np.max(normal_space(lambda p: loss_fn(p, x, y), problem.params).eigenvalues))
        check(math.isfinite(lam0) and lam0 > 0, f"the Hessian at the initial parameters has λ_max = {lam0}; set fit.eta")
        fit_eta = 1.0 / lam0
    else:
        fit_eta = float(cfg.fit.eta)
    theta, res, updates = fit_minimum(problem, fit_eta, cfg.fit.steps, cfg.fit.tol)
    check(res <= cfg.fit.tol, f"GD did not reach an interpolating minimum: residual {res:.2e} > fit.tol={cfg.fit.tol:g} "
                              f"after {updates} updates at η={fit_eta:.3g}; raise fit.steps, change fit.eta or init_seed, "
                              "or widen model.hidden")
    return theta, res, updates, fit_eta


def evaluate_batch_size(cfg, problem: Problem, theta, space, batch_size: int, etas, key, index: int = 0) -> dict:
    """λ (vmapped over η), the regularity check per η and the empirical return fraction for one B."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gdchaos.analyses import regularity as reg
    from gdchaos.analyses.curvature.stability import sgd_stability

    loss_fn, x, y, rc = problem.loss_fn, problem.x, problem.y, cfg.regularity
    zero_rtol = None if rc.zero_rtol is None else float(rc.zero_rtol)
    powers = tuple(int(m) for m in (rc.powers or ()))
    bh = reg.batch_hessians(loss_fn, theta, x, y, batch_size, max_batches=rc.max_batches, seed=cfg.seed, rtol=zero_rtol,
                            space=space)
    stab = jax.vmap(lambda e: sgd_stability(loss_fn, theta, x, y, e, batch_size, steps=cfg.stability.steps,
                                            transient=cfg.stability.transient, key=key, rtol=zero_rtol))(jnp.asarray(etas))
    returns = (np.asarray(_returns(loss_fn, theta, x, y, batch_size, etas, cfg, cfg.seed + index))
               if cfg.empirical.enabled else np.full(len(etas), np.nan))
    rows = []
    for eta, lam in zip(etas, np.asarray(stab.exponent)):
        r = reg.minimum_regularity(loss_fn, theta, x, y, float(eta), batch_size, check_id_minus_a=rc.check_id_minus_a,
                           powers=powers, word_length=rc.word_length, max_words=rc.max_words, max_orbit=rc.max_orbit,
                           rank_rtol=float(rc.rank_rtol), inv_rtol=float(rc.inv_rtol), rtol=zero_rtol, seed=cfg.seed,
                           exponent=False, hessians=bh)
        rows.append({"verdict": r.verdict, "regular": r.regular, "theorem": reg.theorem_statement(r.verdict, float(lam)),
                     "a_margin": r.check.a_margin, "id_minus_a_margin": r.check.id_minus_a_margin,
                     "algebra_dim": r.check.algebra_dim, "word_length": r.check.word_length, "orbit": r.check.orbit,
                     "power_dim": [dict(r.check.power_dims).get(m, -1) for m in powers]})
    return {"exponent": np.asarray(stab.exponent), "sgd_stable": np.asarray(stab.stable), "return_fraction": returns,
            "rows": rows, "n_batches": len(bh.batches), "n_batches_total": bh.n_total, "sampled": bh.sampled,
            "leak": float(np.max(bh.leak))}


def run_minima(cfg, output_dir):
    """Fit θ*, evaluate the η × B grid and write ``minima.nc``, ``minima.csv`` and ``minima.png`` into ``output_dir``."""
    import time

    import jax
    import numpy as np
    from omegaconf import OmegaConf

    from gdchaos.core.precision import enable_float64, provenance
    from gdchaos.analyses.regularity import normal_space

    values = validate(cfg)
    enable_float64()
    start = time.perf_counter()
    problem = build_problem(cfg)
    loss_fn, x, y, n_out = problem.loss_fn, problem.x, problem.y, problem.n_outputs
    theta, res, updates, fit_eta = find_minimum(cfg, problem)
    fit_loss = float(loss_fn(theta, x, y))
    log.info("%s: θ* after %d GD updates (η=%.3g): residual %.2e, loss %.2e", problem.label, updates, fit_eta, res, fit_loss)
    zero_rtol = None if cfg.regularity.zero_rtol is None else float(cfg.regularity.zero_rtol)
    space = normal_space(lambda p: loss_fn(p, x, y), theta, rtol=zero_rtol)
    d = space.basis.shape[1]
    check(d <= n_out * x.shape[0],
          f"the Hessian at θ* has {d} non-flat directions, more than q·n = {n_out * x.shape[0]} (the most at an exact "
          f"MSE interpolating minimum): θ* is not fit to machine precision (residual {res:.1e}); lower fit.tol or raise "
          "regularity.zero_rtol")
    normal_values = space.eigenvalues[np.abs(space.eigenvalues) > space.tol]
    lam_max = float(space.eigenvalues[-1])
    critical = 2.0 / lam_max
    etas = np.asarray(values) * (critical if cfg.eta_units == "critical" else 1.0)
    results, key = [], jax.random.key(cfg.seed)
    for i, b in enumerate(cfg.batch_sizes):
        key, sub = jax.random.split(key)
        results.append(evaluate_batch_size(cfg, problem, theta, space, b, etas, sub, i))
        for eta, lam, ret, row in zip(etas, results[-1]["exponent"], results[-1]["return_fraction"], results[-1]["rows"]):
            log.info("B=%d η=%.4g (%.3g·2/λ_max): %s | %s | returned %.2f", b, eta, eta / critical, row["theorem"],
                     row["verdict"], ret)
    seconds = time.perf_counter() - start
    attrs = {
        "problem": problem.label,
        "n_params": int(space.basis.shape[0]),
        "n_train": int(x.shape[0]),
        "n_outputs": int(n_out),
        "n_normal": int(d),
        "lambda_max": lam_max,
        "lambda_min_normal": float(np.min(normal_values)),
        "critical_eta": critical,
        "zero_tolerance": float(space.tol),
        "fit_eta": fit_eta,
        "fit_updates": int(updates),
        "fit_residual": res,
        "fit_loss": fit_loss,
        "check_id_minus_a": int(cfg.regularity.check_id_minus_a),
        "rank_rtol": float(cfg.regularity.rank_rtol),
        "inv_rtol": float(cfg.regularity.inv_rtol),
        "run_seconds": seconds,
        "config": OmegaConf.to_yaml(cfg),
        **provenance(),
    }
    gd = np.array([np.max(np.abs(1.0 - e * normal_values)) for e in etas])
    powers = [int(m) for m in (cfg.regularity.powers or ())]
    ds = to_dataset(list(cfg.batch_sizes), etas, critical, powers, results, gd, attrs)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RESULTS_FILE)
    ds.to_netcdf(path, engine="h5netcdf")
    csv_path = write_summary(ds, os.path.join(output_dir, SUMMARY_FILE))
    fig_path = save_figure(ds, output_dir)
    log.info("computed in %.1fs (%s, %s)", seconds, ds.attrs["backend"], ds.attrs["dtype"])
    print(f"results: {path}")
    print(f"summary: {csv_path}")
    print(f"figure: {fig_path}")
    return ds


def to_dataset(batch_sizes, etas, critical, powers, results, gd, attrs):
    """The grid (one :func:`evaluate_batch_size` result per B) as an ``xarray.Dataset`` with dims ``(batch_size, eta[, power])``."""
    import numpy as np
    import xarray as xr

    dims = ("batch_size", "eta")

    def grid(key, dtype=float):
        return np.array([[row[key] for row in r["rows"]] for r in results], dtype=dtype)

    data = {k: (dims, np.array([r[k] for r in results], float)) for k in ("exponent", "return_fraction")}
    data["sgd_stable"] = (dims, np.array([r["sgd_stable"] for r in results], np.int64))
    data.update({k: (dims, grid(k)) for k in ("a_margin", "id_minus_a_margin")})
    data.update({k: (dims, grid(k, np.int64)) for k in ("regular", "algebra_dim", "word_length", "orbit")})
    data["power_dim"] = ((*dims, "power"), grid("power_dim", np.int64).reshape(len(results), len(etas), len(powers)))
    data["verdict"] = (dims, grid("verdict", object).astype(str))
    data["theorem"] = (dims, grid("theorem", object).astype(str))
    data.update({k: (("batch_size",), np.array([r[k] for r in results], np.int64))
                 for k in ("n_batches", "n_batches_total", "sampled")})
    data["leak"] = (("batch_size",), np.array([r["leak"] for r in results]))
    data["gd_exponent"] = (("eta",), np.log(gd))
    ds = xr.Dataset(
        data,
        coords={"batch_size": np.asarray(batch_sizes), "eta": np.asarray(etas),
                "eta_over_critical": ("eta", np.asarray(etas) / critical), "power": np.asarray(powers, np.int64)},
        attrs=attrs,
    )
    ds["exponent"].attrs.update(units="nat / step", description="λ(θ*) of the SGD random product on N(θ*) (sgd_stability)")
    ds["gd_exponent"].attrs.update(units="nat / step", description="ln ρ(I − ηH|_N): full-batch GD")
    ds["regular"].attrs["description"] = "1 where the Def. 3.13 check says regular"
    ds["return_fraction"].attrs["description"] = "fraction of SGD runs from θ* + δ that return (NaN: not run)"
    ds["power_dim"].attrs["description"] = "dimension of the algebra of the m-th powers (d² = n_normal²: irreducible)"
    return ds


def write_summary(ds, path) -> str:
    """One CSV row per (B, η)."""
    import csv

    cols = ["batch_size", "eta", "eta_over_critical", "exponent", "gd_exponent", "sgd_stable", "regular", "verdict",
            "a_margin", "id_minus_a_margin", "algebra_dim", "return_fraction", "n_batches", "n_batches_total"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + [f"power_dim_{int(m)}" for m in ds.power.values])
        for b in ds.batch_size.values:
            s = ds.sel(batch_size=b)
            for j in range(ds.sizes["eta"]):
                t = s.isel(eta=j)
                row = [int(b), f"{float(t.eta):.6g}", f"{float(t.eta_over_critical):.6g}", f"{float(t.exponent):.6g}",
                       f"{float(t.gd_exponent):.6g}", int(t.sgd_stable), int(t.regular), str(t.verdict.values),
                       f"{float(t.a_margin):.3g}", f"{float(t.id_minus_a_margin):.3g}", int(t.algebra_dim),
                       f"{float(t.return_fraction):.3g}", int(s.n_batches), int(s.n_batches_total)]
                w.writerow(row + [int(v) for v in t.power_dim.values])
    return path


def figure(ds):
    """λ(η) per B (filled markers: regular; open: not regular; triangles: inconclusive) with 2/λ_max and the GD
    exponent; below, the fraction of perturbed SGD runs that return."""
    import numpy as np

    from gdchaos.figures.sweep import _agg_subplots

    fig, axes = _agg_subplots(2, 1, figsize=(8, 7), sharex=True, constrained_layout=True)
    eta, crit = ds.eta.values, float(ds.attrs["critical_eta"])
    ax = axes[0]
    ax.plot(eta, ds.gd_exponent.values, "k--", lw=1, label="GD: ln ρ(I − ηH|_N)")
    for i, b in enumerate(ds.batch_size.values):
        s = ds.sel(batch_size=b)
        lam = s.exponent.values
        color = f"C{i}"
        ax.plot(eta, lam, "-", color=color, lw=1, label=f"SGD B={int(b)}: λ(θ*)")
        verdict = s.verdict.values.astype(str)
        regular = s.regular.values.astype(bool)
        inconclusive = np.char.startswith(verdict, "inconclusive")
        ax.plot(eta[regular], lam[regular], "o", color=color, ms=6)
        ax.plot(eta[~regular & ~inconclusive], lam[~regular & ~inconclusive], "o", mfc="none", color=color, ms=6)
        ax.plot(eta[inconclusive], lam[inconclusive], "^", mfc="none", color=color, ms=6)
        axes[1].plot(eta, s.return_fraction.values, "o-", color=color, lw=1, ms=4, label=f"B={int(b)}")
    ax.plot([], [], "o", color="gray", label="regular (Def. 3.13)")
    ax.plot([], [], "o", mfc="none", color="gray", label="not regular")
    ax.plot([], [], "^", mfc="none", color="gray", label="inconclusive")
    for a in axes:
        a.axvline(crit, color="tab:red", lw=0.8, ls=":")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.text(crit, 0.02, " GD limit 2/λ_max", color="tab:red", fontsize=8, transform=ax.get_xaxis_transform())
    part = "A_Ξ and Id − A_Ξ" if ds.attrs.get("check_id_minus_a", 1) else "A_Ξ only (Id − A_Ξ not required)"
    ax.set_title(f"{ds.attrs['problem']}: D={ds.attrs['n_params']}, dim N={ds.attrs['n_normal']}; (i) checks {part}",
                 fontsize=9)
    ax.set_ylabel("exponent (nat / step)")
    ax.legend(fontsize=7, loc="best")
    axes[1].set_ylabel("fraction of SGD runs from θ*+δ that return")
    axes[1].set_xlabel("learning rate η")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].legend(fontsize=7)
    return fig


def save_figure(ds, directory) -> str:
    """Write ``minima.png`` into ``directory`` (a pyplot-free Agg figure)."""
    from gdchaos.figures.sweep import write_figures

    return str(write_figures({FIGURE_FILE: figure(ds)}, directory, dpi=130)[0])


def main(argv: list[str] | None = None) -> None:
    """Console entry point: Hydra runs :func:`run_minima` on ``conf/minima.yaml``."""
    hydra_app("gdchaos.minima", "minima", run_minima, argv)


if __name__ == "__main__":
    main()
