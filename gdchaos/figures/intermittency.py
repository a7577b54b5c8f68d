"""Figure of ``python -m gdchaos.intermittency``: laminar phases and bursts of the loss and single weights.

Takes the Dataset of :func:`gdchaos.analyses.intermittency.analyze` (``results.nc``);
:func:`save_figures` writes ``intermittency.png`` as a pyplot-free Agg figure
(:mod:`gdchaos.figures.base`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdchaos.analyses.intermittency import DIFFERENCES, REGIMES
from gdchaos.figures.base import figure, for_files, write_figures

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FIGURE_FILE", "intermittency_figure", "save_figures"]

FIGURE_FILE = "intermittency.png"


def _shown_ic(ds: xr.Dataset, e: int, ic: int | str) -> int:
    if ic != "auto":
        return int(ic)
    score = np.where(ds.loss_finite.values[e] == 1, ds.loss_n_phases.values[e], -2)
    return int(np.argmax(score))


def _shade(ax: Axes, step: np.ndarray, mask: np.ndarray, color: str = "tab:green", label: str | None = None) -> None:
    ax.fill_between(step, 0, 1, where=mask.astype(bool), transform=ax.get_xaxis_transform(),
                    color=color, alpha=0.18, lw=0, step="mid", label=label)


def _shown_weights(ds: xr.Dataset, e: int, ic: int, n: int) -> list[int]:
    reg = ds.weight_regime.values[e, ic]
    order = np.lexsort((-ds.weight_n_phases.values[e, ic], reg != REGIMES.index("intermittent")))
    return [int(i) for i in order[:n] if reg[i] != REGIMES.index("nonfinite")]


def intermittency_figure(ds: xr.Dataset, ic: int | str = "auto", n_weights: int = 3) -> Figure:
    """Loss and a few single weights per η with laminar phases shaded; laminar lengths, burst fraction, weight regimes.

    Row 1: the loss of one IC per η (``ic``; ``"auto"``: the one with the most laminar
    phases), its laminar phases shaded. Row 2: ``n_weights`` weights of that IC
    (intermittent ones first) over the loss's laminar phases. Row 3: laminar-length
    distribution of the loss per η (pooled over ICs), loss burst fraction vs η, the
    fraction of weight series per regime with the onset coincidence vs chance.
    """
    n_eta = ds.sizes["eta"]
    show_w = "weights" in ds and n_weights > 0
    fig = figure(figsize=(max(4.2 * n_eta, 13), 11 if show_w else 8), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2 if show_w else 1, 1.1])
    axes = top.subplots(2 if show_w else 1, n_eta, squeeze=False)
    step = ds.step.values
    colors = [f"C{i}" for i in range(10)]
    for e, eta in enumerate(ds.eta.values):
        i = _shown_ic(ds, e, ic)
        ax = axes[0, e]
        loss = ds.loss.values[e, i]
        _shade(ax, step, ds.loss_laminar.values[e, i], label="laminar (loss)")
        ax.plot(step, loss, ",", color="k", rasterized=True)
        if np.all(loss[np.isfinite(loss)] > 0):
            ax.set_yscale("log")
        bf = ds.loss_burst_fraction.values[e, i]
        ax.set_title(f"η = {eta:g}, IC {i}: {int(ds.loss_n_phases.values[e, i])} laminar phases, "
                     f"burst fraction {bf:.2f}", fontsize=9)
        ax.set_xlabel("update t")
        ax.set_ylabel("training loss")
        if e == 0:
            ax.legend(fontsize=7, loc="upper right")
        if show_w:
            ax = axes[1, e]
            _shade(ax, step, ds.loss_laminar.values[e, i])
            for k, j in enumerate(_shown_weights(ds, e, i, n_weights)):
                ax.plot(step, ds.weights.values[e, i, j], ",", color=colors[k % 10], rasterized=True,
                        label=f"{ds.weight_name.values[j]} ({REGIMES[ds.weight_regime.values[e, i, j]]})")
            ax.set_xlabel("update t")
            ax.set_ylabel("weight")
            ax.legend(fontsize=6, loc="upper right", markerscale=20)
    ax_len, ax_bf, ax_reg = bottom.subplots(1, 3)
    lengths = ds.loss_lengths.values
    finite = ds.loss_finite.values.astype(bool)
    top_len = max(int(lengths.max(initial=0)), ds.attrs.get("min_length", 1) + 1)
    bins = np.unique(np.geomspace(max(ds.attrs.get("min_length", 1), 1), top_len + 1, 25).astype(int))
    for e, eta in enumerate(ds.eta.values):
        pooled = lengths[e][(lengths[e] > 0) & finite[e][:, None]]
        if pooled.size:
            ax_len.hist(pooled, bins=bins, histtype="step", lw=1.5, color=colors[e % 10],
                        label=f"η = {eta:g} ({pooled.size} phases, mean {pooled.mean():.0f})")
    ax_len.set_xscale("log")
    ax_len.set_xlabel("laminar phase length (updates)")
    ax_len.set_ylabel("count (loss, all ICs)")
    ax_len.set_title("laminar length distribution", fontsize=9)
    if ax_len.get_legend_handles_labels()[0]:
        ax_len.legend(fontsize=7)
    bf = np.where(finite, ds.loss_burst_fraction.values, np.nan)
    x = np.arange(n_eta)
    for e in range(n_eta):
        ax_bf.plot(np.full(ds.sizes["ic"], x[e]), bf[e], "o", color="gray", alpha=0.5, ms=4)
    ax_bf.errorbar(x, ds.summary_loss_burst_fraction.values, ds.summary_loss_burst_fraction_std.values,
                   color="tab:red", marker="s", capsize=3, label="mean ± std over ICs")
    ax_bf.set_xticks(x, [f"{v:g}" for v in ds.eta.values])
    ax_bf.set_ylim(-0.05, 1.05)
    ax_bf.set_xlabel("learning rate η")
    ax_bf.set_ylabel("burst fraction (loss)")
    ax_bf.set_title("fraction of updates in bursts", fontsize=9)
    ax_bf.legend(fontsize=7)
    frac = np.nan_to_num(ds.summary_weight_regime_fraction.values)
    base = np.zeros(n_eta)
    for k, name in enumerate(REGIMES):
        ax_reg.bar(x, frac[:, k], bottom=base, color=colors[k], label=name)
        base = base + frac[:, k]
    for e in range(n_eta):
        c, ch = ds.summary_onset_coincidence.values[e], ds.summary_onset_chance.values[e]
        cw, chw = ds.summary_onset_coincidence_weights.values[e], ds.summary_onset_chance_weights.values[e]
        if np.isfinite(c):
            ax_reg.text(x[e], 1.02, f"loss {100 * c:.0f}% ({100 * ch:.0f}%)\nweights {100 * cw:.0f}% ({100 * chw:.0f}%)",
                        ha="center", va="bottom", fontsize=7)
    ax_reg.set_xticks(x, [f"{v:g}" for v in ds.eta.values])
    ax_reg.set_ylim(0, 1.25)
    ax_reg.set_xlabel("learning rate η")
    ax_reg.set_ylabel("fraction of weight series")
    ax_reg.set_title(f"weight regimes; burst onsets within ±{ds.attrs.get('onset_window', '?')} of a loss /\n"
                     "another weight's onset (chance level)", fontsize=9)
    ax_reg.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    diff = DIFFERENCES.get(ds.attrs.get("order", 1), "?")
    fig.suptitle(f"{ds.attrs.get('task', 'training')}: laminar phases (|{diff}| ≤ {ds.attrs.get('atol', 0):g} + "
                 f"{ds.attrs.get('rtol', 0):g}·rms(x), p ≤ {ds.attrs.get('p_max', '?')}, ≥ {ds.attrs.get('min_length', '?')} "
                 "steps) and bursts", fontsize=10)
    return fig


def save_figures(ds: xr.Dataset, directory: str | Path, ic: int | str = "auto", n_weights: int = 3) -> list[str]:
    """Write ``intermittency.png`` into ``directory``; return its path in a list."""
    with for_files():
        fig = intermittency_figure(ds, ic, n_weights)
    return [str(p) for p in write_figures({FIGURE_FILE: fig}, directory, dpi=110)]
