r"""Hydra entry point: ``python -m gdchaos.phase [overrides]``: the order–chaos phase diagram of x ↦ tanh(W x).

Computes (see :mod:`gdchaos.analyses.edge_of_chaos`)

* the asymptotic separation of two nearby trajectories on a (J0/J, 1/J) grid, vmapped
  over the grid and a few random W draws (the heatmap of Fig. 1b), and the finite-time
  Lyapunov exponent λ⊥ (transverse to the uniform direction, median over the draws),
* the mean-field criterion χ = J² ∫Dz sech⁴(J0μ + J√q0 z) on the same grid and the
  boundary χ = 1 as a curve 1/J(J0/J),
* the numerical edge per J0/J column, where λ⊥ first reaches ``edge.threshold`` coming
  down from the ordered side (large 1/J), interpolated between grid cells, and its
  distance |Δ(1/J)| to the mean-field edge of that column, summarized for J0/J ≤ 1 and
  J0/J > 1 (and for |J0/J| < 1: the columns J0 = ±J run along the mean-field
  ferromagnet–spin-glass boundary, where finite N mixes the two phases),
* with ``track.enabled=true``, the path (J0/J, 1/J) of the square tanh hidden layer of a
  network trained by SGD with momentum, J² vs epoch with its linear fit J² = A·epoch + C,
  the scale factor η/((1 − α)B), D = A/scale factor and the weight decay λ* ≈ D/(4 S J*²),

and writes into the run directory ``phase_diagram.png`` (boundary and numerical edge over
the separation heatmap and over λ⊥, path overlaid when tracked), ``training.png`` (when
tracked), ``edge.csv`` (the per-column edges and distances) and ``phase.nc`` (all arrays,
configuration and provenance; ``xarray.open_dataset``)::

    python -m gdchaos.phase
    python -m gdchaos.phase track.enabled=true track.epochs=30 track.eta=0.1
    python -m gdchaos.phase ratio.num=91 inv_j.num=80 numerics.n=200
"""

from __future__ import annotations

import logging
import math
import os

from gdchaos.cli.app import hydra_app
from gdchaos.core.errors import check

log = logging.getLogger("gdchaos.phase")
RESULTS_FILE = "phase.nc"
EDGE_FILE = "edge.csv"


def _number(cfg, key: str):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
          f"{key} must be a finite number; got {value!r}")
    return float(value)


def _integer(cfg, key: str, minimum: int) -> int:
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
          f"{key} must be an integer >= {minimum}; got {value!r}")
    return value


def validate(cfg) -> None:
    """Check the config before any computation (one-line messages that state the fix)."""
    for axis, least in (("ratio", 1), ("inv_j", 2)):
        lo, hi = _number(cfg, f"{axis}.min"), _number(cfg, f"{axis}.max")
        _integer(cfg, f"{axis}.num", least)
        check(hi >= lo, f"{axis}.max must be >= {axis}.min; got min={lo}, max={hi}")
    check(_number(cfg, "inv_j.min") > 0, f"inv_j.min must be > 0 (1/J = 0 is J = infinity); got {cfg.inv_j.min}")
    check(cfg.inv_j.max > cfg.inv_j.min,
          f"inv_j.max must be > inv_j.min (the edge is located between rows); got {cfg.inv_j.min}, {cfg.inv_j.max}")
    _integer(cfg, "boundary_points", 2)
    _integer(cfg, "numerics.n", 2)
    _integer(cfg, "numerics.draws", 1)
    steps = _integer(cfg, "numerics.steps", 2)
    average = _integer(cfg, "numerics.average", 1)
    check(average <= steps, f"numerics.average must be <= numerics.steps={steps}; got {average}")
    check(_number(cfg, "numerics.perturbation") > 0, f"numerics.perturbation must be > 0; got {cfg.numerics.perturbation}")
    check(_number(cfg, "edge.threshold") < 0,
          f"edge.threshold must be < 0 (a fixed point has λ < 0, a torus λ = 0); got {cfg.edge.threshold}")
    _integer(cfg, "seed", 0)
    check(cfg.precision in ("float32", "float64"), f"precision must be float32 or float64; got {cfg.precision!r}")
    if cfg.track.enabled:
        _integer(cfg, "track.epochs", 1)
        _integer(cfg, "track.batch_size", 1)
        check(_number(cfg, "track.eta") > 0, f"track.eta must be > 0; got {cfg.track.eta}")
        momentum = _number(cfg, "track.momentum")
        check(0 <= momentum < 1, f"track.momentum must be in [0, 1); got {momentum}")
        check(_number(cfg, "track.weight_decay") >= 0, f"track.weight_decay must be >= 0; got {cfg.track.weight_decay}")
        check(_number(cfg, "track.j_init") > 0, f"track.j_init must be > 0; got {cfg.track.j_init}")
        _number(cfg, "track.j0_init")
        check(_number(cfg, "track.j_star") > 0, f"track.j_star must be > 0; got {cfg.track.j_star}")


