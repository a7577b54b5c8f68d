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
``gdchaos.experiments.results.load``), ``summary.csv`` and ``figures/*.png``.

``analysis=NAME`` picks what is measured, from the analysis registry
(:mod:`gdchaos.experiments.registry`): ``finite`` (default) ε-ball divergence; ``tangent`` the
exact ε → 0 exponents from tangent maps (top ``lyapunov.k``; float32 suffices); ``both`` runs
both on the same initial conditions; ``sharpness`` curvature along training. ``plugins=[module]``
imports modules that register analyses (and optimizers) of your own.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import xarray as xr
from jax.experimental import multihost_utils
from omegaconf import DictConfig, OmegaConf

from gdchaos.cli.app import compose_config, hydra_app
from gdchaos.cli.distributed import (
    check_cluster,
    check_same_config,
    configure_devices,
    distributed_overrides,
    gather_eta_parts,
    join_processes,
    share_of_grid,
)
from gdchaos.cli.overrides import number_list
from gdchaos.cli.rundir import CHECKPOINT_DIR, prepare_run_dir_together
from gdchaos.core.config import integer
from gdchaos.core.errors import check
from gdchaos.core.files import atomic_write
from gdchaos.core.losses import LOSSES
from gdchaos.core.models import ACTIVATIONS
from gdchaos.core.precision import enable_float64, float64_enabled, needs_float64
from gdchaos.experiments import registry, results
from gdchaos.experiments.task import build_task

__all__ = ["main", "precheck", "run_sweep", "validate"]
log = logging.getLogger("gdchaos.sweep")


def validate(cfg: DictConfig) -> None:
    """Fail fast, before any computation, on configs that cannot run (one-line messages).

    The shared keys are checked here, the analysis's own settings by its ``validate``.
    """
    for group in ("data", "model", "optimizer", "perturbation"):
        check(isinstance(cfg.get(group), Mapping), f"{group} must name one config of its group (e.g. data=iris); got {cfg.get(group)!r}")
    registry.load_plugins(cfg.get("plugins"))
    analysis = registry.get(cfg.analysis)
    eta, eps = number_list(cfg.eta, "eta"), number_list(cfg.eps, "eps")
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=0.1 or 'eta=range(0.01,20)'")
    check(all(math.isfinite(e) and e > 0 for e in eta), f"learning rates must be finite and > 0; got eta={eta}")
    check(len(eps) > 0, "the eps grid is empty; give e.g. eps=1e-8")
    check(all(math.isfinite(e) and e > 0 for e in eps), f"eps must be finite and > 0; got eps={eps}")
    for key, minimum in (("n_perturb", 1), ("n_ic", 1), ("steps", 1), ("chunk", 1), ("seed", 0)):
        integer(cfg, key, minimum)
    check(cfg.loss in LOSSES, f"unknown loss {cfg.loss!r}; choose one of {sorted(LOSSES)}")
    check(cfg.ic_slice == "auto" or (isinstance(cfg.ic_slice, int) and cfg.ic_slice >= 1),
          f"ic_slice must be auto or an integer >= 1; got {cfg.ic_slice!r}")
    check(cfg.precision in ("auto", "float32", "float64"), f"precision must be auto, float32 or float64; got {cfg.precision!r}")
    check(
        cfg.model.get("activation", "sigmoid") in ACTIVATIONS,
        f"unknown model.activation {cfg.model.get('activation')!r}; choose one of {sorted(ACTIVATIONS)}",
    )
    if analysis.validate is not None:
        analysis.validate(cfg)
    check_cluster(cfg)


def configure_precision(cfg: DictConfig) -> None:
    """float64 when ``precision=float64``, or ``auto`` with an ε below float32 resolution (said in a warning)."""
    small_eps = registry.get(cfg.analysis).uses_eps and needs_float64(number_list(cfg.eps))
    if cfg.precision == "auto" and small_eps and not float64_enabled():
        log.warning("eps=%g is below float32 resolution: running in float64 (precision=float64 silences this)", min(number_list(cfg.eps)))
    if cfg.precision == "float64" or (cfg.precision == "auto" and small_eps):
        enable_float64()


def run_sweep(cfg: DictConfig, output_dir: str | Path) -> xr.Dataset:
    """Run the configured analysis over the η (and ε) grid; write results and figures into ``output_dir``.

    With ``checkpoint=true`` (default) each finished chunk of updates is saved under
    ``output_dir/checkpoint/``; running again on the same directory (or with
    ``resume=<dir>``) continues from there and gives bitwise the results of an
    uninterrupted run. A finished directory is not recomputed: its results are
    reloaded and the figures redrawn. A different config is refused, naming the keys.
    """
    validate(cfg)
    analysis = registry.get(cfg.analysis)
    output_dir = Path(cfg.resume or output_dir)
    # distributed=true: every process runs its share of the η grid and checkpoints it under
    # checkpoint/process_<i>_of_<n>/; process 0 alone writes results, figures and the stored config
    rank, n_processes = join_processes(cfg) if cfg.distributed else (0, 1)  # joined before Hydra unless a multirun job
    n_eta = len(number_list(cfg.eta))
    check(n_eta >= n_processes, f"distributed: {n_processes} processes but {n_eta} η values; each process "
          f"runs at least one η: use at most {n_eta} processes or a longer η grid")
    if n_processes > 1:
        check_same_config(cfg)
    finished, done = prepare_run_dir_together(cfg, output_dir, rank, n_processes)
    if done:
        if rank == 0:
            log.info("%s already holds finished results for this config; redrawing figures only", output_dir)
            registry.save_figures(finished, output_dir / "figures", etas=cfg.figures.etas)
        return finished
    ckpt = (output_dir / CHECKPOINT_DIR) if cfg.checkpoint else None
    own_ckpt = ckpt if ckpt is None or n_processes == 1 else ckpt / f"process_{rank}_of_{n_processes}"
    if own_ckpt is not None and any(own_ckpt.glob("*/state.npz")):
        log.info("resuming from %s", own_ckpt)
    configure_devices(cfg)
    configure_precision(cfg)
    task = build_task(
        OmegaConf.to_container(cfg.data, resolve=True),
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.optimizer, resolve=True),
        loss=cfg.loss,
    )
    stored_config = output_dir / CHECKPOINT_DIR / "config.yaml"
    # written once the task builds: a failed set-up leaves no claim on the directory
    if rank == 0 and ckpt is not None and not stored_config.exists():
        atomic_write(stored_config, lambda f: f.write(OmegaConf.to_yaml(cfg, resolve=True).encode()))
    eta = number_list(cfg.eta)
    if n_processes > 1:  # contiguous shares of the η grid; every η uses the same draws, so the shares are independent
        eta = share_of_grid(eta, rank, n_processes)
        log.info("process %d of %d: η %s", rank, n_processes, eta)
    grid = registry.Grid(
        eta=eta, eps=number_list(cfg.eps), n_ic=cfg.n_ic, steps=cfg.steps, seed=cfg.seed, chunk=cfg.chunk,
        progress=cfg.progress, attrs={"config": OmegaConf.to_yaml(cfg, resolve=True), registry.GROUP: analysis.name},
        checkpoint=own_ckpt and own_ckpt / analysis.name,
    )
    ds = analysis.run(task, grid, cfg)
    ds.attrs[registry.GROUP] = analysis.name
    if n_processes > 1:
        ds = gather_eta_parts(ds, n_processes)
        path = results.save(ds, output_dir) if rank == 0 else None
        multihost_utils.sync_global_devices("gdchaos.sweep: results saved")  # only then drop the checkpoints
        if own_ckpt is not None:
            shutil.rmtree(ckpt if rank == 0 else own_ckpt, ignore_errors=True)
        if rank != 0:
            return ds
    else:
        path = results.save(ds, output_dir)
        if ckpt is not None:
            shutil.rmtree(ckpt, ignore_errors=True)
    registry.save_figures(ds, os.path.join(output_dir, "figures"), etas=cfg.figures.etas)
    for key in sorted(k for k in ds.attrs if k.endswith("run_seconds")):
        prefix = key[: -len("run_seconds")]
        log.info("%s compile %.1fs, run %.1fs (%s, %s)", prefix.rstrip("_") or analysis.name,
                 ds.attrs.get(f"{prefix}compile_seconds", float("nan")), ds.attrs[key], ds.attrs["backend"], ds.attrs["dtype"])
    log.info("\n%s", results.summary_table(ds).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    log.info("results: %s", path)
    return ds


def _plugins_from_args(args: list[str]) -> list[str]:
    """The modules named by a ``plugins=[a,b]`` (or ``plugins=a``) override; imported before the config is composed."""
    values = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("plugins=")]
    if not values:
        return []
    return [m.strip().strip("'\"") for m in values[-1].strip("[]").split(",") if m.strip()]


