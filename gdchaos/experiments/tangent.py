"""The ``tangent`` analysis: exact ε → 0 Lyapunov exponents from tangent maps (float32 suffices; the TPU path).

``python -m gdchaos.sweep analysis=tangent lyapunov.k=8``. Settings: ``lyapunov.k``,
``lyapunov.transient``, ``lyapunov.renorm_every`` (conf/analysis/tangent.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import xarray as xr

from gdchaos.analyses.lyapunov.tangent_ensemble import run_tangent
from gdchaos.core.config import integer
from gdchaos.core.errors import check
from gdchaos.core.precision import provenance
from gdchaos.experiments.registry import Analysis, Grid, register_analysis
from gdchaos.experiments.results import TANGENT_SUMMARY_VARS, tangent_dataset
from gdchaos.experiments.task import Task
from gdchaos.figures import sweep as sweep_figures

__all__ = ["tangent_sweep"]
log = logging.getLogger("gdchaos.sweep")


def tangent_sweep(
    task: Task,
    *,
    eta: Sequence[float],
    n_ic: int = 50,
    steps: int = 1000,
    seed: int = 0,
    k: int = 1,
    transient: int = 0,
    renorm_every: int = 1,
    chunk: int = 100,
    progress: bool = True,
    attrs: dict | None = None,
    checkpoint: str | Path | None = None,
) -> xr.Dataset:
    """Top-k tangent Lyapunov exponents over an η grid × ``n_ic`` initial conditions, as a Dataset.

    Same initial conditions as :func:`finite_sweep` with the same ``seed``. Runs in
    float32 (no x64 needed). See :func:`gdchaos.experiments.results.tangent_dataset`.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> ds = tangent_sweep(task, eta=[0.1, 5.0], n_ic=2, steps=40, k=3, progress=False)
        >>> ds.tangent_exponents.shape
        (2, 2, 3)
    """
    result = run_tangent(
        task.tmap,
        task.model.init,
        eta=eta,
        n_ic=n_ic,
        steps=steps,
        key=jax.random.key(seed),
        k=k,
        hyper=task.hyper,
        transient=transient,
        renorm_every=renorm_every,
        chunk=chunk,
        progress=progress,
        checkpoint=checkpoint,
    )
    meta = {**provenance(), "task": task.name, "seed": seed, "analysis": "tangent", **(attrs or {})}
    return tangent_dataset(result, meta)



def validate(cfg: Any) -> None:
    """One-line errors for ``lyapunov.k``, ``lyapunov.transient`` and ``lyapunov.renorm_every``."""
    integer(cfg, "lyapunov.k", 1)
    integer(cfg, "lyapunov.renorm_every", 1)
    transient = integer(cfg, "lyapunov.transient", 0)
    check(transient < cfg.steps, f"lyapunov.transient must be in [0, steps={cfg.steps}); got {transient}")


def run(task: Task, grid: Grid, cfg: Any) -> xr.Dataset:
    """:func:`tangent_sweep` with the sweep config's settings."""
    log.info("%s tangent: %d η × %d ICs × k=%d × %d updates", task.name, len(grid.eta), grid.n_ic, cfg.lyapunov.k, grid.steps)
    return tangent_sweep(
        task, eta=grid.eta, n_ic=grid.n_ic, steps=grid.steps, seed=grid.seed, k=cfg.lyapunov.k,
        transient=cfg.lyapunov.transient, renorm_every=cfg.lyapunov.renorm_every, chunk=grid.chunk,
        progress=grid.progress, attrs=grid.attrs, checkpoint=grid.checkpoint,
    )


ANALYSIS = register_analysis(Analysis(
    "tangent", run, summary=TANGENT_SUMMARY_VARS, figures=sweep_figures.tangent_figures, validate=validate,
    description="tangent maps: the top-k Lyapunov exponents in the ε → 0 limit",
))
