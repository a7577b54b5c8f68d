"""Figures of the weight and time-series diagnostics (danovski2024 Figs. 3–11).

Each function takes the output of :mod:`gdchaos.analyses.weights` or :mod:`gdchaos.analyses.timeseries`
and returns a matplotlib Figure.

As in :mod:`gdchaos.figures.sweep`: importing this module loads no matplotlib and selects no
backend; a figure function loads pyplot on first use and returns a pyplot figure
under the user's backend (pyplot-free Agg figures inside :func:`gdchaos.figures.base.for_files`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np

from gdchaos.core.errors import check
from gdchaos.core.fit import line_fit
from gdchaos.figures.base import subplots

if TYPE_CHECKING:
    from jax.typing import ArrayLike
    from matplotlib.figure import Figure

    from gdchaos.analyses.timeseries import KantzResult
    from gdchaos.analyses.weights import Displacement, PostLearningResult, Trajectory
    from gdchaos.core.tree import PyTree


def _leaf_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _named_leaves(tree):
    return [(_leaf_name(path), np.asarray(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def plot_ablation(importance: PyTree, *, title: str = "", relative: bool = False) -> Figure:
    """Heatmap of ablation importance ΔL per weight, one panel per 2-D leaf (kernels).

    Rows are output units j, columns input units i (the weight w_ji), as in
    danovski2024 Fig. 5 (left); colours are centred at ΔL = 0.

    Example:
        >>> import numpy as np
        >>> fig = plot_ablation({"layer0": {"kernel": np.arange(6.0).reshape(2, 3) - 2, "bias": np.zeros(3)}})
        >>> [ax.get_title() for ax in fig.axes if ax.get_title()]
        ['layer0/kernel']
    """
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import MaxNLocator

    panels = [(name, leaf) for name, leaf in _named_leaves(importance) if leaf.ndim == 2]
    check(bool(panels), "importance has no 2-D leaves (kernels) to draw; pass the result of ablation_importance")
    fig, axes = subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), constrained_layout=True, squeeze=False)
    for ax, (name, leaf) in zip(axes[0], panels):
        m = leaf.T
        finite = m[np.isfinite(m)]
        span = float(np.max(np.abs(finite))) if finite.size else 1.0
        span = span if span > 0 else 1.0
        im = ax.imshow(m, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto", interpolation="nearest")
        ax.set_title(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("input unit i")
        ax.set_ylabel("output unit j")
        fig.colorbar(im, ax=ax, label="ΔL / L" if relative else "ΔL = L(w_ji = 0) − L")
    if title:
        fig.suptitle(title)
    return fig


def plot_displacement(displacement: Displacement, *, title: str = "") -> Figure:
    """Scatter of per-weight displacement Δw against path length D_w, one colour per leaf (log–log).

    Example:
        >>> import numpy as np
        >>> from gdchaos.analyses.weights import displacement_vs_path
        >>> d = displacement_vs_path({"w": np.array([[1.0, 2.0], [3.0, 2.5], [2.0, 1.0]])})
        >>> fig = plot_displacement(d)
        >>> fig.axes[0].get_xlabel()
        'displacement Δw = |w(T) − w(0)| / |w(0)|'
    """
    fig, ax = subplots(figsize=(5.2, 4.2), constrained_layout=True)
    rel = dict(_named_leaves(displacement.relative))
    path = dict(_named_leaves(displacement.path_length))
    for i, name in enumerate(rel):
        x, y = rel[name].ravel(), path[name].ravel()
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        if ok.any():
            ax.scatter(x[ok], y[ok], s=12, alpha=0.7, color=f"C{i}", label=f"{name} ({ok.sum()})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("displacement Δw = |w(T) − w(0)| / |w(0)|")
    ax.set_ylabel("path length D_w = Σ_t |w(t) − w(t−1)|")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return fig


def plot_regime_gallery(eta: ArrayLike, trajectory: Trajectory, *, labels: dict | None = None, title: str = "") -> Figure:
    """Loss (top row, log scale) and weight norm ‖θ‖ (bottom row) vs update, one column per η.

    ``trajectory`` fields are ``(n_eta, n_ic, steps)``; one line per initial condition.

    Example:
        >>> import numpy as np
        >>> from gdchaos.analyses.weights import Trajectory
        >>> t = Trajectory(np.ones((2, 3, 10)), np.ones((2, 3, 10)), None, None, None, None)
        >>> fig = plot_regime_gallery([0.01, 5.0], t, labels={5.0: "intermittent"})
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['η = 0.01', 'η = 5 (intermittent)']
    """
    eta = np.atleast_1d(np.asarray(eta, np.float64))
    loss, norm = np.asarray(trajectory.loss), np.asarray(trajectory.weight_norm)
    labels = labels or {}
    fig, axes = subplots(2, eta.size, figsize=(4.2 * eta.size, 6.0), constrained_layout=True, squeeze=False,
                             sharex="col")
    steps = np.arange(loss.shape[-1])
    for c, e in enumerate(eta):
        label = next((v for k, v in labels.items() if np.isclose(float(k), e)), None)
        axes[0, c].set_title(f"η = {e:g}" + (f" ({label})" if label else ""))
        for i in range(loss.shape[1]):
            axes[0, c].plot(steps, loss[c, i], lw=0.8, color=f"C{i}")
            axes[1, c].plot(steps, norm[c, i], lw=0.8, color=f"C{i}", label=f"ic {i}")
        if np.all(loss[c][np.isfinite(loss[c])] > 0):
            axes[0, c].set_yscale("log")
        axes[1, c].set_xlabel("update t")
        for r in range(2):
            axes[r, c].grid(alpha=0.3)
    axes[0, 0].set_ylabel("training loss L")
    axes[1, 0].set_ylabel("weight norm ‖θ‖₂")
    axes[1, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_acf(acf: ArrayLike, band: ArrayLike | None = None, *, title: str = "", level: float = 0.95) -> Figure:
    """ACF ρ(k) for k ≥ 1 as stems, with the shuffled-surrogate band shaded (danovski2024 Fig. 10, right).

    Example:
        >>> import numpy as np
        >>> fig = plot_acf(0.9 ** np.arange(11))
        >>> fig.axes[0].get_xlabel()
        'lag k'
    """
    acf = np.asarray(acf)
    lags = np.arange(acf.shape[-1])
    fig, ax = subplots(figsize=(5.5, 3.6), constrained_layout=True)
    if band is not None:
        ax.fill_between(lags[1:], np.asarray(band.lower)[1:], np.asarray(band.upper)[1:], color="0.8",
                        label=f"{level:.0%} band of shuffled surrogates")
    ax.vlines(lags[1:], 0.0, acf[1:], color="C0")
    ax.plot(lags[1:], acf[1:], "o", ms=3, color="C0", label="ρ(k)")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xlabel("lag k")
    ax.set_ylabel("autocorrelation ρ(k)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_kantz(result: KantzResult, *, title: str = "") -> Figure:
    """Kantz's method: S(k) with its fit, two example points' s_n(k), and Λ_n vs x_n (danovski2024 Fig. 11).

    Points whose slope is significant (p < α) are red, the others gray.

    Example:
        >>> import numpy as np
        >>> from gdchaos.analyses.timeseries import kantz
        >>> x = np.empty(1000); x[0] = 0.3
        >>> for t in range(999): x[t + 1] = 4 * x[t] * (1 - x[t])
        >>> fig = plot_kantz(kantz(x, 0.005, max_steps=8, fit_range=(1, 5)))
        >>> len(fig.axes)
        3
    """
    r = result
    fig, axes = subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
    k = r.steps
    ax = axes[0]
    ax.plot(k, r.curve, "o-", color="k", ms=3, label="S(k)")
    kf = np.arange(r.start, r.start + r.length + 1)
    ax.plot(kf, r.intercept + r.exponent * (kf - r.start), "r--",
            label=f"λ = {r.exponent:.3f} (p = {r.p_value:.2g}" +
            (f", surrogates p = {r.surrogate_p_value:.2g})" if np.isfinite(r.surrogate_p_value) else ")"))
    ax.set_xlabel("k (steps ahead)")
    ax.set_ylabel("S(k) = ⟨ln mean_j |x_{n+k} − x_{j+k}|⟩_n")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)

    ax = axes[1]
    p = r.point_p_value
    valid = np.isfinite(p)
    sig = valid & (p < r.alpha)
    picks = [("significant", np.flatnonzero(sig)), ("not significant", np.flatnonzero(valid & ~sig))]
    for color, (name, idx) in zip(("C3", "0.5"), picks):
        if idx.size:
            i = idx[np.argmin(p[idx])] if name == "significant" else idx[np.argmax(p[idx])]
            ax.plot(k, r.point_curves[i], "o-", ms=3, color=color,
                    label=f"t_n = {r.times[i]}: Λ = {r.point_exponent[i]:.2f}, p = {p[i]:.2g}")
            s, n = r.point_start[i], r.point_length[i]
            kk = np.arange(s, s + n + 1)
            y = r.point_curves[i][kk]
            slope, icpt, _ = (float(v) for v in line_fit(kk, y))
            ax.plot(kk, icpt + slope * kk, "--", color=color, lw=1)
    ax.set_xlabel("k")
    ax.set_ylabel("s_n(k)")
    ax.set_title("single initial points")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)

    ax = axes[2]
    ax.scatter(r.values[valid & ~sig], r.point_exponent[valid & ~sig], s=6, color="0.6", label=f"p ≥ {r.alpha:g}")
    ax.scatter(r.values[sig], r.point_exponent[sig], s=6, color="C3",
               label=f"p < {r.alpha:g} ({r.significant_fraction:.0%})")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xlabel("x at the initial point")
    ax.set_ylabel("Λ_n")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_post_learning(result: PostLearningResult, *, eta_index: int = 0, eps_index: int = 0, n_ic: int = 3) -> Figure:
    """Distances d_j(t) after the perturbation at t₀ (members thin gray, mean black, log scale) per IC,
    with the reference loss on a twin axis (danovski2024 Fig. 6).

    Example:
        >>> import numpy as np
        >>> from gdchaos.analyses.weights import PostLearningResult
        >>> d = np.ones((1, 1, 2, 3, 5)); rec = {"distance": d, "loss": d}
        >>> res = PostLearningResult(np.ones(1), np.ones(1), 10, rec, np.ones((1, 2, 10)), None, None, 0.0, 0.0)
        >>> len(plot_post_learning(res).axes)
        4
    """
    dist = np.asarray(result.records["distance"])[eta_index, eps_index]
    loss = np.asarray(result.records["loss"])[eta_index, eps_index]
    n = min(n_ic, dist.shape[0])
    fig, axes = subplots(1, n, figsize=(4.2 * n, 3.6), constrained_layout=True, squeeze=False)
    t = result.t0 + np.arange(dist.shape[-1])
    for i, ax in enumerate(axes[0]):
        d = dist[i, 1:]
        ax.semilogy(t, d.T, color="0.6", lw=0.6)
        ax.semilogy(t, np.nanmean(d, axis=0), color="k", lw=1.6, label="mean over perturbations")
        ax.set_xlabel("update t")
        ax.set_title(f"ic {i}: perturbed at t₀ = {result.t0}")
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        twin.plot(t, loss[i, 0], "--", color="C0", lw=1)
        twin.set_ylabel("loss L", color="C0")
    axes[0, 0].set_ylabel(f"distance d(t), ε = {float(result.eps[eps_index]):g}")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"post-learning stability, η = {float(result.eta[eta_index]):g}")
    return fig
