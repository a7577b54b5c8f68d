"""The ``both`` analysis: ``finite`` and ``tangent`` on the same initial conditions, drawn together.

``python -m gdchaos.sweep analysis=both eta=1,4,8,16``. Adds ``tangent_window_exponent``, the
tangent exponent over each Λ's own fit window (:func:`add_window_matched_tangent`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from gdchaos.core.errors import check
from gdchaos.experiments import finite, tangent
from gdchaos.experiments.registry import Analysis, Grid, register_analysis
from gdchaos.experiments.task import Task

__all__ = ["add_window_matched_tangent"]


def add_window_matched_tangent(ds: xr.Dataset) -> xr.Dataset:
    """Add ``tangent_window_exponent`` (eta, eps, ic): the tangent exponent over Λ's own fit window.

    The finite-ε Λ is the growth rate over the best-R² window [s, s + L] near the start
    of training; the tangent λ_max averages over the whole run. Averaging the tangent
    log-stretch ln|R_11(t)| over the same window makes the two directly comparable
    (they agree where ε is small enough for the linearization to hold). Needs a
    Dataset with both methods on the same initial conditions (``analysis=both``) and a
    tangent run with ``renorm_every = 1`` (with r > 1 the log-stretch of r updates lands
    on every r-th update, so a window cannot be matched update by update).
    """
    check(
        int(ds.attrs.get("tangent_renorm_every", 1)) == 1,
        f"window-matched tangent exponents need renorm_every=1; this run has {ds.attrs.get('tangent_renorm_every')}",
    )
    log_stretch = ds.tangent_log_stretch.values  # (eta, ic, step)
    start, length = ds.window_start.values, ds.window_length.values  # (eta, eps, ic)
    csum = np.concatenate([np.zeros(log_stretch.shape[:-1] + (1,)), np.cumsum(log_stretch, axis=-1)], axis=-1)
    eta_i, ic_i = np.meshgrid(np.arange(ds.sizes["eta"]), np.arange(ds.sizes["ic"]), indexing="ij")
    out = np.empty(start.shape)
    for j in range(start.shape[1]):
        s, n = start[:, j], length[:, j]
        out[:, j] = (csum[eta_i, ic_i, s + n] - csum[eta_i, ic_i, s]) / n
    return ds.assign(tangent_window_exponent=(("eta", "eps", "ic"), out))


def validate(cfg: Any) -> None:
    """The checks of both parts."""
    finite.validate(cfg)
    tangent.validate(cfg)


def run(task: Task, grid: Grid, cfg: Any) -> xr.Dataset:
    """Both parts on the same initial conditions, merged, with the window-matched tangent exponent."""
    parts = [part.run(task, replace(grid, checkpoint=grid.checkpoint and grid.checkpoint.parent / part.name), cfg)
             for part in (finite.ANALYSIS, tangent.ANALYSIS)]
    return add_window_matched_tangent(xr.merge(parts, combine_attrs="drop_conflicts"))


def figures(ds: xr.Dataset, etas: list[float] | None = None) -> dict[str, Any]:
    """The figures of both parts."""
    return {**finite.ANALYSIS.figures(ds, etas), **tangent.ANALYSIS.figures(ds, etas)}


ANALYSIS = register_analysis(Analysis(
    "both", run, summary=(*finite.ANALYSIS.summary, *tangent.ANALYSIS.summary), figures=figures, validate=validate,
    uses_eps=True, description="finite and tangent exponents on the same initial conditions",
))
