"""Figures of ``python -m gdchaos.toymap``: the orbit diagram and λ(η) of GD on a 1-D potential.

Each function takes the ``toymap.nc`` Dataset (variables ``points``, ``lyapunov``,
``bounded_fraction`` over ``eta``) and the η values to mark (e.g. where the minimum loses
stability); :func:`save_figures` writes the set as pyplot-free Agg figures
(:mod:`gdchaos.figures.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdchaos.figures.base import for_files, subplots, write_figures

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "bifurcation_figure", "combined_figure", "lyapunov_figure", "save_figures"]

FIGURES = ("bifurcation.png", "lyapunov.png", "toymap.png")
"""The files :func:`save_figures` writes."""


def _draw_orbits(ax: Axes, ds: xr.Dataset, marks: Sequence[float]) -> None:
    pts = ds.points.values
    eta = np.broadcast_to(ds.eta.values[:, None, None], pts.shape)
    ok = np.isfinite(pts)
    ax.plot(eta[ok], pts[ok], ",", color="k", alpha=0.25, rasterized=True)
    for m in marks:
        ax.axvline(m, color="tab:red", lw=0.8, ls="--")
    ax.set_ylabel("w (post-transient orbit)")
    ax.set_title(f"GD on {ds.attrs.get('potential', 'V')}: orbit diagram ({ds.sizes['init']} ICs × {ds.sizes['step']} steps)")


def _draw_lyapunov(ax: Axes, ds: xr.Dataset, marks: Sequence[float]) -> None:
    eta, lam = ds.eta.values, ds.lyapunov.values
    ax.plot(eta, lam, color="tab:blue", lw=0.8, label="λ(η) = ⟨ln|1 − ηV''(w_t)|⟩")
    ax.fill_between(eta, 0, np.where(lam > 0, lam, 0), color="tab:red", alpha=0.3, lw=0, label="λ > 0 (chaotic)")
    ax.axhline(0.0, color="gray", lw=0.8)
    for i, m in enumerate(marks):
        ax.axvline(m, color="tab:red", lw=0.8, ls="--", label=f"η = {m:g}: minimum loses stability" if i == 0 else None)
    finite = lam[np.isfinite(lam)]
    if finite.size:
        ax.set_ylim(max(float(finite.min()), -4.0) - 0.1, float(finite.max()) + 0.2)
    escaped = 1 - ds.bounded_fraction.values
    if escaped.max() > 0:
        ax.plot(eta, escaped, ":", color="tab:orange", label="fraction of orbits escaped")
    ax.set_ylabel("Lyapunov exponent λ (nat / step)")
    ax.set_xlabel("learning rate η")
    ax.legend(fontsize=8, loc="upper left")


def bifurcation_figure(ds: xr.Dataset, marks: Sequence[float] = ()) -> Figure:
    """Orbit diagram: the kept orbit points vs η."""
    fig, ax = subplots(figsize=(9, 4.5), constrained_layout=True)
    _draw_orbits(ax, ds, marks)
    ax.set_xlabel("learning rate η")
    return fig


def lyapunov_figure(ds: xr.Dataset, marks: Sequence[float] = ()) -> Figure:
    """λ(η) with the 0 line, the chaotic region shaded and the stability limit(s) marked."""
    fig, ax = subplots(figsize=(9, 4), constrained_layout=True)
    _draw_lyapunov(ax, ds, marks)
    for line in ax.get_lines():
        line.set_rasterized(True)
    return fig


def combined_figure(ds: xr.Dataset, marks: Sequence[float] = ()) -> Figure:
    """Orbit diagram above λ(η), sharing the η axis."""
    fig, axes = subplots(2, 1, figsize=(9, 7.5), sharex=True, constrained_layout=True)
    _draw_orbits(axes[0], ds, marks)
    _draw_lyapunov(axes[1], ds, marks)
    return fig


def save_figures(ds: xr.Dataset, directory: str | Path, marks: Sequence[float] = ()) -> list[str]:
    """Write ``bifurcation.png``, ``lyapunov.png`` and ``toymap.png`` into ``directory``; return their paths."""
    makers = (bifurcation_figure, lyapunov_figure, combined_figure)
    with for_files():
        figures = {name: make(ds, marks) for name, make in zip(FIGURES, makers)}
    return [str(p) for p in write_figures(figures, directory, dpi=150)]
