"""Figure of ``python -m gdchaos.minima``: SGD exponent λ(θ*) vs η per batch size, marked by regularity.

Takes the ``minima.nc`` Dataset (:func:`gdchaos.experiments.minima.to_dataset`);
:func:`save_figure` writes it as a pyplot-free Agg figure (:mod:`gdchaos.figures.base`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdchaos.figures.base import for_files, subplots, write_figures

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["FIGURE_FILE", "minima_figure", "save_figure"]

FIGURE_FILE = "minima.png"


def minima_figure(ds: xr.Dataset) -> Figure:
    """λ(η) per B (filled markers: regular; open: not regular; triangles: inconclusive) with 2/λ_max and the GD
    exponent; below, the fraction of perturbed SGD runs that return."""
    fig, axes = subplots(2, 1, figsize=(8, 7), sharex=True, constrained_layout=True)
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


def save_figure(ds: xr.Dataset, directory: str | Path) -> str:
    """Write ``minima.png`` into ``directory``; return its path."""
    with for_files():
        fig = minima_figure(ds)
    return str(write_figures({FIGURE_FILE: fig}, directory, dpi=130)[0])
