"""The ``finite`` analysis: ε-ball divergence → finite network Lyapunov exponents Λ, λ_nMLE, ρ and ⟨τ⟩.

``python -m gdchaos.sweep analysis=finite`` (the default). Settings: ``lyapunov.*`` (the
window grid, filters and estimator) and ``perturbation.*`` (conf/analysis/finite.yaml,
conf/perturbation/box.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr

from gdchaos.analyses.lyapunov.finite import (
    DEFAULT_LENGTHS,
    DEFAULT_STARTS,
    ESTIMATORS,
    check_estimator,
    check_window_grid,
    finite_exponents,
)
from gdchaos.analyses.training_time import first_passage
from gdchaos.core.config import integer, number
from gdchaos.core.errors import check
from gdchaos.core.models import count_params
from gdchaos.core.precision import provenance
from gdchaos.engine import ensemble
from gdchaos.experiments.registry import Analysis, Grid, register_analysis
from gdchaos.experiments.results import SUMMARY_VARS, to_dataset
from gdchaos.experiments.task import Task
from gdchaos.figures import sweep as sweep_figures

__all__ = ["finite_sweep", "window_grid"]
log = logging.getLogger("gdchaos.sweep")


def finite_sweep(
    task: Task,
    *,
    eta: Sequence[float],
    eps: Sequence[float] | float = (1e-8,),
    n_ic: int = 50,
    n_perturb: int = 5,
    steps: int = 1000,
    seed: int = 0,
    starts: Sequence[int] = DEFAULT_STARTS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    min_r2: float = 0.9,
    min_exponent: float = 0.05,
    estimator: str = "window",
    accuracy_target: float | None = None,
    include_bias: bool = False,
    distance: str = "l1",
    chunk: int = 100,
    progress: bool = True,
    attrs: dict | None = None,
    checkpoint: str | Path | None = None,
    ic_slice: int | str | None = "auto",
) -> xr.Dataset:
    """Finite network Lyapunov exponents, ρ and ⟨τ⟩ over an (η, ε) grid, as a Dataset.

    Runs the (η, ε, ic, member) ensemble of ``task`` in one compiled program, fits Λ
    per initial condition with ``estimator`` (``"window"``: best-R² slope; ``"ratio"``: the
    papers' Eq. 3, see :mod:`gdchaos.analyses.lyapunov.finite`; the Dataset also summarizes the
    other one), and measures τ on the reference trajectories. ``ic_slice``: run the ICs in
    slices of this size (memory); ``"auto"`` slices only when the ensemble would not fit in
    half the device memory. See :mod:`gdchaos.experiments.results` for the layout.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> ds = finite_sweep(task, eta=[0.5, 5.0], eps=[1e-3], n_ic=2, n_perturb=2, steps=40,
        ...                   starts=[0, 5], lengths=[20, 30], progress=False)
        >>> ds.lambda_nmle.shape
        (2, 1)
    """
    eps = list(np.atleast_1d(eps).astype(float))
    check_window_grid(steps, starts, lengths)
    check_estimator(estimator)
    target = task.accuracy_target if accuracy_target is None else float(accuracy_target)
    if ic_slice == "auto":
        n_params = count_params(jax.eval_shape(task.model.init, jax.random.key(0)))
        records = 3 + len(jax.eval_shape(task.observe, jax.eval_shape(task.model.init, jax.random.key(0))))
        itemsize = np.dtype(jax.numpy.result_type(float)).itemsize
        per_ic = len(np.atleast_1d(eta)) * len(eps) * (n_perturb + 1) * (4 * n_params + records * min(chunk, steps)) * itemsize
        ic_slice = ensemble.auto_ic_slice(n_ic, per_ic)
    result = ensemble.run(
        task.tmap,
        task.model.init,
        eta=eta,
        eps=eps,
        n_ic=n_ic,
        n_perturb=n_perturb,
        steps=steps,
        key=jax.random.key(seed),
        observe=task.observe,
        hyper=task.hyper,
        include_bias=include_bias,
        distance=distance,
        chunk=chunk,
        progress=progress,
        checkpoint=checkpoint,
        ic_slice=ic_slice,
    )
    members = result.records["distance"][:, :, :, 1:]  # step 0: the initial ε-ball distances, before any update
    by_estimator = {name: finite_exponents(members, starts, lengths, min_r2, min_exponent, name) for name in ESTIMATORS}
    tau = first_passage(result.records["accuracy"][:, :, :, 0], target)
    meta = {
        **provenance(),
        "task": task.name,
        "accuracy_target": target,
        "distance": distance,
        "include_bias": int(include_bias),
        "min_r2": min_r2,
        "min_exponent": min_exponent,
        "lyapunov_estimator": estimator,
        "seed": seed,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "analysis": "finite",
        **(attrs or {}),
    }
    return to_dataset(result, by_estimator[estimator], tau, meta, by_estimator)



def window_grid(cfg: Any) -> tuple[list[int], list[int]]:
    """The window starts and lengths of ``cfg.lyapunov`` (``range(min, max + 1, step)`` each)."""
    ly = cfg.lyapunov
    return (list(range(ly.start_min, ly.start_max + 1, ly.start_step)),
            list(range(ly.length_min, ly.length_max + 1, ly.length_step)))


def validate(cfg: Any) -> None:
    """One-line errors for the ``lyapunov.*`` window settings and the estimator."""
    for key in ("start_min", "start_max", "start_step", "length_min", "length_max", "length_step"):
        integer(cfg, f"lyapunov.{key}", 1 if key.endswith("step") or key.startswith("length") else 0)
    for key in ("min_r2", "min_exponent"):
        number(cfg, f"lyapunov.{key}")
    starts, lengths = window_grid(cfg)
    ly = cfg.lyapunov
    check(bool(starts), f"lyapunov.start_max={ly.start_max} < lyapunov.start_min={ly.start_min}: no window starts")
    check(bool(lengths), f"lyapunov.length_max={ly.length_max} < lyapunov.length_min={ly.length_min}: no window lengths")
    check(ly.length_min >= 2, f"lyapunov.length_min must be >= 2 (a line needs two points); got {ly.length_min}")
    check_window_grid(cfg.steps, starts, lengths)
    check_estimator(cfg.lyapunov.get("estimator"))


def run(task: Task, grid: Grid, cfg: Any) -> xr.Dataset:
    """:func:`finite_sweep` with the sweep config's settings."""
    starts, lengths = window_grid(cfg)
    log.info("%s finite-ε: %d η × %d ε × %d ICs × %d members × %d updates", task.name, len(grid.eta), len(grid.eps),
             grid.n_ic, cfg.n_perturb + 1, grid.steps)
    return finite_sweep(
        task, eta=grid.eta, eps=grid.eps, n_ic=grid.n_ic, n_perturb=cfg.n_perturb, steps=grid.steps, seed=grid.seed,
        starts=starts, lengths=lengths, min_r2=cfg.lyapunov.min_r2, min_exponent=cfg.lyapunov.min_exponent,
        estimator=cfg.lyapunov.estimator, accuracy_target=cfg.accuracy_target,
        include_bias=cfg.perturbation.include_bias, distance=cfg.perturbation.distance, chunk=grid.chunk,
        progress=grid.progress, attrs=grid.attrs, checkpoint=grid.checkpoint, ic_slice=cfg.ic_slice,
    )


ANALYSIS = register_analysis(Analysis(
    "finite", run, summary=SUMMARY_VARS, figures=sweep_figures.finite_figures, validate=validate, uses_eps=True,
    description="ε-ball divergence: finite network Lyapunov exponents, ρ and ⟨τ⟩",
))
