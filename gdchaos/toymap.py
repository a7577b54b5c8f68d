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

import ast
import logging
import math
import os

from gdchaos.cli.app import hydra_app
from gdchaos.core.errors import ConfigError, check

log = logging.getLogger("gdchaos.toymap")
RESULTS_FILE = "toymap.nc"
FIGURES = ("bifurcation.png", "lyapunov.png", "toymap.png")


def eta_grid(value) -> list[float]:
    """The η values of a config entry: a number, a list, or a sweep string such as ``range(0.5,1.6,0.001)``.

    Sweep strings are expanded by :func:`gdchaos.sweep.vectorize_overrides` (stop excluded).

    Example:
        >>> eta_grid("range(0.5,0.8,0.1)"), eta_grid([1, 2]), eta_grid(0.3)
        ([0.5, 0.6, 0.7], [1.0, 2.0], [0.3])
    """
    from gdchaos.sweep import vectorize_overrides

    if isinstance(value, str):
        try:
            rewritten = vectorize_overrides([f"eta={value.strip()}"])[0]
            value = ast.literal_eval(rewritten.split("=", 1)[1])
        except ConfigError:
            raise
        except Exception:
            raise ConfigError(f"eta must be numbers, a list or range(start,stop,step); got {value!r}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"eta values must be numbers; got {value!r}") from None
    return values


def _integer(cfg, key: str, minimum: int) -> int:
    value = cfg[key]
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{key} must be an integer >= {minimum}; got {value!r}",
    )
    return value


def validate(cfg) -> list[float]:
    """Check the config before any computation; return the η grid."""
    from gdchaos.analyses.toymaps import POTENTIALS

    eta = eta_grid(cfg.eta)
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=0.9 or 'eta=range(0.5,1.6,0.001)'")
    check(all(math.isfinite(e) and e > 0 for e in eta), f"learning rates must be finite and > 0; got {eta[:5]}{'...' if len(eta) > 5 else ''}")
    check(cfg.potential in POTENTIALS, f"unknown potential {cfg.potential!r}; choose one of {sorted(POTENTIALS)}")
    for key, minimum in (("n_init", 1), ("transient", 0), ("keep", 1), ("seed", 0)):
        _integer(cfg, key, minimum)
    for key in ("init_mean", "init_std", "escape_radius"):
        value = cfg[key]
        check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
              f"{key} must be a finite number; got {value!r}")
    check(cfg.init_std >= 0, f"init_std must be >= 0; got {cfg.init_std}")
    check(cfg.escape_radius > 0, f"escape_radius must be > 0; got {cfg.escape_radius}")
    check(cfg.precision in ("float32", "float64"), f"precision must be float32 or float64; got {cfg.precision!r}")
    return eta


def _kwargs(cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    value = cfg.potential_kwargs
    if value is None:
        return {}
    check(isinstance(value, DictConfig), f"potential_kwargs must be a mapping such as {{a: 2.0}}; got {value!r}")
    return OmegaConf.to_container(value, resolve=True)


def _marks(cfg) -> list[float]:
    from omegaconf import OmegaConf

    from gdchaos.analyses.toymaps import MINIMA, stability_limit

    mark = OmegaConf.select(cfg, "figures.mark_eta")
    if mark is None:
        return []
    if mark == "auto":
        if cfg.potential not in MINIMA:
            return []
        return [stability_limit(cfg.potential, **_kwargs(cfg))]
    return eta_grid(mark)


def run_toymap(cfg, output_dir):
    """Compute orbits and exponents for ``cfg`` and write ``toymap.nc`` and the figures into ``output_dir``."""
    import time

    import jax
    import numpy as np
    from omegaconf import OmegaConf

    from gdchaos.analyses import toymaps
    from gdchaos.core.precision import enable_float64, provenance

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
    curve = toymaps.summarize(orbits)
    jax.block_until_ready(curve)
    seconds = time.perf_counter() - start
    ds = to_dataset(orbits, curve, attrs={
        "potential": cfg.potential,
        "potential_kwargs": repr(kwargs),
        "transient": cfg.transient,
        "run_seconds": seconds,
        "config": OmegaConf.to_yaml(cfg),
        **provenance(),
    })
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, RESULTS_FILE)
    ds.to_netcdf(path, engine="h5netcdf", encoding={"points": {"zlib": True, "complevel": 4}})
    marks = _marks(cfg)
    figures = save_figures(ds, output_dir, marks)
    n_escaped = int(ds.escaped.sum())
    if n_escaped:
        log.info("%d of %d orbits escaped (|w| > %g); they are NaN and excluded from λ(η)",
                 n_escaped, ds.escaped.size, cfg.escape_radius)
    log.info("computed in %.2fs (%s, %s)", seconds, ds.attrs["backend"], ds.attrs["dtype"])
    print(f"results: {path}")
    for fig in figures:
        print(f"figure: {fig}")
    return ds


