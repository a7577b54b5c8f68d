"""The ``sharpness`` analysis: Hessian curvature along training, sharpness λ_max(H) vs the edge of stability 2/η.

``python -m gdchaos.sweep analysis=sharpness eta=0.5,2,4``. Settings: ``sharpness.*``
(conf/analysis/sharpness.yaml).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import xarray as xr

from gdchaos.analyses.curvature.tracking import run_sharpness
from gdchaos.core.config import integer, select
from gdchaos.core.errors import check
from gdchaos.core.precision import provenance
from gdchaos.experiments.registry import Analysis, Grid, register_analysis
from gdchaos.experiments.results import SHARPNESS_SUMMARY_VARS, sharpness_dataset
from gdchaos.experiments.task import Task
from gdchaos.figures import sweep as sweep_figures

__all__ = ["sharpness_sweep"]
log = logging.getLogger("gdchaos.sweep")


def sharpness_sweep(
    task: Task,
    *,
    eta: Sequence[float],
    n_ic: int = 5,
    steps: int = 2000,
    every: int = 20,
    seed: int = 0,
    k: int = 1,
    method: str = "auto",
    num_iters: int | None = 20,
    flat_rtol: float | None = None,
    chunk: int = 10,
    progress: bool = True,
    attrs: dict | None = None,
    checkpoint: str | Path | None = None,
) -> xr.Dataset:
    """Sharpness and curvature of the full-batch training loss along training, over η × ``n_ic``, as a Dataset.

    Same initial conditions as :func:`finite_sweep` with the same ``seed``. See
    :func:`gdchaos.analyses.curvature.tracking.run_sharpness` and :func:`gdchaos.experiments.results.sharpness_dataset`.
    ``flat_rtol``: eigenvalues with |λ| ≤ flat_rtol·max|λ| count as flat (``n_flat``), not
    chaotic; None: N·ε of the dtype.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [4]}, {"name": "sgd"})
        >>> ds = sharpness_sweep(task, eta=[0.5, 4.0], n_ic=2, steps=20, every=10, progress=False)
        >>> ds.sharpness.shape
        (2, 2, 2)
    """
    x, y = task.dataset.x_train, task.dataset.y_train
    result = run_sharpness(
        task.tmap,
        task.model.init,
        task.train_loss or (lambda p: task.loss_fn(p, x, y)),
        eta=eta,
        n_ic=n_ic,
        steps=steps,
        every=every,
        key=jax.random.key(seed),
        k=k,
        method=method,
        num_iters=num_iters,
        rtol=flat_rtol,
        observe=task.observe,
        hyper=task.hyper,
        chunk=chunk,
        progress=progress,
        checkpoint=checkpoint,
    )
    meta = {**provenance(), "task": task.name, "seed": seed, "sharpness_every": every, "analysis": "sharpness", **(attrs or {})}
    return sharpness_dataset(result, meta)



def validate(cfg: Any) -> None:
    """One-line errors for the ``sharpness.*`` settings."""
    check(isinstance(cfg.get("sharpness"), Mapping), "analysis=sharpness needs its settings block sharpness: {...}")
    every = integer(cfg, "sharpness.every", 1)
    integer(cfg, "sharpness.k", 1)
    check(every <= cfg.steps, f"sharpness.every={every} must be <= steps={cfg.steps}")
    method = cfg.sharpness.method
    check(method in ("auto", "full", "lanczos"), f"sharpness.method must be auto, full or lanczos; got {method!r}")
    if cfg.sharpness.num_iters is not None:
        integer(cfg, "sharpness.num_iters", cfg.sharpness.k)
    flat = select(cfg, "sharpness.flat_rtol")
    check(flat is None or (isinstance(flat, (int, float)) and not isinstance(flat, bool) and math.isfinite(flat) and flat >= 0),
          f"sharpness.flat_rtol must be null (N·eps of the dtype) or a finite number >= 0; got {flat!r}")


def run(task: Task, grid: Grid, cfg: Any) -> xr.Dataset:
    """:func:`sharpness_sweep` with the sweep config's settings."""
    sh = cfg.sharpness
    log.info("%s curvature: %d η × %d ICs × %d updates, every %d", task.name, len(grid.eta), grid.n_ic, grid.steps, sh.every)
    return sharpness_sweep(
        task, eta=grid.eta, n_ic=grid.n_ic, steps=grid.steps, seed=grid.seed, every=sh.every, k=sh.k, method=sh.method,
        num_iters=sh.num_iters, flat_rtol=sh.get("flat_rtol"), chunk=max(1, grid.chunk // sh.every),
        progress=grid.progress, attrs=grid.attrs, checkpoint=grid.checkpoint,
    )


ANALYSIS = register_analysis(Analysis(
    "sharpness", run, summary=SHARPNESS_SUMMARY_VARS, figures=sweep_figures.sharpness_figures, validate=validate,
    description="Hessian curvature along training: sharpness vs 2/η, chaotic and flat direction counts",
))
