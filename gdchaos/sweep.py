r"""Hydra entry point: ``python -m gdchaos.sweep [overrides]``.

η and ε take Hydra's sweep syntax without ``--multirun`` and are vectorized inside
ONE process and ONE compiled program::

    python -m gdchaos.sweep 'eta=range(0.01,20)'          # 0.01, 1.01, ..., 19.01
    python -m gdchaos.sweep eta=0.1,1,5 eps=1e-8,1e-6

``range(start, stop, step)`` follows Python: ``stop`` is excluded, also for float
steps (Hydra 1.3 itself may include it). A sweep over any other key (``data=iris,digits``,
``model.hidden=[10],[32]``) changes shapes, so it becomes ordinary Hydra multirun jobs,
each η-vectorized; ``--multirun`` is added for you.

Writes into the run directory: ``results.nc`` (labelled arrays; reload with
``gdchaos.results.load``), ``summary.csv`` and ``figures/*.png``.

``method=finite`` (default) measures ε-ball divergence; ``method=tangent`` the exact
ε → 0 exponents from tangent maps (top ``lyapunov.k``; float32 suffices);
``method=both`` runs both on the same initial conditions and draws them together.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from importlib import resources

from gdchaos.errors import ConfigError, DatasetUnavailableError, PrecisionError, check

VECTORIZED_KEYS = ("eta", "eps")
METHODS = ("finite", "tangent", "both")
log = logging.getLogger("gdchaos.sweep")


def expand_range(start: float, stop: float, step: float = 1.0) -> list[float]:
    """Python-style ``range`` over floats: start, start + step, ... (stop excluded).

    Values are rounded to 12 significant digits so 0.1 + 2·0.1 prints as 0.3.

    Example:
        >>> expand_range(0.01, 0.05, 0.01)
        [0.01, 0.02, 0.03, 0.04]
    """
    check(step != 0, "range step must be non-zero")
    n = max(0, math.ceil((stop - start) / step - 1e-9))
    return [float(f"{start + i * step:.12g}") for i in range(n)]


def vectorize_overrides(argv: list[str]) -> list[str]:
    """Rewrite η/ε sweep overrides into list overrides; add ``--multirun`` for other sweeps.

    Example:
        >>> vectorize_overrides(["eta=range(0.5,2)", "eps=1e-8,1e-6"])
        ['eta=[0.5,1.5]', 'eps=[1e-08,1e-06]']
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    parser = OverridesParser.create()
    out, needs_multirun = [], False
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        override = parser.parse_overrides([arg])[0]
        if not override.is_sweep_override():
            out.append(arg)
            continue
        if override.key_or_group not in VECTORIZED_KEYS:
            needs_multirun = True
            out.append(arg)
            continue
        sweep = override.value()
        if isinstance(sweep, RangeSweep):
            values = expand_range(sweep.start, sweep.stop, sweep.step)
        elif isinstance(sweep, ChoiceSweep):
            values = _numbers(override.key_or_group, sweep.list)
        else:
            raise ConfigError(f"{override.key_or_group} accepts a list, a,b,c or range(...); got {arg!r}")
        out.append(f"{override.key_or_group}=[{','.join(repr(v) for v in values)}]")
    if needs_multirun and not any(a in ("-m", "--multirun") for a in out):
        out.insert(0, "--multirun")
    return out


def _numbers(key: str, values) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} values must be numbers; got {list(values)!r}") from None


def _as_list(value, key: str = "eta/eps") -> list[float]:
    if value is None:
        return []
    if isinstance(value, (int, float, str)):
        return _numbers(key, [value])
    return _numbers(key, value)


def validate(cfg) -> None:
    """Fail fast, before any computation, on configs that cannot run."""
    from gdchaos.lyapunov.finite import check_window_grid
    from gdchaos.models import ACTIVATIONS

    eta, eps = _as_list(cfg.eta, "eta"), _as_list(cfg.eps, "eps")
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=0.1 or 'eta=range(0.01,20)'")
    check(all(e > 0 for e in eta), f"learning rates must be > 0; got eta={eta}")
    check(len(eps) > 0 and all(e > 0 for e in eps), f"eps must be > 0; got eps={eps}")
    check(cfg.n_perturb >= 1, f"n_perturb must be >= 1; got {cfg.n_perturb}")
    check(cfg.n_ic >= 1, f"n_ic must be >= 1; got {cfg.n_ic}")
    check(cfg.method in METHODS, f"unknown method {cfg.method!r}; choose one of {list(METHODS)}")
    check(cfg.lyapunov.k >= 1, f"lyapunov.k must be >= 1; got {cfg.lyapunov.k}")
    check(0 <= cfg.lyapunov.transient < cfg.steps, f"lyapunov.transient must be in [0, steps); got {cfg.lyapunov.transient}")
    check(cfg.precision in ("auto", "float32", "float64"), f"precision must be auto, float32 or float64; got {cfg.precision!r}")
    check(
        cfg.model.get("activation", "sigmoid") in ACTIVATIONS,
        f"unknown activation {cfg.model.get('activation')!r}; choose one of {sorted(ACTIVATIONS)}",
    )
    if cfg.method in ("finite", "both"):
        check_window_grid(cfg.steps, *_window_grid(cfg))