def to_dataset(orbits, curve, attrs: dict | None = None):
    """Orbits and λ(η) as an ``xarray.Dataset`` with dims ``(eta, init, step)``."""
    import numpy as np
    import xarray as xr

    points = np.asarray(orbits.points)
    check(points.ndim == 3, "to_dataset stores 1-D maps; got d-dimensional orbit points")
    ds = xr.Dataset(
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
        attrs=attrs or {},
    )
    ds["lyapunov"].attrs["units"] = "nat / step"
    ds["points"].attrs["description"] = "w_t after the transient; NaN for escaped orbits"
    return ds


# --------------------------------------------------------------------------- figures


def _pyplot():
    """A pyplot stand-in whose ``subplots`` draws pyplot-free Agg figures: this CLI only writes files, and
    drawing them neither selects a backend nor loads pyplot (see :mod:`gdchaos.figures.sweep`)."""
    from types import SimpleNamespace

    from gdchaos.figures.sweep import _agg_subplots

    return SimpleNamespace(subplots=_agg_subplots)


def _draw_orbits(ax, ds, marks):
    import numpy as np

    pts = ds.points.values
    eta = np.broadcast_to(ds.eta.values[:, None, None], pts.shape)
    ok = np.isfinite(pts)
    ax.plot(eta[ok], pts[ok], ",", color="k", alpha=0.25, rasterized=True)
    for m in marks:
        ax.axvline(m, color="tab:red", lw=0.8, ls="--")
    ax.set_ylabel("w (post-transient orbit)")
    ax.set_title(f"GD on {ds.attrs.get('potential', 'V')}: orbit diagram ({ds.sizes['init']} ICs × {ds.sizes['step']} steps)")


def _draw_lyapunov(ax, ds, marks):
    import numpy as np

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


def bifurcation_figure(ds, marks=()):
    """Orbit diagram: the kept orbit points vs η."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    _draw_orbits(ax, ds, marks)
    ax.set_xlabel("learning rate η")
    return fig


def lyapunov_figure(ds, marks=()):
    """λ(η) with the 0 line, the chaotic region shaded and the stability limit(s) marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
    _draw_lyapunov(ax, ds, marks)
    for line in ax.get_lines():
        line.set_rasterized(True)
    return fig


def combined_figure(ds, marks=()):
    """Orbit diagram above λ(η), sharing the η axis."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True, constrained_layout=True)
    _draw_orbits(axes[0], ds, marks)
    _draw_lyapunov(axes[1], ds, marks)
    return fig


def save_figures(ds, directory, marks=()) -> list[str]:
    """Write ``bifurcation.png``, ``lyapunov.png`` and ``toymap.png`` into ``directory``."""
    from gdchaos.figures.sweep import write_figures

    makers = (bifurcation_figure, lyapunov_figure, combined_figure)
    return [str(p) for p in write_figures({name: make(ds, marks) for name, make in zip(FIGURES, makers)}, directory, dpi=150)]


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console entry point: η sweeps become lists (one process), then Hydra runs :func:`run_toymap`."""
    hydra_app("gdchaos.toymap", "toymap", run_toymap, argv)


if __name__ == "__main__":
    main()