def _axis(cfg, name):
    import numpy as np

    a = cfg[name]
    return np.linspace(float(a.min), float(a.max), int(a.num))


def run_phase(cfg, output_dir):
    """Compute the phase diagram, its numerical edge (and the training path if enabled); write results and figures."""
    import time

    import jax
    import numpy as np
    import xarray as xr
    from omegaconf import OmegaConf

    from gdchaos.analyses import edge_of_chaos as eoc
    from gdchaos.core.precision import enable_float64, provenance

    validate(cfg)
    if cfg.precision == "float64":
        enable_float64()
    ratio, inv_j = _axis(cfg, "ratio"), _axis(cfg, "inv_j")
    num = cfg.numerics
    key = jax.random.key(cfg.seed)
    start = time.perf_counter()
    log.info("heatmap: %d × %d grid × %d draws, N = %d, %d steps", ratio.size, inv_j.size, num.draws, num.n, num.steps)
    heat = eoc.separation_heatmap(ratio, inv_j, key, n=num.n, draws=num.draws, steps=num.steps,
                                  average=num.average, perturbation=float(num.perturbation))
    jax.block_until_ready(heat.separation)
    heat_seconds = time.perf_counter() - start
    start = time.perf_counter()
    j = 1 / inv_j[:, None]
    chi = eoc.mean_field(ratio[None, :] * j, np.broadcast_to(j, (inv_j.size, ratio.size))).criterion
    b_ratio = np.linspace(float(cfg.ratio.min), float(cfg.ratio.max), int(cfg.boundary_points))
    both = np.asarray(eoc.chaos_boundary(np.concatenate([b_ratio, ratio])))  # one compiled bisection
    b_inv_j, edge_mf = both[: b_ratio.size], both[b_ratio.size:]
    mf_seconds = time.perf_counter() - start
    ds = xr.Dataset(
        {
            "separation": (("inv_j", "ratio"), np.asarray(heat.separation)),
            "growth": (("inv_j", "ratio"), np.asarray(heat.growth)),
            "separation_per_draw": (("draw", "inv_j", "ratio"), np.asarray(heat.per_draw)),
            "lyapunov": (("inv_j", "ratio"), np.asarray(heat.lyapunov)),
            "lyapunov_per_draw": (("draw", "inv_j", "ratio"), np.asarray(heat.lyapunov_per_draw)),
            "criterion": (("inv_j", "ratio"), np.asarray(chi)),
            "boundary_inv_j": (("boundary_ratio",), np.asarray(b_inv_j)),
        },
        coords={"ratio": ratio, "inv_j": inv_j, "draw": np.arange(num.draws), "boundary_ratio": b_ratio},
        attrs={
            "config": OmegaConf.to_yaml(cfg),
            "d0": heat.d0,
            "heatmap_seconds": heat_seconds,
            "mean_field_seconds": mf_seconds,
            **provenance(),
        },
    )
    ds["separation"].attrs["description"] = "RMS |x_t - x'_t| / sqrt(N) after numerics.steps steps, mean over draws"
    ds["growth"].attrs["description"] = "mean over draws of ln(final separation / initial separation); > 0 chaotic"
    ds["lyapunov"].attrs["description"] = ("median over draws of the finite-time largest Lyapunov exponent transverse "
                                           "to the uniform direction (second half of the steps); < 0 ordered")
    ds["criterion"].attrs["description"] = "mean-field J^2 * int Dz sech^4(J0 mu + J sqrt(q0) z); > 1 chaotic"
    ds["boundary_inv_j"].attrs["description"] = "1/J on the mean-field edge of chaos (criterion = 1)"
    growth_median = np.median(np.log(np.maximum(np.asarray(heat.per_draw), np.finfo(float).tiny) / heat.d0), axis=0)
    edges = edge_results(ratio, inv_j, np.asarray(heat.lyapunov), growth_median, edge_mf, float(cfg.edge.threshold))
    ds = ds.merge(edges)
    ds.attrs.update(edges.attrs)
    if cfg.track.enabled:
        track = _track(cfg)
        ds = ds.merge(track)
        ds.attrs.update(track.attrs)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RESULTS_FILE)
    ds.to_netcdf(path, engine="h5netcdf")
    csv_path = write_edge_csv(ds, os.path.join(output_dir, EDGE_FILE))
    figures = save_figures(ds, output_dir)
    log.info("heatmap %.1fs, mean field %.1fs (%s, %s)", heat_seconds, mf_seconds, ds.attrs["backend"], ds.attrs["dtype"])
    log.info(edge_summary_line(ds.attrs, int(num.draws)))
    bad = int(np.sum(ds.edge_status.values == eoc.EDGE_STATUS.index("nonfinite")))
    if bad:
        log.warning("%d J0/J columns have a non-finite exponent before any crossing: no edge reported there", bad)
    print(f"results: {path}")
    print(f"edges: {csv_path}")
    for fig in figures:
        print(f"figure: {fig}")
    return ds


