r"""Hydra entry point: ``python -m gdchaos.phase [overrides]``: the order–chaos phase diagram of x ↦ tanh(W x).

Computes (see :mod:`gdchaos.analyses.phase_diagram` and :mod:`gdchaos.analyses.edge_of_chaos`)

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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from omegaconf import OmegaConf

from gdchaos.analyses import phase_diagram as phase_lib
from gdchaos.analyses.edge_of_chaos import EDGE_STATUS
from gdchaos.analyses.phase_diagram import training_path
from gdchaos.cli.app import hydra_app
from gdchaos.core.config import integer, number
from gdchaos.core.data import load
from gdchaos.core.errors import check
from gdchaos.core.precision import enable_float64
from gdchaos.experiments import results
from gdchaos.figures.phase import save_figures

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

log = logging.getLogger("gdchaos.phase")
RESULTS_FILE = "phase.nc"
EDGE_FILE = "edge.csv"


def validate(cfg: Any) -> None:
    """Check the config before any computation (one-line messages that state the fix)."""
    for axis, least in (("ratio", 1), ("inv_j", 2)):
        lo, hi = number(cfg, f"{axis}.min"), number(cfg, f"{axis}.max")
        integer(cfg, f"{axis}.num", least)
        check(hi >= lo, f"{axis}.max must be >= {axis}.min; got min={lo}, max={hi}")
    check(cfg.inv_j.min > 0, f"inv_j.min must be > 0 (1/J = 0 is J = infinity); got {cfg.inv_j.min}")
    check(cfg.inv_j.max > cfg.inv_j.min,
          f"inv_j.max must be > inv_j.min (the edge is located between rows); got {cfg.inv_j.min}, {cfg.inv_j.max}")
    integer(cfg, "boundary_points", 2)
    integer(cfg, "numerics.n", 2)
    integer(cfg, "numerics.draws", 1)
    steps = integer(cfg, "numerics.steps", 2)
    average = integer(cfg, "numerics.average", 1)
    check(average <= steps, f"numerics.average must be <= numerics.steps={steps}; got {average}")
    number(cfg, "numerics.perturbation", 0.0, strict=True)
    check(number(cfg, "edge.threshold") < 0,
          f"edge.threshold must be < 0 (a fixed point has λ < 0, a torus λ = 0); got {cfg.edge.threshold}")
    integer(cfg, "seed", 0)
    check(cfg.precision in ("float32", "float64"), f"precision must be float32 or float64; got {cfg.precision!r}")
    if cfg.track.enabled:
        integer(cfg, "track.epochs", 1)
        integer(cfg, "track.batch_size", 1)
        number(cfg, "track.eta", 0.0, strict=True)
        momentum = number(cfg, "track.momentum", 0.0)
        check(momentum < 1, f"track.momentum must be in [0, 1); got {momentum}")
        number(cfg, "track.weight_decay", 0.0)
        number(cfg, "track.j_init", 0.0, strict=True)
        number(cfg, "track.j0_init")
        number(cfg, "track.j_star", 0.0, strict=True)


def _axis(cfg: Any, name: str) -> np.ndarray:

    a = cfg[name]
    return np.linspace(float(a.min), float(a.max), int(a.num))


def run_phase(cfg: Any, output_dir: str | Path) -> xr.Dataset:
    """Compute the phase diagram, its numerical edge (and the training path if enabled); write results and figures."""


    validate(cfg)
    if cfg.precision == "float64":
        enable_float64()
    ratio, inv_j = _axis(cfg, "ratio"), _axis(cfg, "inv_j")
    num = cfg.numerics
    log.info("heatmap: %d × %d grid × %d draws, N = %d, %d steps", ratio.size, inv_j.size, num.draws, num.n, num.steps)
    ds = phase_lib.phase_diagram(ratio, inv_j, jax.random.key(cfg.seed), n=num.n, draws=num.draws, steps=num.steps,
                              average=num.average, perturbation=float(num.perturbation),
                              boundary_points=cfg.boundary_points,
                              boundary_range=(float(cfg.ratio.min), float(cfg.ratio.max)),
                              threshold=float(cfg.edge.threshold))
    if cfg.track.enabled:
        track = _track(cfg)
        ds = ds.merge(track)
        ds.attrs.update(track.attrs)
    ds = results.dataset(ds.data_vars, ds.coords, {"config": OmegaConf.to_yaml(cfg), **ds.attrs})
    table = phase_lib.edge_table(ds)
    table = table.apply(lambda col: col.map("{:.6g}".format) if col.dtype.kind == "f" else col)  # as ever: NaN reads "nan"
    path = results.write(ds, output_dir, file=RESULTS_FILE, summary=table, summary_file=EDGE_FILE)
    csv_path = Path(output_dir) / EDGE_FILE
    figures = save_figures(ds, output_dir)
    log.info("heatmap %.1fs, mean field %.1fs (%s, %s)", ds.attrs["heatmap_seconds"], ds.attrs["mean_field_seconds"],
             ds.attrs["backend"], ds.attrs["dtype"])
    log.info(phase_lib.edge_summary_line(ds.attrs, int(num.draws)))
    bad = int(np.sum(ds.edge_status.values == EDGE_STATUS.index("nonfinite")))
    if bad:
        log.warning("%d J0/J columns have a non-finite exponent before any crossing: no edge reported there", bad)
    print(f"results: {path}")
    print(f"edges: {csv_path}")
    for fig in figures:
        print(f"figure: {fig}")
    return ds


def _track(cfg: Any) -> xr.Dataset:
    """The training path of ``cfg.track`` (:func:`gdchaos.analyses.phase_diagram.training_path`), logged."""


    t = cfg.track
    data = load(t.data).flatten()
    log.info("training a %d-%d-%d tanh network on %s: η=%g, α=%g, B=%d, λ=%g, %d epochs",
             data.n_features, data.n_features, data.n_classes, data.name, t.eta, t.momentum, t.batch_size,
             t.weight_decay, t.epochs)
    ds = training_path(data, epochs=t.epochs, eta=t.eta, momentum=t.momentum, batch_size=t.batch_size,
                       weight_decay=t.weight_decay, j0_init=t.j0_init, j_init=t.j_init, j_star=t.j_star,
                       key=jax.random.key(cfg.seed + 1))
    a = ds.attrs
    log.info("J² = %.4g·epoch + %.4g over %d ordered epochs; scale factor η/((1-α)B) = %.4g; D = %.4g; "
             "λ* ≈ D/(4 S J*²) = %.3g; final J0/J = %.3f, 1/J = %.3f, Jacobian norm = %.3f",
             a["track_slope_A"], a["track_intercept_C"], a["track_fit_points"], a["track_scale_factor"], a["track_D"],
             a["track_weight_decay_estimate"], float(ds.track_j0[-1] / ds.track_j[-1]), float(1 / ds.track_j[-1]),
             float(ds.track_jacobian_norm[-1]))
    return ds


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: η sweeps become lists (one process), then Hydra runs :func:`run_phase`."""
    hydra_app("gdchaos.phase", "phase", run_phase, None if argv is None else list(argv))


if __name__ == "__main__":
    main()