def _window_grid(cfg):
    ly = cfg.lyapunov
    starts = list(range(ly.start_min, ly.start_max + 1, ly.start_step))
    lengths = list(range(ly.length_min, ly.length_max + 1, ly.length_step))
    return starts, lengths


def _configure_devices(cfg) -> None:
    """On CPU, expose one XLA host device per core so the ensemble is split across cores."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = (os.cpu_count() or 1) if cfg.cpu_devices == "auto" else int(cfg.cpu_devices)
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _configure_precision(cfg) -> None:
    from gdchaos.numerics import enable_float64, needs_float64

    finite = cfg.method in ("finite", "both")
    if cfg.precision == "float64" or (cfg.precision == "auto" and finite and needs_float64(_as_list(cfg.eps))):
        enable_float64()


def run_sweep(cfg, output_dir) -> "object":
    """Run the configured sweep and write results and figures into ``output_dir``."""
    from omegaconf import OmegaConf

    from gdchaos import plots, results
    import xarray as xr

    from gdchaos.experiment import add_window_matched_tangent, finite_sweep, tangent_sweep
    from gdchaos.task import build_task

    validate(cfg)
    _configure_devices(cfg)
    _configure_precision(cfg)
    task = build_task(
        OmegaConf.to_container(cfg.data, resolve=True),
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.optimizer, resolve=True),
    )
    eta, eps = _as_list(cfg.eta), _as_list(cfg.eps)
    attrs = {"config": OmegaConf.to_yaml(cfg), "method": cfg.method}
    parts = []
    if cfg.method in ("finite", "both"):
        starts, lengths = _window_grid(cfg)
        log.info("%s finite-ε: %d η × %d ε × %d ICs × %d members × %d updates", task.name, len(eta), len(eps), cfg.n_ic, cfg.n_perturb + 1, cfg.steps)
        parts.append(finite_sweep(
            task,
            eta=eta,
            eps=eps,
            n_ic=cfg.n_ic,
            n_perturb=cfg.n_perturb,
            steps=cfg.steps,
            seed=cfg.seed,
            starts=starts,
            lengths=lengths,
            min_r2=cfg.lyapunov.min_r2,
            min_exponent=cfg.lyapunov.min_exponent,
            accuracy_target=cfg.accuracy_target,
            include_bias=cfg.perturbation.include_bias,
            distance=cfg.perturbation.distance,
            chunk=cfg.chunk,
            progress=cfg.progress,
            attrs=attrs,
        ))
    if cfg.method in ("tangent", "both"):
        log.info("%s tangent: %d η × %d ICs × k=%d × %d updates", task.name, len(eta), cfg.n_ic, cfg.lyapunov.k, cfg.steps)
        parts.append(tangent_sweep(
            task,
            eta=eta,
            n_ic=cfg.n_ic,
            steps=cfg.steps,
            seed=cfg.seed,
            k=cfg.lyapunov.k,
            transient=cfg.lyapunov.transient,
            renorm_every=cfg.lyapunov.renorm_every,
            chunk=cfg.chunk,
            progress=cfg.progress,
            attrs=attrs,
        ))
    ds = add_window_matched_tangent(xr.merge(parts, combine_attrs="drop_conflicts")) if len(parts) > 1 else parts[0]
    path = results.save(ds, output_dir)
    plots.save_all(ds, os.path.join(output_dir, "figures"), etas=cfg.figures.etas)
    for prefix in ("", "tangent_"):
        if f"{prefix}run_seconds" in ds.attrs:
            log.info("%s compile %.1fs, run %.1fs (%s, %s)", prefix.rstrip("_") or "finite", ds.attrs[f"{prefix}compile_seconds"], ds.attrs[f"{prefix}run_seconds"], ds.attrs["backend"], ds.attrs["dtype"])
    log.info("\n%s", results.summary_table(ds).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    log.info("results: %s", path)
    return ds


def _task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        run_sweep(cfg, HydraConfig.get().runtime.output_dir)
    except (ConfigError, PrecisionError, DatasetUnavailableError) as err:
        print(f"gdchaos.sweep: error: {err}", file=sys.stderr)
        sys.exit(2)


def config_dir() -> str:
    """Absolute path of the shipped Hydra configs (``conf/``)."""
    return str(resources.files("gdchaos.conf"))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: rewrite η/ε sweeps, then hand over to Hydra."""
    import hydra

    try:
        args = vectorize_overrides(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        print(f"gdchaos.sweep: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=config_dir(), config_name="sweep", version_base="1.3")(_task)()


if __name__ == "__main__":
    main()