def precheck(args: list[str]) -> DictConfig | None:
    """Compose the sweep config as Hydra will and :func:`validate` it, before Hydra creates run directories.

    Raises :class:`ConfigError` with a one-line message for unknown keys or config
    names, unparsable values and invalid settings. Skipped for multirun jobs and
    Hydra flags (each job validates itself). Returns the composed config, or None when skipped.
    """
    for arg in args:
        key = arg.lstrip("+~").partition("=")[0]
        check(key != "method", f"{arg!r}: the key method is now analysis (one key for what is measured): "
                               f"use analysis={arg.partition('=')[2]}")
    registry.load_plugins(_plugins_from_args(args))
    cfg = compose_config(args, "sweep")
    if cfg is not None:
        validate(cfg)
    return cfg


def _prepare(args: list[str]) -> list[str]:
    cfg = precheck(args)
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if resume and resume[-1] not in ("null", ""):
        check(Path(resume[-1]).is_dir(), f"resume={resume[-1]}: no such run directory")
        args = [*args, f"hydra.run.dir={resume[-1]}"]
    if cfg is not None and cfg.distributed:
        args = distributed_overrides(cfg, args)
    return args


def main(argv: list[str] | None = None) -> None:
    """Console entry point: rewrite η/ε sweeps, check the config, then hand over to Hydra.

    ``resume=<dir>`` runs in ``<dir>`` (continuing its checkpoints).
    """
    hydra_app("gdchaos.sweep", "sweep", run_sweep, argv, prepare=_prepare)


if __name__ == "__main__":
    main()
