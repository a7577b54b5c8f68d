"""Figures of a finite-ε sweep, drawn from its results Dataset.

Each function takes a sweep's results Dataset (or ``results.load``) and returns a
matplotlib Figure; :func:`finite_figures`, :func:`tangent_figures` and
:func:`sharpness_figures` are each analysis's set, which
:func:`gdchaos.experiments.registry.save_figures` writes.

Called directly, a figure function returns a pyplot figure under your backend; inside
:func:`gdchaos.figures.base.for_files` (how the sweep writes its files) a pyplot-free Agg
figure. Importing this module loads no matplotlib (see :mod:`gdchaos.figures.base`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gdchaos.core.precision import nan_mean
from gdchaos.figures.base import eta_axis, subplots

if TYPE_CHECKING:
    from collections.abc import Sequence

    import xarray as xr
    from matplotlib.figure import Figure


def pick_eta(ds: xr.Dataset, n: int = 4) -> list[float]:
    """Up to ``n`` η values spread over the grid (ends included)."""
    eta = ds.eta.values
    idx = np.unique(np.linspace(0, eta.size - 1, min(n, eta.size)).round().astype(int))
    return [float(eta[i]) for i in idx]


ESTIMATOR_LABELS = {"window": "window fit (best-R² slope)", "ratio": "ratio from t = 0 (Eq. 3)"}


def summary_figure(ds: xr.Dataset) -> Figure:
    """λ_nMLE(η) ± std, ρ(η) and ⟨τ⟩(η) in three panels, one line per ε.

    Where no Λ is kept (ρ = 0, the λ_nMLE ≤ 0 phase) λ_nMLE is undefined: open markers
    show the unfiltered mean Λ (``lambda_all``) there instead of a gap. ⟨τ⟩ is the mean
    over all ICs, never-reached ones counted as the number of updates run (a lower
    bound, ``tau_mean``); the dashed line averages only those that reached the target.
    """
    fig, axes = subplots(1, 3, figsize=(14, 4), constrained_layout=True, sharex=True)
    steps = ds.sizes.get("step")
    for eps in ds.eps.values:
        s = ds.sel(eps=eps)
        label = f"ε = {eps:g}"
        line = axes[0].errorbar(s.eta, s.lambda_nmle, yerr=s.lambda_std, marker="o", capsize=3, label=f"{label}: λ_nMLE (kept Λ)")
        color = line[0].get_color()
        if "lambda_max_tangent" in ds and eps == ds.eps.values[0]:
            axes[0].errorbar(ds.eta, ds.lambda_max_tangent, yerr=ds.lambda_max_tangent_std, marker="D",
                             color="k", capsize=3, label="tangent λ_max (ε → 0)")
        if "lambda_all" in s:
            axes[0].plot(s.eta, s.lambda_all, ls="--", color=color, alpha=0.5, label=f"{label}: mean Λ, no filter")
            none_kept = s.rho.values == 0
            if none_kept.any():
                axes[0].plot(s.eta.values[none_kept], s.lambda_all.values[none_kept], "o", mfc="none", color=color,
                             ms=8, label=f"{label}: λ≤0 phase (ρ = 0): mean Λ, no filter")
        axes[1].plot(s.eta, s.rho, marker="s", label=label)
        if "n_diverged" in s and int(s.n_diverged.sum()) > 0:
            frac = s.n_diverged / (ds.sizes["ic"] * ds.sizes["member"])
            axes[1].plot(s.eta, frac, ls=":", marker="x", color="tab:red", label=f"{label}: diverged members (excluded)")
        _tau_panel(axes[2], s, label, steps, first=eps == ds.eps.values[0])
    axes[0].axhline(0.0, color="gray", lw=0.8)
    estimator = ds.attrs.get("lyapunov_estimator", "window")
    axes[0].set_ylabel(f"λ_nMLE  (nat / update; {estimator} estimator)")
    axes[1].set_ylabel("ρ  (fraction of ICs with Λ kept)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=8)
    axes[1].set_ylim(-0.03, 1.03)
    target = ds.attrs.get("accuracy_target", "target")
    axes[2].set_ylabel(f"⟨τ⟩  (updates to test accuracy ≥ {target})")
    for ax in axes:
        eta_axis(ax, ds.eta)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{ds.attrs.get('task', '')}  ({ds.sizes['ic']} ICs × {ds.sizes['member'] - 1} perturbations; "
                 f"Λ: {ESTIMATOR_LABELS.get(estimator, estimator)})")
    return fig


def _tau_panel(ax, s, label: str, steps, first: bool) -> None:
    """⟨τ⟩ over all ICs (censored at T) solid, the reached-only mean dashed, × where no IC reached the target."""
    if "tau_mean_reached" not in s:  # a Dataset without the censored mean: tau_mean is over the ICs that reached it
        ax.plot(s.eta, s.tau_mean, marker="^", label=f"{label}: ⟨τ⟩ over ICs that reached it")
        return
    line = ax.plot(s.eta, s.tau_mean, marker="^", label=label)
    ax.plot(s.eta, s.tau_mean_reached, ls="--", marker=".", color=line[0].get_color(), alpha=0.7)
    never = s.n_reached.values == 0
    if never.any():
        ax.plot(s.eta.values[never], s.tau_mean.values[never], "x", color="gray", ms=8,
                label="no IC reached the target" if first else None)
    if first:  # the two definitions, once
        ax.plot([], [], color="gray", marker="^", label=f"⟨τ⟩ all ICs, never-reached = T = {steps} (lower bound)")
        ax.plot([], [], color="gray", ls="--", marker=".", label="⟨τ⟩ over ICs that reached it")


def lambda_eps_figure(ds: xr.Dataset) -> Figure:
    """λ_nMLE(ε) per η for both estimators, ρ(ε), and where each fit sits vs ε (median window start, median τ).

    Solid: the window fit (best-R² slope); dashed: the ratio from t = 0 (the papers' Eq. 3).
    Medians are over the kept initial conditions.
    """
    fig, axes = subplots(1, 3, figsize=(15, 4), constrained_layout=True, sharex=True)
    eps = ds.eps.values
    styles = {"window": dict(ls="-", marker="o"), "ratio": dict(ls="--", marker="s", mfc="none")}
    for i, eta in enumerate(ds.eta.values):
        s, color = ds.sel(eta=eta), f"C{i % 10}"
        for name, style in styles.items():
            if f"lambda_nmle_{name}" in s:
                axes[0].plot(eps, s[f"lambda_nmle_{name}"], color=color, **style, label=f"η = {eta:g}, {name}")
                axes[1].plot(eps, s[f"rho_{name}"], color=color, **style, label=f"η = {eta:g}, {name}")
        if "median_window_start" in s:
            axes[2].plot(eps, s.median_window_start, color=color, **styles["window"], label=f"η = {eta:g}: window start")
        if "median_saturation_time" in s:
            axes[2].plot(eps, s.median_saturation_time, color=color, **styles["ratio"], label=f"η = {eta:g}: τ (ratio)")
    axes[0].set_ylabel("λ_nMLE  (nat / update)")
    axes[1].set_ylabel("ρ  (fraction of ICs with Λ kept)")
    axes[1].set_ylim(-0.03, 1.03)
    axes[2].set_ylabel("median over kept ICs  (update)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("perturbation half-width ε")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"{ds.attrs.get('task', '')}: finite exponent vs ε; solid: {ESTIMATOR_LABELS['window']}, "
                 f"dashed: {ESTIMATOR_LABELS['ratio']}")
    return fig


def _per_eta_grid(ds: xr.Dataset, etas, ylabel: str, draw, has_eps: bool = True):
    fig, axes = subplots(1, len(etas), figsize=(4 * len(etas), 3.6), constrained_layout=True, squeeze=False)
    for ax, eta in zip(axes[0], etas):
        s = ds.sel(eta=eta, method="nearest")
        draw(ax, s.isel(eps=0) if has_eps else s)
        ax.set_title(f"η = {eta:g}")
        ax.set_xlabel("update t")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    return fig


LOG_PLOT_MAX = 1e100
"""Larger values (a trajectory on its way to overflow) are left out of log-scale panels."""


def _loggable(a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return np.where(np.isfinite(a) & (a > 0) & (a < LOG_PLOT_MAX), a, np.nan)


def distance_figure(ds: xr.Dataset, etas: Sequence[float] | None = None, n_ic: int = 3) -> Figure:
    """d(t) on a log axis: members (thin) and their mean (thick) for a few ICs, per η (diverged members end)."""

    def draw(ax, s):
        for i in range(min(n_ic, s.sizes["ic"])):
            d = _loggable(s.distance.isel(ic=i, member=slice(1, None)).values)
            color = f"C{i}"
            ax.semilogy(s.step, d.T, color=color, lw=0.4, alpha=0.5)
            ax.semilogy(s.step, nan_mean(d, axis=0), color=color, lw=1.6, label=f"ic {i}")
        ax.legend(fontsize=7)

    return _per_eta_grid(ds, etas or pick_eta(ds), f"{ds.attrs.get('distance', 'L1')} distance d(t)", draw)


def loss_figure(ds: xr.Dataset, etas: Sequence[float] | None = None, n_ic: int = 5) -> Figure:
    """Training loss of the reference trajectories of a few ICs, per η; a dotted line marks where one diverged."""

    def draw(ax, s):
        shown = min(n_ic, s.sizes["ic"])
        for i in range(shown):
            ax.semilogy(s.step, _loggable(s.loss.isel(ic=i, member=0)), lw=0.9, color=f"C{i}")
            at = int(s.diverged_at.isel(ic=i, member=0)) if "diverged_at" in s else -1
            if at >= 0:
                ax.axvline(at, color=f"C{i}", ls=":", lw=1.2, label="diverged" if i == 0 else None)

    return _per_eta_grid(ds, etas or pick_eta(ds), "training loss", draw)


def exponent_histogram(ds: xr.Dataset, etas: Sequence[float] | None = None, bins: int = 20) -> Figure:
    """P(Λ) of the kept finite exponents, one histogram per η (first ε)."""
    etas = etas or [float(e) for e in ds.eta.values if ds.sel(eta=e).n_kept.isel(eps=0) > 0][-4:]
    fig, ax = subplots(figsize=(6, 4), constrained_layout=True)
    for eta in etas:
        s = ds.sel(eta=eta, method="nearest").isel(eps=0)
        lam = s.exponent.values[s.kept.values.astype(bool)]
        ax.hist(lam, bins=bins, density=True, histtype="step", lw=1.5, label=f"η = {eta:g} (n = {lam.size})")
    ax.set_xlabel("finite network Lyapunov exponent Λ  (nat / update)")
    ax.set_ylabel("P(Λ)")
    if etas:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no exponent passed the filters", ha="center", transform=ax.transAxes)
    return fig


def tangent_figure(ds: xr.Dataset) -> Figure:
    """Tangent λ_max(η) ± std over ICs (with finite-ε λ_nMLE if present) and the spectrum per η."""
    fig, (ax0, ax1) = subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ax0.errorbar(ds.eta, ds.lambda_max_tangent, yerr=ds.lambda_max_tangent_std, marker="D", color="k",
                 capsize=3, label="tangent λ_max (ε → 0)")
    if "lambda_nmle" in ds:
        for eps in ds.eps.values:
            s = ds.sel(eps=eps)
            ax0.errorbar(s.eta, s.lambda_nmle, yerr=s.lambda_std, marker="o", capsize=3, label=f"finite λ_nMLE, ε = {eps:g}")
            if "tangent_window_exponent" in s:
                matched = s.tangent_window_exponent.where(s.kept.astype(bool)).mean("ic")
                ax0.plot(s.eta, matched, marker="x", ls=":", label="tangent over Λ's fit windows")
    if "n_diverged_tangent" in ds and int(ds.n_diverged_tangent.sum()) > 0:
        frac = ds.n_diverged_tangent / ds.sizes["ic"]
        twin = ax0.twinx()
        twin.plot(ds.eta, frac, ls=":", marker="x", color="tab:red", label="diverged ICs (excluded)")
        twin.set_ylabel("diverged fraction", color="tab:red")
        twin.set_ylim(0, 1.05)
        twin.legend(fontsize=8, loc="lower right")
    ax0.axhline(0.0, color="gray", lw=0.8)
    ax0.set_ylabel("Lyapunov exponent (nat / update)")
    eta_axis(ax0, ds.eta)
    ax0.legend(fontsize=8)
    ax0.grid(alpha=0.3)
    for eta in pick_eta(ds, 5):
        spectrum = ds.tangent_spectrum.sel(eta=eta, method="nearest")
        ax1.plot(ds.index + 1, spectrum, marker="o", ms=3, label=f"η = {eta:g}")
    ax1.axhline(0.0, color="gray", lw=0.8)
    ax1.set_xlabel("exponent index i")
    ax1.set_ylabel("λ_i, mean over ICs")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    n_div = int(ds.n_diverged_tangent.sum()) if "n_diverged_tangent" in ds else 0
    diverged = f"; {n_div} of {ds.sizes['eta'] * ds.sizes['ic']} trajectories diverged (excluded)" if n_div else ""
    fig.suptitle(f"{ds.attrs.get('task', '')}: tangent Lyapunov exponents ({ds.sizes['ic']} ICs{diverged})")
    return fig


def ftle_figure(ds: xr.Dataset, etas: Sequence[float] | None = None, n_ic: int = 5) -> Figure:
    """Running finite-time estimate of λ_1 vs update, per η; a diverged trajectory ends in an ×."""

    def draw(ax, s):
        for i in range(min(n_ic, s.sizes["ic"])):
            ax.plot(s.step, s.tangent_ftle.isel(ic=i), lw=0.9, color=f"C{i}")
            at = int(s.tangent_diverged_at.isel(ic=i)) if "tangent_diverged_at" in s else -1
            if at >= 0:
                last = s.tangent_ftle.isel(ic=i).sel(step=slice(None, at)).dropna("step")
                if last.sizes["step"]:
                    ax.plot([int(last.step[-1])], [float(last[-1])], "x", color=f"C{i}", ms=8, mew=2)
        ax.axhline(0.0, color="gray", lw=0.8)

    return _per_eta_grid(ds, etas or pick_eta(ds), "finite-time λ_1 up to t", draw, has_eps=False)


def sharpness_figure(ds: xr.Dataset, etas: Sequence[float] | None = None, n_ic: int = 5) -> Figure:
    """Edge of stability: sharpness λ_max(H) vs update, one panel per η, with the 2/η line.

    A diverged trajectory ends in an ×, at the update that diverged and its last measured
    sharpness; panel titles count the diverged trajectories of their η, the figure title all.
    """
    etas = etas or [float(e) for e in ds.eta.values][:8]
    ncol = min(4, len(etas))
    nrow = -(-len(etas) // ncol)
    fig, axes = subplots(nrow, ncol, figsize=(4 * ncol, 3.4 * nrow), constrained_layout=True, squeeze=False)
    t = ds.time_step.values
    for ax, eta in zip(axes.flat, etas):
        s = ds.sel(eta=eta, method="nearest")
        at = s.sharpness_diverged_at.values if "sharpness_diverged_at" in s else np.full(s.sizes["ic"], -1)
        marked = False
        for i in range(min(n_ic, s.sizes["ic"])):
            lam = s.sharpness.isel(ic=i).values
            ax.plot(t, lam, lw=0.9, color=f"C{i}")
            if at[i] >= 0:
                before = np.flatnonzero(np.isfinite(lam) & (t <= at[i]))
                y = lam[before[-1]] if before.size else 2.0 / float(s.eta)
                ax.plot([at[i]], [y], "x", color=f"C{i}", ms=8, mew=2, label=None if marked else "diverged")
                marked = True
        ax.axhline(2.0 / float(s.eta), color="k", ls="--", lw=1.0, label="2/η")
        n_div = int(np.sum(at >= 0))
        ax.set_title(f"η = {float(s.eta):g}" + (f"  ({n_div}/{s.sizes['ic']} diverged)" if n_div else ""))
        ax.set_xlabel("update t")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(etas):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("sharpness λ_max(H)")
    total = int(np.sum(ds.sharpness_diverged_at.values >= 0)) if "sharpness_diverged_at" in ds else 0
    diverged = f"; {total} of {ds.sizes['eta'] * ds.sizes['ic']} trajectories diverged (×)" if total else ""
    fig.suptitle(f"{ds.attrs.get('task', '')}: sharpness vs the GD stability limit 2/η{diverged}")
    return fig


def curvature_figure(ds: xr.Dataset, etas: Sequence[float] | None = None) -> Figure:
    """IC means along training: locally chaotic, flat and negative directions, and |cos(∇L, v_top)|.

    Chaotic: λ < −tol or λ > 2/η (a positive local exponent); flat: |λ| ≤ tol, with
    tol = ``sharpness_flat_rtol``·max|λ|. Files without ``n_flat`` (older runs) skip that panel.
    """
    etas = etas or [float(e) for e in ds.eta.values][:8]
    has_flat = "n_flat" in ds
    panels = ["n_chaotic", "n_flat", "n_negative"] if has_flat else ["n_chaotic", "n_negative"]
    fig, axes = subplots(1, len(panels) + 1, figsize=(4.7 * (len(panels) + 1), 3.8), constrained_layout=True)
    t = ds.time_step.values
    total = ds.n_positive + ds.n_negative + (ds.n_flat if has_flat else 0)
    n = float(total.max()) if np.isfinite(float(total.max())) else 0.0
    for i, eta in enumerate(etas):
        s = ds.sel(eta=eta, method="nearest")
        color = f"C{i}"
        for ax, name in zip(axes, panels):
            ax.plot(t, nan_mean(s[name].values, axis=0), color=color, label=f"η = {float(s.eta):g}")
        axes[-1].plot(t, nan_mean(s.overlap_top.values[..., 0], axis=0), color=color)
    labels = {"n_chaotic": "chaotic directions (λ < −tol or λ > 2/η)", "n_flat": "flat directions (|λ| ≤ tol)",
              "n_negative": "negative eigenvalues (λ < −tol)"}
    for ax, name in zip(axes, panels):
        ax.set_ylabel(labels[name])
    axes[-1].set_ylabel("|cos(∇L, v_max)|")
    for ax in axes:
        ax.set_xlabel("update t")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    method = ds.attrs.get("curvature_method", "")
    rtol = ds.attrs.get("sharpness_flat_rtol")
    tol = f"; tol = {float(rtol):.3g}·max|λ|" if rtol is not None else ""
    fig.suptitle(f"curvature along training ({method}; counts over {'all' if method == 'full' else 'the extreme'} "
                 f"eigenvalues, ≤ {int(n)}{tol})")
    return fig


def finite_figures(ds: xr.Dataset, etas: Sequence[float] | None = None) -> dict[str, Figure]:
    """The finite-ε analysis's figures: summary, distance, loss, lambda_hist, and lambda_eps with two or more ε."""
    figures = {
        "summary.png": summary_figure(ds),
        "distance.png": distance_figure(ds, etas),
        "loss.png": loss_figure(ds, etas),
        "lambda_hist.png": exponent_histogram(ds),
    }
    if ds.sizes.get("eps", 0) >= 2 and "lambda_nmle_window" in ds:
        figures["lambda_eps.png"] = lambda_eps_figure(ds)
    return figures


def tangent_figures(ds: xr.Dataset, etas: Sequence[float] | None = None) -> dict[str, Figure]:
    """The tangent analysis's figures: tangent (spectrum vs η) and ftle (running exponents)."""
    return {"tangent.png": tangent_figure(ds), "ftle.png": ftle_figure(ds, etas)}


def sharpness_figures(ds: xr.Dataset, etas: Sequence[float] | None = None) -> dict[str, Figure]:
    """The sharpness analysis's figures: sharpness (vs 2/η) and curvature (direction counts, overlaps)."""
    return {"sharpness.png": sharpness_figure(ds, etas), "curvature.png": curvature_figure(ds, etas)}
