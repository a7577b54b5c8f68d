r"""Hydra entry point: ``python -m gdchaos.minima [overrides]``: SGD stability and regularity of an interpolating minimum.

Builds (:mod:`gdchaos.experiments.minima`) the configured data, model and MSE loss (``conf/minima.yaml``: a 2-8-2 tanh MLP on six
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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from omegaconf import OmegaConf

from gdchaos.analyses.regularity import normal_space
from gdchaos.cli.app import hydra_app
from gdchaos.cli.overrides import eta_grid
from gdchaos.core.config import integer, integer_list, number, select
from gdchaos.core.errors import check
from gdchaos.core.precision import enable_float64
from gdchaos.experiments import minima, results
from gdchaos.figures.minima import save_figure

if TYPE_CHECKING:
    import xarray as xr

    from gdchaos.experiments.minima import Problem

log = logging.getLogger("gdchaos.minima")
RESULTS_FILE = "minima.nc"
SUMMARY_FILE = "minima.csv"


def validate(cfg: Any) -> list[float]:
    """Check the config before any computation (one-line messages that state the fix); return the η values."""
    eta = eta_grid(cfg.eta)
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=[0.5,1.0] or 'eta=range(0.1,2.0,0.1)'")
    check(all(math.isfinite(e) and e > 0 for e in eta), f"learning rates must be finite and > 0; got {eta[:5]}")
    check(cfg.eta_units in ("critical", "absolute"), f"eta_units must be critical or absolute; got {cfg.eta_units!r}")
    check(cfg.loss == "mse", f"loss must be mse: an interpolating minimum needs a loss that is 0 at a finite fit "
                             f"(cross_entropy has none); got {cfg.loss!r}")
    check(cfg.precision == "float64", f"precision must be float64 (the rank decisions need it); got {cfg.precision!r}")
    check(select(cfg, "model.kind") in (None, "mlp"), f"model.kind must be mlp (the explicit Hessian needs a small "
                                                      f"model); got {select(cfg, 'model.kind')!r}")
    integer_list(cfg, "batch_sizes", 1)
    integer(cfg, "init_seed", 0)
    integer(cfg, "seed", 0)
    if cfg.fit.eta != "auto":
        number(cfg, "fit.eta", 0.0, strict=True)
    integer(cfg, "fit.steps", 1)
    number(cfg, "fit.tol", 0.0, strict=True)
    integer(cfg, "regularity.max_batches", 1)
    check(isinstance(cfg.regularity.check_id_minus_a, bool),
          f"regularity.check_id_minus_a must be true or false; got {cfg.regularity.check_id_minus_a!r}")
    powers = select(cfg, "regularity.powers")
    if powers is not None and len(powers):
        integer_list(cfg, "regularity.powers", 2)
    for key, minimum in (("word_length", 1), ("max_words", 1), ("max_orbit", 1)):
        integer(cfg, f"regularity.{key}", minimum)
    for key in ("rank_rtol", "inv_rtol"):
        number(cfg, f"regularity.{key}", 0.0, strict=True)
    if cfg.regularity.zero_rtol is not None:
        number(cfg, "regularity.zero_rtol", 0.0, strict=True)
    steps = integer(cfg, "stability.steps", 1)
    transient = integer(cfg, "stability.transient", 0)
    check(transient < steps, f"stability.transient must be < stability.steps ({steps}); got {transient}")
    check(isinstance(cfg.empirical.enabled, bool), f"empirical.enabled must be true or false; got {cfg.empirical.enabled!r}")
    if cfg.empirical.enabled:
        integer(cfg, "empirical.n_perturb", 1)
        integer(cfg, "empirical.steps", 1)
        for key in ("radius", "decrease", "escape"):
            number(cfg, f"empirical.{key}", 0.0, strict=True)
    return eta


def build_problem(cfg: Any) -> Problem:
    """The :class:`~gdchaos.experiments.minima.Problem` of ``cfg``'s data, model, loss, init_seed and batch_sizes."""


    return minima.build_problem(OmegaConf.to_container(cfg.data, resolve=True),
                                OmegaConf.to_container(cfg.model, resolve=True),
                                loss=cfg.loss, init_seed=cfg.init_seed, batch_sizes=list(cfg.batch_sizes))


def run_minima(cfg: Any, output_dir: str | Path) -> xr.Dataset:
    """Fit θ*, evaluate the η × B grid and write ``minima.nc``, ``minima.csv`` and ``minima.png`` into ``output_dir``."""



    values = validate(cfg)
    enable_float64()
    start = time.perf_counter()
    problem = build_problem(cfg)
    loss_fn, x, y, n_out = problem.loss_fn, problem.x, problem.y, problem.n_outputs
    theta, res, updates, fit_eta = minima.find_minimum(problem, cfg.fit.eta, cfg.fit.steps, cfg.fit.tol)
    fit_loss = float(loss_fn(theta, x, y))
    log.info("%s: θ* after %d GD updates (η=%.3g): residual %.2e, loss %.2e", problem.label, updates, fit_eta, res, fit_loss)
    reg = OmegaConf.to_container(cfg.regularity, resolve=True)
    space = normal_space(lambda p: loss_fn(p, x, y), theta, rtol=reg["zero_rtol"])
    d = space.basis.shape[1]
    check(d <= n_out * x.shape[0],
          f"the Hessian at θ* has {d} non-flat directions, more than q·n = {n_out * x.shape[0]} (the most at an exact "
          f"MSE interpolating minimum): θ* is not fit to machine precision (residual {res:.1e}); lower fit.tol or raise "
          "regularity.zero_rtol")
    normal_values = space.eigenvalues[np.abs(space.eigenvalues) > space.tol]
    lam_max = float(space.eigenvalues[-1])
    critical = 2.0 / lam_max
    etas = np.asarray(values) * (critical if cfg.eta_units == "critical" else 1.0)
    emp = cfg.empirical
    empirical = (minima.Empirical(emp.n_perturb, float(emp.radius), emp.steps, float(emp.decrease), float(emp.escape))
                 if emp.enabled else None)
    grid, key = [], jax.random.key(cfg.seed)
    for i, b in enumerate(cfg.batch_sizes):
        key, sub = jax.random.split(key)
        grid.append(minima.evaluate_batch_size(problem, theta, space, b, etas, sub, seed=cfg.seed, index=i,
                                               stability_steps=cfg.stability.steps,
                                               stability_transient=cfg.stability.transient, empirical=empirical, **reg))
        for eta, ret, row in zip(etas, grid[-1]["return_fraction"], grid[-1]["rows"]):
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
    }
    gd = np.array([np.max(np.abs(1.0 - e * normal_values)) for e in etas])
    powers = [int(m) for m in (cfg.regularity.powers or ())]
    ds = minima.to_dataset(list(cfg.batch_sizes), etas, critical, powers, grid, gd, attrs)
    path = results.write(ds, output_dir, file=RESULTS_FILE, summary=minima.summary_table(ds), summary_file=SUMMARY_FILE)
    fig_path = save_figure(ds, output_dir)
    log.info("computed in %.1fs (%s, %s)", seconds, ds.attrs["backend"], ds.attrs["dtype"])
    print(f"results: {path}")
    print(f"summary: {Path(output_dir) / SUMMARY_FILE}")
    print(f"figure: {fig_path}")
    return ds


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: Hydra runs :func:`run_minima` on ``conf/minima.yaml``."""
    hydra_app("gdchaos.minima", "minima", run_minima, None if argv is None else list(argv))


if __name__ == "__main__":
    main()