def edge_results(ratio, inv_j, lyapunov, growth, edge_mean_field, threshold: float):
    """Per-column numerical edges (exponent and separation) and their distances to the mean-field edge.

    ``lyapunov`` and ``growth`` (ln(d/d0), median over draws) are ``(n_inv_j, n_ratio)``;
    the edge is where λ⊥ first reaches ``threshold`` coming down from the largest 1/J
    (:func:`gdchaos.analyses.edge_of_chaos.locate_edge`); the separation edge is where ln(d/d0)
    first reaches 0, the heatmap's own (slow-growth-biased) edge. Returns a Dataset
    over ``ratio`` with the summary of :func:`gdchaos.analyses.edge_of_chaos.compare_edges` as
    ``edge_distance_*`` attributes (and ``edge_separation_distance_*``).
    """
    import numpy as np
    import xarray as xr

    from gdchaos.analyses import edge_of_chaos as eoc

    ratio, inv_j = np.asarray(ratio, dtype=float), np.asarray(inv_j, dtype=float)
    edge = eoc.locate_edge(inv_j, lyapunov, threshold)
    sep_edge = eoc.locate_edge(inv_j, growth, 0.0)
    span = (float(inv_j.min()), float(inv_j.max()))
    cmp = eoc.compare_edges(ratio, edge.inv_j, edge_mean_field, span)
    cmp_sep = eoc.compare_edges(ratio, sep_edge.inv_j, edge_mean_field, span)
    ds = xr.Dataset(
        {
            "edge_numerical": (("ratio",), edge.inv_j),
            "edge_status": (("ratio",), edge.status.astype(np.int8)),
            "edge_mean_field": (("ratio",), np.asarray(edge_mean_field, dtype=float)),
            "edge_distance": (("ratio",), cmp.distance),
            "edge_separation": (("ratio",), sep_edge.inv_j),
            "edge_separation_distance": (("ratio",), cmp_sep.distance),
        },
        coords={"ratio": ratio},
        attrs={"edge_threshold": threshold,
               **{f"edge_distance_{k}": v for k, v in cmp.summary.items()},
               **{f"edge_separation_distance_{k}": v for k, v in cmp_sep.summary.items()}},
    )
    ds["edge_numerical"].attrs["description"] = (
        f"1/J where the median transverse Lyapunov exponent first reaches {threshold:g} coming down from the largest "
        "1/J, interpolated between grid cells; NaN where none (see edge_status)")
    ds["edge_status"].attrs.update(flag_values=np.arange(len(eoc.EDGE_STATUS), dtype=np.int8),
                                   flag_meanings=" ".join(eoc.EDGE_STATUS))
    ds["edge_mean_field"].attrs["description"] = "1/J on the mean-field boundary (criterion = 1) at this J0/J"
    ds["edge_distance"].attrs["description"] = "|edge_numerical - edge_mean_field| in 1/J"
    ds["edge_separation"].attrs["description"] = (
        "1/J where the median ln(separation / initial separation) first reaches 0 coming down from the largest 1/J")
    return ds


def edge_summary_line(attrs, draws: int) -> str:
    """One log line: the per-column distances |Δ(1/J)| summarized on each side of J0/J = 1."""
    def side(prefix, name, label):
        n, missing = attrs[f"{prefix}_compared_{name}"], attrs[f"{prefix}_missing_{name}"]
        return (f"{label}: max {attrs[f'{prefix}_max_{name}']:.3f}, mean {attrs[f'{prefix}_mean_{name}']:.3f} over "
                f"{n} columns ({missing} without an edge)")

    d = "edge_distance"
    return (f"numerical edge (transverse exponent >= {attrs['edge_threshold']:g}, median of {draws} draws) vs mean "
            f"field, |Δ(1/J)| per J0/J column: {side(d, 'j0_le_j', 'J0/J <= 1')}; {side(d, 'abs_j0_lt_j', '|J0/J| < 1')}; "
            f"{side(d, 'j0_gt_j', 'J0/J > 1')}. Separation edge (ln d/d0 >= 0): "
            f"{side('edge_separation_distance', 'j0_le_j', 'J0/J <= 1')}")


