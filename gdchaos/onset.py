r"""Hydra entry point: ``python -m gdchaos.onset [overrides]``: a learning rate at the onset of chaos.

Runs :func:`gdchaos.analyses.onset.onset_search` on the configured task (default: Iris,
4-10-3 sigmoid MLP, full-batch GD) with ρ(η) from the finite-ε method
(:class:`gdchaos.analyses.onset.FiniteRho`), the LR range test
(:func:`gdchaos.analyses.onset.lr_range_test`) as the baseline, and, with
``validate.enabled``, ⟨τ⟩ over fresh initial conditions at η_onset, η_full and the range
test's suggestion. Writes into the run directory

* ``results.nc``: the measured points (η, ρ̂, n, Wilson interval, round), the bracket of
  every round, the range test's loss curves and the validation, with the result, its cost
  (member-steps, compile and run seconds) and the config as attributes;
* ``summary.csv``: one row per candidate η (onset, full, range test): η, the finder's cost,
  ⟨τ⟩ ± standard error and the censored count;
* ``onset.png``: ρ(η) with the bracket history, and the range test's loss curve.

::

    python -m gdchaos.onset                                  # Iris, bracket [0.01, 30]
    python -m gdchaos.onset data=digits model.hidden=[16] model.activation=tanh eta_min=0.001

When ρ never crosses ½ or ``threshold`` in the bracket, or is not monotone enough to
bracket a crossing, the run prints one line with the status and the measured ρ(η) (the
files are written all the same, with the η that was not found as NaN).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np
from omegaconf import DictConfig

from gdchaos.analyses import onset
from gdchaos.analyses.onset import RULES, OnsetResult, RangeTest, TauValidation
from gdchaos.cli.app import compose_config, hydra_app
from gdchaos.core.config import integer, number, select
from gdchaos.core.errors import check
from gdchaos.core.precision import enable_float64
from gdchaos.experiments.results import dataset, write
from gdchaos.experiments.task import build_task
from gdchaos.figures.onset import save_figure

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

log = logging.getLogger("gdchaos.onset")
RESULTS_FILE = "results.nc"
SUMMARY_FILE = "summary.csv"


def validate(cfg: DictConfig) -> None:
    """Check every setting before any computation (one-line :class:`~gdchaos.core.errors.ConfigError`)."""
    eta_min = number(cfg, "eta_min", 0.0, strict=True)
    eta_max = number(cfg, "eta_max", 0.0, strict=True)
    check(eta_min < eta_max, f"eta_min must be < eta_max; got [{eta_min}, {eta_max}]")
    integer(cfg, "k", 2)
    number(cfg, "rtol", 0.0, strict=True)
    threshold = number(cfg, "threshold", 0.5)
    check(threshold <= 1, f"threshold must be in [0.5, 1]; got {threshold}")
    integer(cfg, "max_rounds", 1)
    confidence = number(cfg, "confidence", 0.0, strict=True)
    check(confidence < 1, f"confidence must be in (0, 1); got {confidence}")
    integer(cfg, "n_ic", 1)
    integer(cfg, "n_perturb", 1)
    number(cfg, "eps", 0.0, strict=True)
    integer(cfg, "steps", 2)
    integer(cfg, "seed", 0)
    number(cfg, "lyapunov.min_r2", -math.inf)
    number(cfg, "lyapunov.min_exponent", -math.inf)
    start_max = integer(cfg, "lyapunov.start_max", 0)
    length_min = integer(cfg, "lyapunov.length_min", 2)
    length_max = integer(cfg, "lyapunov.length_max", length_min)
    check(cfg.steps >= start_max + length_max + 2,
          f"steps={cfg.steps} is too short for the fit windows; raise steps to >= {start_max + length_max + 2} "
          "or lower lyapunov.start_max / lyapunov.length_max")
    check(select(cfg, "loss") in ("cross_entropy", "mse"), f"loss must be cross_entropy or mse; got {select(cfg, 'loss')!r}")
    check(isinstance(select(cfg, "range_test.enabled"), bool), "range_test.enabled must be true or false")
    rt_min = number(cfg, "range_test.eta_min", 0.0, strict=True)
    rt_max = number(cfg, "range_test.eta_max", 0.0, strict=True)
    check(rt_min < rt_max, f"range_test.eta_min must be < range_test.eta_max; got [{rt_min}, {rt_max}]")
    integer(cfg, "range_test.num_it", 2)
    integer(cfg, "range_test.n_ic", 1)
    beta = number(cfg, "range_test.beta", 0.0)
    check(beta < 1, f"range_test.beta must be in [0, 1); got {beta}")
    number(cfg, "range_test.stop_factor", 1.0, strict=True)
    check(select(cfg, "range_test.rule") in RULES, f"range_test.rule must be one of {list(RULES)}; got {select(cfg, 'range_test.rule')!r}")
    integer(cfg, "range_test.seed", 0)
    check(isinstance(select(cfg, "validate.enabled"), bool), "validate.enabled must be true or false")
    integer(cfg, "validate.n_ic", 1)
    integer(cfg, "validate.steps", 1)
    integer(cfg, "validate.seed", 0)
    if select(cfg, "validate.accuracy_target") is not None:
        target = number(cfg, "validate.accuracy_target", 0.0)
        check(target <= 1, f"validate.accuracy_target must be in [0, 1] or null; got {target}")


def _nan(x) -> float:
    return float("nan") if x is None else float(x)


def to_dataset(result: OnsetResult, range_test: RangeTest | None = None, validation: TauValidation | None = None,
               attrs: dict | None = None) -> xr.Dataset:
    """The search, range test and validation as one results Dataset (:func:`gdchaos.experiments.results.dataset`)."""


    p = result.points
    data = {
        "rho": (("point",), p.rho),
        "n": (("point",), p.n),
        "rho_ci_low": (("point",), p.ci_low),
        "rho_ci_high": (("point",), p.ci_high),
        "point_round": (("point",), p.round),
        "bracket_low": (("round",), np.array([b[1] for b in result.brackets])),
        "bracket_high": (("round",), np.array([b[2] for b in result.brackets])),
        "bracket_target": (("round",), np.array([b[0] for b in result.brackets])),
    }
    coords = {"eta": (("point",), p.eta), "round": np.arange(len(result.brackets))}
    if range_test is not None:
        data.update({
            "range_loss": (("range_ic", "range_step"), range_test.loss),
            "range_smoothed": (("range_ic", "range_step"), range_test.smoothed),
            "range_stop": (("range_ic",), range_test.stop),
            "range_suggestion": (("range_ic",), range_test.suggestions),
        })
        coords["range_eta"] = (("range_step",), range_test.eta)
    if validation is not None:
        labels, v = validation
        data.update({
            "tau": (("candidate", "validate_ic"), v.tau),
            "tau_mean": (("candidate",), v.tau_mean),
            "tau_sem": (("candidate",), v.tau_sem),
            "n_censored": (("candidate",), v.n_censored),
        })
        coords.update({"candidate": list(labels), "candidate_eta": (("candidate",), v.eta)})
    rt = range_test
    meta = {
        "status": result.status,
        "message": result.message,
        "eta_onset": _nan(result.eta_onset),
        "eta_onset_ci_low": _nan(result.eta_onset_interval and result.eta_onset_interval[0]),
        "eta_onset_ci_high": _nan(result.eta_onset_interval and result.eta_onset_interval[1]),
        "eta_onset_bracket_low": _nan(result.onset_bracket and result.onset_bracket[0]),
        "eta_onset_bracket_high": _nan(result.onset_bracket and result.onset_bracket[1]),
        "eta_full": _nan(result.eta_full),
        "eta_full_ci_low": _nan(result.interval and result.interval[0]),
        "eta_full_ci_high": _nan(result.interval and result.interval[1]),
        "threshold": result.threshold,
        "rtol": result.rtol,
        "confidence": result.confidence,
        "rounds": result.rounds,
        "member_steps": result.member_steps,
        "member_steps_onset": _nan(result.member_steps_onset),
        "grid_member_steps": result.grid_member_steps,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        **({} if rt is None else {
            "range_suggestion_mean": rt.suggestion, "range_spread_decades": rt.spread, "range_rule": rt.rule,
            "range_member_steps": rt.member_steps, "range_member_steps_to_stop": rt.member_steps_to_stop,
            "range_compile_seconds": rt.compile_seconds, "range_run_seconds": rt.run_seconds}),
        **(attrs or {}),
    }
    descriptions = {
        "rho": "fraction of initial conditions with a kept finite Lyapunov exponent",
        "rho_ci_low": f"Wilson score interval, {100 * result.confidence:g}%",
        "rho_ci_high": f"Wilson score interval, {100 * result.confidence:g}%",
        "bracket_low": "bracket refined in each round (round 0: the initial bracket, both ends measured)",
        "range_smoothed": "bias-corrected EMA of the loss (fastai), NaN after the 4x-best stop",
        "tau_mean": "mean updates to the accuracy target over fresh ICs, never-reached censored at validate.steps",
        "tau_sem": "standard error of tau_mean, std / sqrt(n)",
    }
    return dataset(data, coords, meta, descriptions)


def summary(result: OnsetResult, range_test: RangeTest | None = None,
            validation: TauValidation | None = None) -> pd.DataFrame:
    """One row per candidate η: method, η, finder cost, ⟨τ⟩ ± s.e. (pandas DataFrame)."""
    import pandas as pd

    rows = [
        {"method": "onset", "eta": _nan(result.eta_onset), "finder_member_steps": result.member_steps,
         "finder_seconds": result.compile_seconds + result.run_seconds},
        {"method": "full", "eta": _nan(result.eta_full), "finder_member_steps": result.member_steps,
         "finder_seconds": result.compile_seconds + result.run_seconds},
    ]
    if range_test is not None:
        rows.append({"method": "range_test", "eta": range_test.suggestion, "finder_member_steps": range_test.member_steps,
                     "finder_seconds": range_test.compile_seconds + range_test.run_seconds})
    table = pd.DataFrame(rows)
    table["status"] = result.status
    for name in ("tau_mean", "tau_sem", "n_censored"):
        table[name] = float("nan")
    if validation is not None:
        labels, v = validation
        for label, tm, se, nc in zip(labels, v.tau_mean, v.tau_sem, v.n_censored):
            table.loc[table.method == label, ["tau_mean", "tau_sem", "n_censored"]] = [tm, se, nc]
    return table


def run_onset(cfg: DictConfig, output_dir: str | Path) -> OnsetResult:
    """Search, range test, validation; write ``results.nc``, ``summary.csv`` and ``onset.png`` into ``output_dir``."""
    from omegaconf import OmegaConf


    validate(cfg)
    enable_float64()
    container = OmegaConf.to_container(cfg, resolve=True)
    task = build_task(container["data"], container["model"], container["optimizer"], loss=cfg.loss)
    rho_at = onset.FiniteRho(task, n_ic=cfg.n_ic, n_perturb=cfg.n_perturb, steps=cfg.steps, eps=float(cfg.eps), seed=cfg.seed,
                             min_r2=float(cfg.lyapunov.min_r2), min_exponent=float(cfg.lyapunov.min_exponent),
                             starts=range(0, cfg.lyapunov.start_max + 1, 5),
                             lengths=range(cfg.lyapunov.length_min, cfg.lyapunov.length_max + 1, 5))
    log.info("%s: onset search in [%g, %g], k=%d, rtol=%g, %d ICs × %d members × %d updates per η",
             task.name, cfg.eta_min, cfg.eta_max, cfg.k, cfg.rtol, cfg.n_ic, cfg.n_perturb + 1, cfg.steps)
    result = onset.onset_search(rho_at, float(cfg.eta_min), float(cfg.eta_max), k=cfg.k, rtol=float(cfg.rtol),
                                threshold=float(cfg.threshold), max_rounds=cfg.max_rounds, confidence=float(cfg.confidence))
    log.info("%s", result.message)
    log.info("cost: %d rounds, %.3g member-steps (η_onset: %.3g; uniform grid of the same resolution: %.3g), "
             "%.1f s compile + %.1f s run", result.rounds, result.member_steps, _nan(result.member_steps_onset),
             result.grid_member_steps, result.compile_seconds, result.run_seconds)
    rt = None
    if cfg.range_test.enabled:
        r = cfg.range_test
        rt = onset.lr_range_test(task.tmap, task.model.init, eta_min=float(r.eta_min), eta_max=float(r.eta_max), num_it=r.num_it,
                                 n_ic=r.n_ic, key=jax.random.key(r.seed), hyper=task.hyper, beta=float(r.beta),
                                 stop_factor=float(r.stop_factor), rule=r.rule)
        log.info("range test (%s): η = %.4g (±%.2f decades over %d ICs), %d member-steps, %.1f s compile + %.1f s run",
                 rt.rule, rt.suggestion, rt.spread, r.n_ic, rt.member_steps, rt.compile_seconds, rt.run_seconds)
    validation = None
    candidates = [(name, eta) for name, eta in (("onset", result.eta_onset), ("full", result.eta_full),
                                                ("range_test", None if rt is None else rt.suggestion))
                  if eta is not None and np.isfinite(eta)]
    if cfg.validate.enabled and candidates:
        v = cfg.validate
        val = onset.validate_tau(task, [e for _, e in candidates], n_ic=v.n_ic, steps=v.steps, seed=v.seed,
                                 target=None if v.accuracy_target is None else float(v.accuracy_target))
        validation = ([name for name, _ in candidates], val)
        for (name, eta), tm, se, nc in zip(candidates, val.tau_mean, val.tau_sem, val.n_censored):
            log.info("⟨τ⟩ at %s η = %.4g: %.1f ± %.1f updates (%d of %d censored at %d)", name, eta, tm, se, nc, v.n_ic, v.steps)
    ds = to_dataset(result, rt, validation, {"task": task.name, "seed": cfg.seed, "config": OmegaConf.to_yaml(cfg)})
    path = write(ds, output_dir, file=RESULTS_FILE, summary=summary(result, rt, validation), summary_file=SUMMARY_FILE)
    figure = save_figure(result, rt, output_dir)
    if result.status not in ("ok", "max_rounds"):
        log.info("results: %s; figure: %s", path, figure)
        print(result.message)
    else:
        print(f"results: {path}")
        print(f"figure: {figure}")
    return result


def _prepare(args: list[str]) -> list[str]:
    """Compose the config as Hydra will and :func:`validate` it before Hydra creates a run directory."""
    cfg = compose_config(args, "onset")
    if cfg is not None:
        validate(cfg)
    return args


def main(argv: list[str] | None = None) -> None:
    """Console entry point: Hydra runs :func:`run_onset` on ``conf/onset.yaml``."""
    hydra_app("gdchaos.onset", "onset", run_onset, None if argv is None else list(argv), prepare=_prepare)


if __name__ == "__main__":
    main()
