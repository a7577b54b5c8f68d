"""``python -m gdchaos.intermittency [overrides]``: laminar phases and bursts in the loss and single weights.

Trains the configured task (``conf/intermittency.yaml``: data, model and optimizer groups as in
the sweep) over an η grid × initial conditions, records the loss and single weights per update
(:func:`gdchaos.analyses.intermittency.record_series`), detects laminar phases and bursts
(:func:`gdchaos.analyses.intermittency.analyze`) and writes into the run directory
``results.nc``, ``summary.csv`` (one row per η) and ``intermittency.png``::

    python -m gdchaos.intermittency                       # Iris, η ∈ {1, 5, 10}, 8 ICs, 2000 updates
    python -m gdchaos.intermittency 'eta=[5]' n_ic=32 steps=5000 detector.rtol=1e-4
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
from omegaconf import ListConfig, OmegaConf

from gdchaos.analyses.intermittency import DIFFERENCES, analyze, record_series, summary_table
from gdchaos.cli.app import compose_config, hydra_app
from gdchaos.cli.overrides import eta_grid
from gdchaos.core.config import integer, number
from gdchaos.core.errors import check
from gdchaos.core.losses import LOSSES
from gdchaos.core.models import ACTIVATIONS
from gdchaos.core.precision import enable_float64
from gdchaos.experiments import results
from gdchaos.experiments.task import build_task
from gdchaos.figures.intermittency import save_figures

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger("gdchaos.intermittency")
RESULTS_FILE = "results.nc"
SUMMARY_FILE = "summary.csv"


def _weights_setting(value: Any) -> str | int | list[int]:
    """The ``weights`` setting checked: ``all``, an integer k >= 1 or a list of flat indices."""
    if isinstance(value, ListConfig):
        value = list(value)
    ok = (value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
          or (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)))
    check(ok, f"weights must be all, an integer k >= 1 (the k that move most) or a list of flat indices; got {value!r}")
    return value


def validate(cfg: Any) -> list[float]:
    """Check the config before any computation (one-line messages that state the fix); return the η grid."""


    for group in ("data", "model", "optimizer"):
        check(isinstance(cfg.get(group), Mapping), f"{group} must name one config of its group (e.g. data=iris); got {cfg.get(group)!r}")
    eta = eta_grid(cfg.eta)
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=5 or 'eta=[1,5,10]'")
    check(all(math.isfinite(e) and e > 0 for e in eta), f"learning rates must be finite and > 0; got eta={eta}")
    check(cfg.loss in LOSSES, f"unknown loss {cfg.loss!r}; choose one of {sorted(LOSSES)}")
    check(cfg.model.get("activation", "sigmoid") in ACTIVATIONS,
          f"unknown model.activation {cfg.model.get('activation')!r}; choose one of {sorted(ACTIVATIONS)}")
    n_ic = integer(cfg, "n_ic", 1)
    steps = integer(cfg, "steps", 2)
    transient = integer(cfg, "transient", 0)
    for key, minimum in (("seed", 0), ("chunk", 1), ("onset_window", 0), ("figures.n_weights", 0)):
        integer(cfg, key, minimum)
    p_max = integer(cfg, "detector.p_max", 1)
    integer(cfg, "detector.min_length", 1)
    check(integer(cfg, "detector.order", 1) <= 2,
          f"detector.order must be 1 (|x_t - x_(t-p)|) or 2 (|x_t - 2x_(t-p) + x_(t-2p)|); got {cfg.detector.order!r}")
    number(cfg, "detector.rtol", 0.0)
    number(cfg, "detector.atol", 0.0)
    check(steps - transient > p_max, f"steps - transient = {steps - transient} analyzed updates must exceed "
          f"detector.p_max = {p_max}; lower transient or raise steps")
    _weights_setting(cfg.weights)
    check(cfg.precision in ("float32", "float64"), f"precision must be float32 or float64; got {cfg.precision!r}")
    for key in ("progress", "save_weights"):
        check(isinstance(cfg[key], bool), f"{key} must be true or false; got {cfg[key]!r}")
    ic = cfg.figures.ic
    check(ic == "auto" or (isinstance(ic, int) and not isinstance(ic, bool) and 0 <= ic < n_ic),
          f"figures.ic must be auto or an initial condition in 0..{n_ic - 1}; got {ic!r}")
    return eta


def precheck(args: list[str]) -> Any:
    """Compose the config as Hydra will and :func:`validate` it, before Hydra creates a run directory.

    Unknown keys, unknown config names and bad values become one-line :class:`ConfigError`\\ s
    (:func:`gdchaos.cli.app.compose_config`). Skipped for Hydra flags (``--multirun``, ``--cfg``,
    ...): each job validates itself.
    """
    cfg = compose_config(args, "intermittency")
    if cfg is not None:
        validate(cfg)
    return cfg


def _prepare(args: list[str]) -> list[str]:
    precheck(args)
    return args


def run_intermittency(cfg: Any, output_dir: str | Path) -> xr.Dataset:
    """Record, detect, summarize; write ``results.nc``, ``summary.csv`` and ``intermittency.png`` into ``output_dir``."""



    eta = validate(cfg)
    if cfg.precision == "float64":
        enable_float64()
    task = build_task(
        OmegaConf.to_container(cfg.data, resolve=True),
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.optimizer, resolve=True),
        loss=cfg.loss,
    )
    weights = _weights_setting(cfg.weights)
    det = cfg.detector
    log.info("%s: %d η × %d ICs × %d updates; weights: %s; laminar: |%s| ≤ %g + %g·rms(x), p ≤ %d, ≥ %d steps",
             task.name, len(eta), cfg.n_ic, cfg.steps, weights, DIFFERENCES.get(det.order), det.atol, det.rtol, det.p_max,
             det.min_length)
    start = time.perf_counter()
    series = record_series(task, eta=eta, n_ic=cfg.n_ic, steps=cfg.steps, key=jax.random.key(cfg.seed),
                           weights=weights, chunk=cfg.chunk, progress=cfg.progress)
    t_detect = time.perf_counter()
    ds = analyze(series, p_max=det.p_max, rtol=float(det.rtol), atol=float(det.atol), min_length=det.min_length, order=det.order,
                 window=cfg.onset_window, transient=cfg.transient, keep_weights=cfg.save_weights,
                 attrs={"task": task.name, "seed": cfg.seed, "config": OmegaConf.to_yaml(cfg, resolve=True)})
    ds = results.dataset(ds.data_vars, ds.coords, {**ds.attrs, "detect_seconds": time.perf_counter() - t_detect})
    table = summary_table(ds)
    path = results.write(ds, output_dir, file=RESULTS_FILE, summary=table, summary_file=SUMMARY_FILE)
    figures = save_figures(ds, output_dir, ic=cfg.figures.ic, n_weights=cfg.figures.n_weights)
    n_bad = int(ds.summary_n_nonfinite.sum())
    if n_bad:
        log.info("%d of %d loss series diverged (non-finite): flagged, not classified, left out of the summaries",
                 n_bad, ds.loss_finite.size)
    log.info("compile %.1fs, run %.1fs, detection %.1fs, total %.1fs (%s, %s)", series.compile_seconds,
             series.run_seconds, ds.attrs["detect_seconds"], time.perf_counter() - start, ds.attrs["backend"], ds.attrs["dtype"])
    log.info("\n%s", table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {path}")
    print(f"summary: {Path(output_dir) / SUMMARY_FILE}")
    for fig in figures:
        print(f"figure: {fig}")
    return ds


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: η sweeps become lists (one process), the config is checked, then Hydra runs."""
    hydra_app("gdchaos.intermittency", "intermittency", run_intermittency, None if argv is None else list(argv),
              prepare=_prepare)


if __name__ == "__main__":
    main()