def write_edge_csv(ds, path) -> str:
    """Write the per-column edges (``ratio``, numerical, status, mean field, distance, separation edge) as CSV."""
    import csv

    from gdchaos.analyses.edge_of_chaos import EDGE_STATUS

    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ratio", "edge_numerical", "edge_status", "edge_mean_field", "edge_distance", "edge_separation"])
        for k in range(ds.sizes["ratio"]):
            out.writerow([f"{float(ds.ratio[k]):.6g}", f"{float(ds.edge_numerical[k]):.6g}",
                          EDGE_STATUS[int(ds.edge_status[k])], f"{float(ds.edge_mean_field[k]):.6g}",
                          f"{float(ds.edge_distance[k]):.6g}", f"{float(ds.edge_separation[k]):.6g}"])
    return str(path)


def _track(cfg):
    import jax
    import numpy as np
    import xarray as xr

    from gdchaos.analyses import edge_of_chaos as eoc
    from gdchaos.core.data import load

    t = cfg.track
    data = load(t.data).flatten()
    log.info("training a %d-%d-%d tanh network on %s: η=%g, α=%g, B=%d, λ=%g, %d epochs",
             data.n_features, data.n_features, data.n_classes, data.name, t.eta, t.momentum, t.batch_size,
             t.weight_decay, t.epochs)
    tr = eoc.track_training(
        data, epochs=t.epochs, eta=float(t.eta), momentum=float(t.momentum), batch_size=t.batch_size,
        weight_decay=float(t.weight_decay), j0_init=float(t.j0_init), j_init=float(t.j_init),
        key=jax.random.key(cfg.seed + 1),
    )
    growth = eoc.analyze_growth(tr, float(t.eta), float(t.momentum), t.batch_size, len(data.x_train), float(t.j_star))
    fields = {name: (("epoch",), np.asarray(getattr(tr, name))) for name in tr._fields if name != "epoch"}
    fields["diverged"] = (("epoch",), np.asarray(tr.diverged).astype(np.int8))
    ds = xr.Dataset(fields, coords={"epoch": np.asarray(tr.epoch)})
    ds = ds.rename({name: f"track_{name}" for name in fields})
    summary = {
        "track_slope_A": float(growth.slope),
        "track_intercept_C": float(growth.intercept),
        "track_fit_points": int(growth.n_points),
        "track_scale_factor": float(growth.scale_factor),
        "track_D": float(growth.d),
        "track_weight_decay_estimate": float(growth.weight_decay),
        "track_n_train": len(data.x_train),
        "track_dataset": data.name,
    }
    ds.attrs.update(summary)
    log.info("J² = %.4g·epoch + %.4g over %d ordered epochs; scale factor η/((1-α)B) = %.4g; D = %.4g; "
             "λ* ≈ D/(4 S J*²) = %.3g; final J0/J = %.3f, 1/J = %.3f, Jacobian norm = %.3f",
             growth.slope, growth.intercept, growth.n_points, growth.scale_factor, growth.d, growth.weight_decay,
             float(tr.j0[-1] / tr.j[-1]), float(1 / tr.j[-1]), float(tr.jacobian_norm[-1]))
    return ds


# --------------------------------------------------------------------------- figures


def _pyplot():
    """A pyplot stand-in whose ``subplots`` draws pyplot-free Agg figures: this CLI only writes files, and
    drawing them neither selects a backend nor loads pyplot (see :mod:`gdchaos.figures.sweep`)."""
    from types import SimpleNamespace

    from gdchaos.figures.sweep import _agg_subplots

    return SimpleNamespace(subplots=_agg_subplots)


def phase_figure(ds):
    """Separation heatmap (the paper's picture) and the exponent λ⊥, each with the mean-field boundary and the
    numerical edge points (and the training path if present)."""
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), constrained_layout=True)
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


def _config_value(ds, key):
    from omegaconf import OmegaConf

    try:
        return OmegaConf.create(ds.attrs["config"]).numerics[key]
    except Exception:
        return None


def training_figure(ds):
    """J² vs epoch with the linear fit J² = A·epoch + C, the edge J² = 1, Jacobian norm² and test accuracy."""
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
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


def save_figures(ds, directory) -> list[str]:
    """Write ``phase_diagram.png`` (and ``training.png`` when a path is present) into ``directory``."""
    from gdchaos.figures.sweep import write_figures

    figures = {"phase_diagram.png": phase_figure(ds)}
    if "track_j" in ds:
        figures["training.png"] = training_figure(ds)
    return [str(p) for p in write_figures(figures, directory, dpi=150)]


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console entry point: η sweeps become lists (one process), then Hydra runs :func:`run_phase`."""
    hydra_app("gdchaos.phase", "phase", run_phase, argv)


if __name__ == "__main__":
    main()
