"""Figure of the onset learning-rate finder and the LR range test (:mod:`gdchaos.analyses.onset`).

Left: ρ̂(η) of every measured point with its Wilson interval on a log-η axis, coloured by
search round, the bracket each round refined as a horizontal bar below ρ = 0, the
levels ½ and ``threshold``, and η_onset / η_full with their confidence intervals shaded.
Right: the range test's smoothed loss against η for each initial condition (up to its
stop), the per-IC suggestions and their geometric mean, with η_onset and η_full marked.

As every gdchaos figure (:mod:`gdchaos.figures.base`), :func:`onset_figure` returns a pyplot figure under
your backend; :func:`save_figure` draws a pyplot-free Agg figure and writes it.

Example:
    >>> import tempfile
    >>> import numpy as np
    >>> from gdchaos.analyses.onset import onset_search
    >>> r = onset_search(lambda e: (1 / (1 + (2.0 / e) ** 8), np.full(len(e), 50)), 0.1, 100.0)
    >>> save_figure(r, None, tempfile.mkdtemp()).name
    'onset.png'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdchaos.analyses.onset import OnsetResult, RangeTest
from gdchaos.figures.base import for_files, subplots, write_figures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_FILE = "onset.png"


def _rho_panel(ax, result) -> None:
    p = result.points
    rounds = int(p.round.max()) + 1 if p.round.size else 1
    colors = [f"C{i % 10}" for i in range(rounds)]
    for r in range(rounds):
        sel = p.round == r
        if not sel.any():
            continue
        yerr = np.vstack([p.rho[sel] - p.ci_low[sel], p.ci_high[sel] - p.rho[sel]])
        ax.errorbar(p.eta[sel], p.rho[sel], yerr=yerr, fmt="o", ms=4, capsize=2, color=colors[r], label=f"round {r}")
    for i, (_target, a, b) in enumerate(result.brackets):
        y = -0.06 - 0.035 * i
        ax.plot([a, b], [y, y], color=colors[i], lw=3, solid_capstyle="butt")
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.axhline(result.threshold, color="gray", lw=0.8, ls="--")
    if result.eta_onset is not None:
        ax.axvline(result.eta_onset, color="tab:red", lw=1.2, label=f"η_onset = {result.eta_onset:.3g}")
        ax.axvspan(*result.eta_onset_interval, color="tab:red", alpha=0.12, lw=0)
    if result.eta_full is not None:
        ax.axvline(result.eta_full, color="tab:purple", lw=1.2, ls="--",
                   label=f"η_full (ρ ≥ {result.threshold:g}) = {result.eta_full:.3g}")
        ax.axvspan(*result.interval, color="tab:purple", alpha=0.08, lw=0)
    ax.set_xscale("log")
    ax.set_ylim(-0.08 - 0.035 * len(result.brackets), 1.05)
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("ρ (fraction of ICs with Λ > 0)")
    ax.set_title(f"k-section search: {result.status}, {result.rounds} rounds, "
                 f"{result.member_steps:.3g} member-steps (grid: {result.grid_member_steps:.3g})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _range_panel(ax, rt, result) -> None:
    for i in range(rt.loss.shape[0]):
        stop = int(rt.stop[i]) + 1
        ax.plot(rt.eta[:stop], rt.loss[i, :stop], color="gray", lw=0.5, alpha=0.4)
        ax.plot(rt.eta[:stop], rt.smoothed[i, :stop], color="tab:blue", lw=1, alpha=0.7,
                label="smoothed loss (per IC)" if i == 0 else None)
        if np.isfinite(rt.suggestions[i]):
            ax.axvline(rt.suggestions[i], color="tab:blue", lw=0.5, alpha=0.4)
    if np.isfinite(rt.suggestion):
        ax.axvline(rt.suggestion, color="tab:blue", lw=2,
                   label=f"range test ({rt.rule}): {rt.suggestion:.3g} (±{rt.spread:.2f} dec)")
    if result is not None and result.eta_onset is not None:
        ax.axvline(result.eta_onset, color="tab:red", lw=1.2, label="η_onset")
    if result is not None and result.eta_full is not None:
        ax.axvline(result.eta_full, color="tab:purple", lw=1.2, ls="--", label="η_full")
    ax.set_xscale("log")
    finite = rt.loss[np.isfinite(rt.loss)]
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate η (increasing every update)")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: {rt.loss.shape[0]} ICs, {rt.member_steps} member-steps", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def onset_figure(result: OnsetResult, range_test: RangeTest | None = None) -> Figure:
    """ρ(η) and the search (left) and, given a :class:`~gdchaos.analyses.onset.RangeTest`, its loss curve (right).

    ``result``: an :class:`~gdchaos.analyses.onset.OnsetResult`.
    """
    ncols = 1 if range_test is None else 2
    fig, axes = subplots(1, ncols, figsize=(6.2 * ncols, 4.4), constrained_layout=True, squeeze=False)
    with np.errstate(invalid="ignore", over="ignore"):
        _rho_panel(axes[0, 0], result)
        if range_test is not None:
            _range_panel(axes[0, 1], range_test, result)
    return fig


def save_figure(result: OnsetResult, range_test: RangeTest | None, directory: str | Path, name: str = FIGURE_FILE) -> Path:
    """Write :func:`onset_figure` as ``directory/name`` (pyplot-free Agg figure); return its path."""
    with for_files():
        fig = onset_figure(result, range_test)
    return write_figures({name: fig}, directory, dpi=120)[0]
