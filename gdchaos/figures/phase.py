"""Figures of ``python -m gdchaos.phase``: the order–chaos phase diagram and the training path.

Each function takes the ``phase.nc`` Dataset (:func:`gdchaos.analyses.phase_diagram.phase_diagram`,
merged with :func:`~gdchaos.analyses.phase_diagram.training_path` when tracked);
:func:`save_figures` writes them as pyplot-free Agg figures (:mod:`gdchaos.figures.base`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdchaos.figures.base import for_files, subplots, write_figures

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["phase_figure", "save_figures", "training_figure"]


def phase_figure(ds: xr.Dataset) -> Figure:
    """Separation heatmap (the paper's picture) and the exponent λ⊥, each with the mean-field boundary and the
    numerical edge points (and the training path if present)."""
    fig, axes = subplots(1, 2, figsize=(14, 6), constrained_layout=True)
    panels = (
        (ds.separation, "Purples", None, "asymptotic separation |x_t − x'_t| / √N"),
        (ds.lyapunov, "RdBu_r", 0.3, "transverse Lyapunov exponent λ⊥ (median of draws; colors clipped at ±0.3)"),
    )
    has_edge = "edge_numerical" in ds
    for ax, (values, cmap, clip, label) in zip(axes, panels):
        kwargs = {"vmin": -clip, "vmax": clip} if clip else {}
        mesh = ax.pcolormesh(ds.ratio, ds.inv_j, values, cmap=cmap, shading="nearest", rasterized=True, **kwargs)
        fig.colorbar(mesh, ax=ax, label=label)
        ax.plot(ds.boundary_ratio, ds.boundary_inv_j, color="tab:red", lw=2,
                label="mean field: J² ∫Dz sech⁴(J0μ + J√q0 z) = 1")
        if has_edge:
            ax.plot(ds.ratio, ds.edge_numerical, "o", color="black", ms=3.5,
                    label=f"numerical edge: λ⊥ = {ds.attrs['edge_threshold']:g}")
        if "track_j" in ds:
            x, y = (ds.track_j0 / ds.track_j).values, (1 / ds.track_j).values
            ax.plot(x, y, "-o", color="tab:orange", ms=3, lw=1.2, label=f"training path ({ds.sizes['epoch'] - 1} epochs)")
            ax.annotate("start", (x[0], y[0]), textcoords="offset points", xytext=(6, 4), fontsize=8)
            ax.annotate("end", (x[-1], y[-1]), textcoords="offset points", xytext=(6, -10), fontsize=8)
        ax.set_xlim(float(ds.ratio.min()), float(ds.ratio.max()))
        ax.set_ylim(float(ds.inv_j.min()), float(ds.inv_j.max()))
        ax.set_xlabel("J0 / J")
        ax.set_ylabel("1 / J")
        ax.text(0.02, 0.97, "ordered", transform=ax.transAxes, va="top", fontsize=10)
        ax.text(0.02, 0.03, "chaotic", transform=ax.transAxes, va="bottom", fontsize=10)
    if has_edge and np.any(np.isfinite(ds.edge_separation.values)):
        axes[0].plot(ds.ratio, ds.edge_separation, "^", mfc="none", color="tab:green", ms=4,
                     label="separation edge: ln(d/d0) = 0")
    for ax in axes:
        ax.legend(fontsize=7, loc="upper right")
    n, draws = _config_value(ds, "n"), _config_value(ds, "draws")
    axes[0].set_title("x ↦ tanh(Wx): order–chaos phase diagram" + (f" (N = {n}, {draws} draws)" if n else ""))
    if has_edge:
        a = ds.attrs
        axes[1].set_title(f"|Δ(1/J)| numerical − mean field: max {a['edge_distance_max_j0_le_j']:.3f} (J0/J ≤ 1), "
                          f"{a['edge_distance_max_j0_gt_j']:.3f} (J0/J > 1)", fontsize=9)
    return fig


def _config_value(ds: xr.Dataset, key: str) -> Any:
    """``numerics.<key>`` of the run's configuration (the ``config`` attribute), or None."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.create(ds.attrs["config"]).numerics[key]
    except Exception:
        return None


def training_figure(ds: xr.Dataset) -> Figure:
    """J² vs epoch with the linear fit J² = A·epoch + C, the edge J² = 1, Jacobian norm² and test accuracy."""
    fig, axes = subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    epoch = ds.epoch.values
    j2 = ds.track_j.values ** 2
    ax = axes[0]
    ax.plot(epoch, j2, "o", ms=4, label="J² = N·var(W)")
    ax.plot(epoch, ds.track_jacobian_norm.values ** 2, "s", ms=3, alpha=0.7, label="(1/N)‖J*‖²_F (Jacobian norm²)")
    a, c = ds.attrs["track_slope_A"], ds.attrs["track_intercept_C"]
    if np.isfinite(a):
        ax.plot(epoch, a * epoch + c, "-", color="tab:red",
                label=f"fit (J² < 1): A = {a:.3g}/epoch, D = {ds.attrs['track_D']:.3g}")
    ax.axhline(1.0, color="gray", ls="--", lw=0.8, label="edge of chaos J² = 1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("J²")
    ax.set_title(f"scale factor η/((1−α)B) = {ds.attrs['track_scale_factor']:.3g};  "
                 f"λ* ≈ D/(4SJ*²) = {ds.attrs['track_weight_decay_estimate']:.2g}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(epoch, ds.track_test_loss.values, "-o", ms=3, label="test loss")
    ax.plot(epoch, ds.track_train_loss.values, "-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(epoch, ds.track_test_accuracy.values, "-^", ms=3, color="tab:green", label="test accuracy")
    twin.set_ylabel("test accuracy")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    ax.set_title(f"{ds.attrs.get('track_dataset', '')}: square tanh network", fontsize=9)
    return fig


def save_figures(ds: xr.Dataset, directory: str | Path) -> list[str]:
    """Write ``phase_diagram.png`` (and ``training.png`` when a path is present) into ``directory``; return the paths."""
    with for_files():
        figures = {"phase_diagram.png": phase_figure(ds)}
        if "track_j" in ds:
            figures["training.png"] = training_figure(ds)
    return [str(p) for p in write_figures(figures, directory, dpi=150)]
