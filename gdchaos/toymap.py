r"""Hydra entry point: ``python -m gdchaos.toymap [overrides]``: the route to chaos of GD on a 1-D potential.

Iterates w ↦ w − ηV'(w) over an η grid × initial conditions (one vmapped program, see
:mod:`gdchaos.analyses.toymaps`) and writes into the run directory

* ``bifurcation.png``: post-transient orbit points vs η (orbit diagram),
* ``lyapunov.png``: λ(η) = ⟨ln|1 − ηV''(w_t)|⟩ with the 0 line and the η where the
  minimum loses stability (η = 1 for the double well) marked,
* ``toymap.png``: both, stacked on a shared η axis,
* ``toymap.nc``: the arrays (orbit points, per-orbit exponents, escape flags, λ(η))
  with the configuration and provenance as attributes (``xarray.open_dataset``).

::

    python -m gdchaos.toymap                                  # double well, η ∈ [0.01, 2)
    python -m gdchaos.toymap 'eta=range(0.5,1.6,0.001)'       # zoom into the cascade
    python -m gdchaos.toymap potential=logistic 'eta=range(0.5,3,0.002)' init_mean=0.5

``eta`` takes a list, a number or Hydra's sweep syntax (``range(start,stop,step)``
with ``stop`` excluded, ``a,b,c``); all values run in ONE process. A sweep over any
other key (``potential=double_well,logistic``) becomes Hydra multirun jobs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from gdchaos.analyses import toymaps
from gdchaos.analyses.toymaps import MINIMA, POTENTIALS, stability_limit
from gdchaos.cli.app import hydra_app
from gdchaos.cli.overrides import eta_grid
from gdchaos.core.config import integer, number, select
from gdchaos.core.errors import ConfigError, check
from gdchaos.core.precision import enable_float64
from gdchaos.experiments import results
from gdchaos.figures.toymap import save_figures

if TYPE_CHECKING:
    import xarray as xr

    from gdchaos.analyses.toymaps import LyapunovCurve, Orbits

log = logging.getLogger("gdchaos.toymap")
RESULTS_FILE = "toymap.nc"


def validate(cfg: Any) -> list[float]:
    """Check the config before any computation; return the η grid."""
    eta = eta_grid(cfg.eta)
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=0.9 or 'eta=range(0.5,1.6,0.001)'")
    check(all(math.isfinite(e) and e > 0 for e in eta),
          f"learning rates must be finite and > 0; got {eta[:5]}{'...' if len(eta) > 5 else ''}")
    check(cfg.potential in POTENTIALS, f"unknown potential {cfg.potential!r}; choose one of {sorted(POTENTIALS)}")
    for key, minimum in (("n_init", 1), ("transient", 0), ("keep", 1), ("seed", 0)):
        integer(cfg, key, minimum)
    number(cfg, "init_mean")
    number(cfg, "init_std", 0.0)
    number(cfg, "escape_radius", 0.0, strict=True)
    check(cfg.precision in ("float32", "float64"), f"precision must be float32 or float64; got {cfg.precision!r}")
    return eta


def _kwargs(cfg: Any) -> dict:

    value = cfg.potential_kwargs
    if value is None:
        return {}
    check(isinstance(value, DictConfig), f"potential_kwargs must be a mapping such as {{a: 2.0}}; got {value!r}")
    return OmegaConf.to_container(value, resolve=True)


def _marks(cfg: Any) -> list[float]:

    mark = select(cfg, "figures.mark_eta")
    if mark is None:
        return []
    if mark == "auto":
        if cfg.potential not in MINIMA:
            return []
        return [stability_limit(cfg.potential, **_kwargs(cfg))]
    return eta_grid(mark)


def run_toymap(cfg: Any, output_dir: str | Path) -> xr.Dataset:
    """Compute orbits and exponents for ``cfg`` and write ``toymap.nc`` and the figures into ``output_dir``."""



    eta = validate(cfg)
    if cfg.precision == "float64":
        enable_float64()
    kwargs = _kwargs(cfg)
    try:
        potential = toymaps.get_potential(cfg.potential, **kwargs)
        potential(0.5)
    except TypeError as err:
        raise ConfigError(f"potential_kwargs {kwargs} do not fit potential {cfg.potential!r}: {err}") from None
    log.info("%s: %d η × %d initial conditions × (%d transient + %d kept) steps",
             cfg.potential, len(eta), cfg.n_init, cfg.transient, cfg.keep)
    start = time.perf_counter()
    orbits = toymaps.orbit_diagram(
        potential, np.asarray(eta), cfg.n_init, cfg.transient, cfg.keep, jax.random.key(cfg.seed),
        init_mean=float(cfg.init_mean), init_std=float(cfg.init_std), escape_radius=float(cfg.escape_radius),
    )
    curve = toymaps.lyapunov_curve(orbits)
    jax.block_until_ready(curve)
    seconds = time.perf_counter() - start
    ds = to_dataset(orbits, curve, attrs={
        "potential": cfg.potential,
        "potential_kwargs": repr(kwargs),
        "transient": cfg.transient,
        "run_seconds": seconds,
        "config": OmegaConf.to_yaml(cfg),
    })
    path = results.write(ds, output_dir, file=RESULTS_FILE)
    figures = save_figures(ds, output_dir, _marks(cfg))
    n_escaped = int(ds.escaped.sum())
    if n_escaped:
        log.info("%d of %d orbits escaped (|w| > %g); they are NaN and excluded from λ(η)",
                 n_escaped, ds.escaped.size, cfg.escape_radius)
    log.info("computed in %.2fs (%s, %s)", seconds, ds.attrs["backend"], ds.attrs["dtype"])
    print(f"results: {path}")
    for fig in figures:
        print(f"figure: {fig}")
    return ds


def to_dataset(orbits: Orbits, curve: LyapunovCurve, attrs: dict | None = None) -> xr.Dataset:
    """Orbits and λ(η) as a results Dataset (:func:`gdchaos.experiments.results.dataset`) with dims ``(eta, init, step)``."""


    points = np.asarray(orbits.points)
    check(points.ndim == 3, "to_dataset stores 1-D maps; got d-dimensional orbit points")
    ds = results.dataset(
        {
            "points": (("eta", "init", "step"), points),
            "exponent_per_init": (("eta", "init"), np.asarray(orbits.exponent)),
            "escaped": (("eta", "init"), np.asarray(orbits.escaped).astype(np.int8)),
            "lyapunov": (("eta",), np.asarray(curve.exponent)),
            "lyapunov_std": (("eta",), np.asarray(curve.std)),
            "bounded_fraction": (("eta",), np.asarray(curve.bounded_fraction)),
            "w0": (("init",), np.asarray(orbits.inits)),
        },
        coords={"eta": np.asarray(orbits.eta), "init": np.arange(points.shape[1]), "step": np.arange(points.shape[2])},
        attrs=attrs,
        descriptions={"points": "w_t after the transient; NaN for escaped orbits"},
    )
    ds["lyapunov"].attrs["units"] = "nat / step"
    return ds


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: η sweeps become lists (one process), then Hydra runs :func:`run_toymap`."""
    hydra_app("gdchaos.toymap", "toymap", run_toymap, None if argv is None else list(argv))


if __name__ == "__main__":
    main()
