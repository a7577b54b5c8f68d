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

``method=finite`` (default) measures ε-ball divergence; ``method=tangent`` the exact
ε → 0 exponents from tangent maps (top ``lyapunov.k``; float32 suffices);
``method=both`` runs both on the same initial conditions and draws them together.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

from gdchaos.cli.app import config_dir, hydra_app
from gdchaos.core.errors import ConfigError, check

VECTORIZED_KEYS = ("eta", "eps")
METHODS = ("finite", "tangent", "both", "sharpness")
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
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    out, needs_multirun = [], False
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        try:
            override = parser.parse_overrides([arg])[0]
        except HydraException as err:
            raise ConfigError(f"cannot parse {arg!r}: {' '.join(str(err).split('See https')[0].split())}") from None
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


def _integer(cfg, key: str, minimum: int) -> int:
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{key} must be an integer >= {minimum}; got {value!r}",
    )
    return value


def validate(cfg) -> None:
    """Fail fast, before any computation, on configs that cannot run (one-line messages)."""
    from gdchaos.analyses.lyapunov.finite import check_estimator, check_window_grid
    from gdchaos.core.models import ACTIVATIONS

    for group in ("data", "model", "optimizer", "perturbation", "lyapunov"):
        check(isinstance(cfg.get(group), Mapping), f"{group} must name one config of its group (e.g. data=iris); got {cfg.get(group)!r}")
    eta, eps = _as_list(cfg.eta, "eta"), _as_list(cfg.eps, "eps")
    check(len(eta) > 0, "the eta grid is empty; give e.g. eta=0.1 or 'eta=range(0.01,20)'")
    check(all(math.isfinite(e) and e > 0 for e in eta), f"learning rates must be finite and > 0; got eta={eta}")
    check(len(eps) > 0, "the eps grid is empty; give e.g. eps=1e-8")
    check(all(math.isfinite(e) and e > 0 for e in eps), f"eps must be finite and > 0; got eps={eps}")
    for key, minimum in (("n_perturb", 1), ("n_ic", 1), ("steps", 1), ("chunk", 1), ("seed", 0),
                         ("lyapunov.k", 1), ("lyapunov.transient", 0), ("lyapunov.renorm_every", 1)):
        _integer(cfg, key, minimum)
    from gdchaos.core.losses import LOSSES

    check(cfg.loss in LOSSES, f"unknown loss {cfg.loss!r}; choose one of {sorted(LOSSES)}")
    check(cfg.ic_slice == "auto" or (isinstance(cfg.ic_slice, int) and cfg.ic_slice >= 1),
          f"ic_slice must be auto or an integer >= 1; got {cfg.ic_slice!r}")
    check(cfg.method in METHODS, f"unknown method {cfg.method!r}; choose one of {list(METHODS)}")
    if cfg.method == "sharpness":
        check(isinstance(cfg.get("sharpness"), Mapping), "method=sharpness needs its settings: use analysis=sharpness")
        every = _integer(cfg, "sharpness.every", 1)
        _integer(cfg, "sharpness.k", 1)
        check(every <= cfg.steps, f"sharpness.every={every} must be <= steps={cfg.steps}")
        check(cfg.sharpness.method in ("auto", "full", "lanczos"), f"sharpness.method must be auto, full or lanczos; got {cfg.sharpness.method!r}")
        if cfg.sharpness.num_iters is not None:
            _integer(cfg, "sharpness.num_iters", cfg.sharpness.k)
        flat = cfg.sharpness.get("flat_rtol")
        check(flat is None or (isinstance(flat, (int, float)) and not isinstance(flat, bool) and math.isfinite(flat) and flat >= 0),
              f"sharpness.flat_rtol must be null (N·eps of the dtype) or a finite number >= 0; got {flat!r}")
    check(cfg.lyapunov.transient < cfg.steps, f"lyapunov.transient must be in [0, steps={cfg.steps}); got {cfg.lyapunov.transient}")
    check(cfg.precision in ("auto", "float32", "float64"), f"precision must be auto, float32 or float64; got {cfg.precision!r}")
    check(
        cfg.model.get("activation", "sigmoid") in ACTIVATIONS,
        f"unknown model.activation {cfg.model.get('activation')!r}; choose one of {sorted(ACTIVATIONS)}",
    )
    if cfg.method in ("finite", "both"):
        for key in ("start_min", "start_max", "start_step", "length_min", "length_max", "length_step"):
            _integer(cfg, f"lyapunov.{key}", 1 if key.endswith("step") or key.startswith("length") else 0)
        for key in ("min_r2", "min_exponent"):
            value = cfg.lyapunov[key]
            check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                  f"lyapunov.{key} must be a finite number; got {value!r}")
        starts, lengths = _window_grid(cfg)
        check(bool(starts), f"lyapunov.start_max={cfg.lyapunov.start_max} < lyapunov.start_min={cfg.lyapunov.start_min}: no window starts")
        check(bool(lengths), f"lyapunov.length_max={cfg.lyapunov.length_max} < lyapunov.length_min={cfg.lyapunov.length_min}: no window lengths")
        check(cfg.lyapunov.length_min >= 2, f"lyapunov.length_min must be >= 2 (a line needs two points); got {cfg.lyapunov.length_min}")
        check_window_grid(cfg.steps, starts, lengths)
        check_estimator(cfg.lyapunov.get("estimator"))
    _check_cluster(cfg)


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
    from gdchaos.core.precision import enable_float64, float64_enabled, needs_float64

    finite = cfg.method in ("finite", "both")
    if cfg.precision == "auto" and finite and needs_float64(_as_list(cfg.eps)) and not float64_enabled():
        log.warning("eps=%g is below float32 resolution: running in float64 (precision=float64 silences this)", min(_as_list(cfg.eps)))
    if cfg.precision == "float64" or (cfg.precision == "auto" and finite and needs_float64(_as_list(cfg.eps))):
        enable_float64()


def _check_cluster(cfg) -> None:
    """One-line errors for the ``cluster.*`` keys (used with ``distributed=true``)."""
    cluster = cfg.get("cluster") or {}
    coordinator = cluster.get("coordinator")
    check(coordinator is None or (isinstance(coordinator, str) and coordinator.rpartition(":")[2].isdigit()),
          f"cluster.coordinator must be host:port (e.g. 10.0.0.1:1234) or null; got {coordinator!r}")
    n, pid = cluster.get("num_processes"), cluster.get("process_id")
    check(n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1),
          f"cluster.num_processes must be an integer >= 1 or null; got {n!r}")
    check(pid is None or (isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0 and (n is None or pid < n)),
          f"cluster.process_id must be an integer in [0, cluster.num_processes) or null; got {pid!r}")
    timeout = cluster.get("timeout", 300)
    check(isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout < math.inf,
          f"cluster.timeout must be a number of seconds > 0; got {timeout!r}")


def _wait_for_coordinator(address: str, deadline: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens before ``deadline`` (time.monotonic())."""
    import socket
    import time

    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.1, min(1.0, deadline - time.monotonic()))):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _join_processes(cfg) -> tuple[int, int]:
    """Join the processes of a ``distributed=true`` run; return ``(process index, process count)``.

    Calls ``jax.distributed.initialize`` with ``cluster.coordinator``, ``cluster.num_processes``
    and ``cluster.process_id``; those left null come from the cluster environment (TPU pod
    metadata, SLURM, Open MPI) or ``JAX_COORDINATOR_ADDRESS``. CPU processes exchange data
    with gloo collectives. Within ``cluster.timeout`` seconds every process has joined, or
    this one stops with one line on stderr (exit 2): a process other than 0 that cannot
    reach the coordinator says so, any other says which processes were awaited. A no-op
    returning the current rank when JAX's distributed system is already up.
    """
    import sys
    import threading
    import time

    import jax

    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    _check_cluster(cfg)
    cluster = cfg.get("cluster") or {}
    coordinator = cluster.get("coordinator") or os.environ.get("JAX_COORDINATOR_ADDRESS")
    n, pid, timeout = cluster.get("num_processes"), cluster.get("process_id"), float(cluster.get("timeout", 300))
    _configure_devices(cfg)  # before the backend starts
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk through gloo
    deadline = time.monotonic() + timeout
    where = f"the coordinator {coordinator}" if coordinator else "the coordinator from the cluster environment"
    if coordinator and pid is not None and pid > 0 and not _wait_for_coordinator(coordinator, deadline):
        raise ConfigError(
            f"distributed: process {pid} cannot reach {where} within {timeout:g} s (cluster.timeout); "
            "start process 0 (cluster.process_id=0) first, or check cluster.coordinator and the firewall"
        )

    def give_up() -> None:  # jax.distributed aborts with a C++ stack trace after its own timeout; stop first, in one line
        who = "this process" if pid is None else f"process {pid}"
        every = "all processes" if n is None else f"all {n} processes"
        print(f"gdchaos.sweep: error: distributed: {who} waited {timeout:g} s (cluster.timeout) at {where} for "
              f"{every} to join; start the same command on every process "
              "(cluster.process_id=0..num_processes-1) or raise cluster.timeout", file=sys.stderr, flush=True)
        os._exit(2)

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=n, process_id=pid,
                                   initialization_timeout=int(math.ceil(timeout)) + 60)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(
            f"distributed=true: {' '.join(str(err).split()).rstrip('.')}; outside a TPU pod, SLURM or Open MPI job give "
            "cluster.coordinator=HOST:PORT, cluster.num_processes and cluster.process_id"
        ) from None
    finally:
        watchdog.cancel()
    log.info("jax.distributed: process %d of %d, %d devices (%d local)",
             jax.process_index(), jax.process_count(), jax.device_count(), jax.local_device_count())
    return jax.process_index(), jax.process_count()


def _broadcast_text(text: str, size: int = 4096) -> str:
    """Process 0's ``text`` on every process."""
    import numpy as np
    from jax.experimental import multihost_utils

    data = text.encode()[: size - 1]  # callers send less
    buf = np.zeros(size, np.uint8)
    buf[: len(data)] = np.frombuffer(data, np.uint8)
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf))).rstrip(b"\0").decode()


def _gather_eta_parts(ds, n_processes: int):
    """Concatenate every process's Dataset (its share of the η grid, in process order) on every process."""
    import pickle

    import numpy as np
    import xarray as xr
    from jax.experimental import multihost_utils

    blob = np.frombuffer(pickle.dumps(ds, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    sizes = multihost_utils.process_allgather(np.frombuffer(np.int64(blob.size).tobytes(), np.uint8))
    sizes = [int(np.frombuffer(row.tobytes(), np.int64)[0]) for row in np.asarray(sizes)]
    buf = np.zeros(max(sizes), np.uint8)
    buf[: blob.size] = blob
    everything = np.asarray(multihost_utils.process_allgather(buf))
    parts = [pickle.loads(everything[p, : sizes[p]].tobytes()) for p in range(n_processes)]
    merged = xr.concat(parts, dim="eta", data_vars="minimal", coords="minimal", compat="override",
                       combine_attrs="override")
    for key in merged.attrs:
        if key.endswith("_seconds"):  # the slowest process
            merged.attrs[key] = max(float(p.attrs.get(key, 0.0)) for p in parts)
    merged.attrs["process_count"] = n_processes
    return merged


def _check_same_config(cfg) -> None:
    """Every process was started with process 0's config (up to :data:`RESUME_FREE_KEYS`), else one line on each."""
    import zlib

    import numpy as np
    from jax.experimental import multihost_utils
    from omegaconf import OmegaConf

    flat = _flat(OmegaConf.to_container(cfg, resolve=True))
    text = repr(sorted((k, repr(v)) for k, v in flat.items() if k.split(".")[0] not in RESUME_FREE_KEYS))
    hashes = np.asarray(multihost_utils.process_allgather(np.uint32(zlib.crc32(text.encode())))).ravel()
    others = [i for i, h in enumerate(hashes) if h != hashes[0]]
    check(not others, f"distributed: process(es) {others} run another config than process 0; "
          "start the same command (up to cluster.process_id) in every process")


def _prepare_run_dir_together(cfg, output_dir: Path, rank: int, n_processes: int):
    """:func:`_prepare_run_dir` on process 0, its verdict on all: ``(finished Dataset or None, finished?)``.

    A refused directory stops every process (exit 2), not only process 0, so none waits for the others.
    """
    if n_processes == 1:
        finished = _prepare_run_dir(cfg, output_dir)
        return finished, finished is not None
    import numpy as np
    from jax.experimental import multihost_utils

    finished, error, verdict = None, None, 0
    if rank == 0:
        try:
            finished = _prepare_run_dir(cfg, output_dir)
            verdict = 0 if finished is None else 1
        except Exception as err:  # tell the others before stopping, or they wait for process 0 forever
            error, verdict = err, 2
    verdict = int(np.asarray(multihost_utils.broadcast_one_to_all(np.int32(verdict))))
    if verdict == 2:
        raise error if rank == 0 else ConfigError(f"process 0 refused the run directory {output_dir} (see its error)")
    return finished, verdict == 1


def _distributed_overrides(cfg, args: list[str]) -> list[str]:
    """Join the processes before Hydra starts; all use process 0's run directory, and only process 0
    writes Hydra's files there (``.hydra/``, the log): the others log to stdout."""
    rank, n_processes = _join_processes(cfg)
    if n_processes == 1:
        return args
    _check_same_config(cfg)  # before Hydra makes a run directory
    run_dir = ""
    if rank == 0:
        from hydra import compose, initialize_config_dir

        try:
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                run_dir = str(compose("sweep", overrides=[a for a in args if not a.startswith("-")],
                                      return_hydra_config=True).hydra.run.dir)
        except Exception:  # an interpolation only Hydra's run resolves: each process resolves its own
            run_dir = ""
        if len(run_dir.encode()) >= 4096:
            run_dir = ""
    run_dir = _broadcast_text(run_dir)
    if run_dir:
        quoted = run_dir if all(c.isalnum() or c in "_./-+" for c in run_dir) else "'" + run_dir.replace("'", "\\'") + "'"
        args = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={quoted}"]
    if rank != 0:
        args = [*args, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return args


RESUME_FREE_KEYS = ("progress", "resume", "checkpoint", "cpu_devices", "figures", "distributed", "cluster")
"""Config keys that may change between an interrupted run and its resumption."""


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(stored: dict, current: dict) -> list[str]:
    """Keys (dotted) whose values differ between two run configs, ignoring :data:`RESUME_FREE_KEYS`.

    Example:
        >>> config_differences({"eta": [1.0], "steps": 10, "progress": True}, {"eta": [1.0], "steps": 20, "progress": False})
        ['steps']
    """
    a, b = _flat(stored), _flat(current)
    free = lambda key: key.split(".")[0] in RESUME_FREE_KEYS
    return sorted(k for k in set(a) | set(b) if not free(k) and a.get(k, "<unset>") != b.get(k, "<unset>"))


def _prepare_run_dir(cfg, output_dir: Path):
    """Check a run directory before a (re)run: refuse a different config; return a finished Dataset or None.

    The config of the run is kept in ``checkpoint/config.yaml`` while it runs, and in
    ``results.nc`` once finished.
    """
    import yaml
    from omegaconf import OmegaConf

    from gdchaos.experiments import results

    current = OmegaConf.to_container(cfg, resolve=True)
    stored_path = output_dir / CHECKPOINT_DIR / "config.yaml"
    finished = None
    if (output_dir / results.RESULTS_FILE).exists() and not stored_path.exists():
        finished = results.load(output_dir)
        stored = yaml.safe_load(finished.attrs.get("config", "{}"))
    elif stored_path.exists():
        stored = yaml.safe_load(stored_path.read_text())
    else:
        return None
    diff = config_differences(stored, current)
    if diff:
        detail = ", ".join(f"{k} (was {_flat(stored).get(k, '<unset>')!r}, now {_flat(current).get(k, '<unset>')!r})" for k in diff[:5])
        raise ConfigError(
            f"{output_dir} holds a run with a different config: {detail}; "
            "rerun with the stored values to resume, or choose a new run directory"
        )
    return finished


CHECKPOINT_DIR = "checkpoint"


def run_sweep(cfg, output_dir) -> "object":
    """Run the configured sweep and write results and figures into ``output_dir``.

    With ``checkpoint=true`` (default) each finished chunk of updates is saved under
    ``output_dir/checkpoint/``; running again on the same directory (or with
    ``resume=<dir>``) continues from there and gives bitwise the results of an
    uninterrupted run. A finished directory is not recomputed: its results are
    reloaded and the figures redrawn. A different config is refused, naming the keys.
    """
    import shutil

    from omegaconf import OmegaConf

    from gdchaos.figures import sweep as plots

    from gdchaos.experiments import results
    import xarray as xr

    from gdchaos.experiments.sweeps import add_window_matched_tangent, finite_sweep, sharpness_sweep, tangent_sweep
    from gdchaos.experiments.task import build_task

    validate(cfg)
    output_dir = Path(cfg.resume or output_dir)
    # distributed=true: every process runs its share of the η grid and checkpoints it under
    # checkpoint/process_<i>_of_<n>/; process 0 alone writes results, figures and the stored config
    rank, n_processes = _join_processes(cfg) if cfg.distributed else (0, 1)  # joined before Hydra unless a multirun job
    n_eta = len(_as_list(cfg.eta))
    check(n_eta >= n_processes, f"distributed: {n_processes} processes but {n_eta} η values; each process "
          f"runs at least one η: use at most {n_eta} processes or a longer η grid")
    if n_processes > 1:
        _check_same_config(cfg)
    finished, done = _prepare_run_dir_together(cfg, output_dir, rank, n_processes)
    if done:
        if rank == 0:
            log.info("%s already holds finished results for this config; redrawing figures only", output_dir)
            plots.save_all(finished, output_dir / "figures", etas=cfg.figures.etas)
        return finished
    ckpt = (output_dir / CHECKPOINT_DIR) if cfg.checkpoint else None
    own_ckpt = ckpt if ckpt is None or n_processes == 1 else ckpt / f"process_{rank}_of_{n_processes}"
    if own_ckpt is not None and any(own_ckpt.glob("*/state.npz")):
        log.info("resuming from %s", own_ckpt)
    _configure_devices(cfg)
    _configure_precision(cfg)
    task = build_task(
        OmegaConf.to_container(cfg.data, resolve=True),
        OmegaConf.to_container(cfg.model, resolve=True),
        OmegaConf.to_container(cfg.optimizer, resolve=True),
        loss=cfg.loss,
    )
    stored_config = output_dir / CHECKPOINT_DIR / "config.yaml"
    if rank == 0 and ckpt is not None and not stored_config.exists():  # once the task builds: a failed set-up leaves no claim on the directory
        from gdchaos.engine.checkpoint import atomic_write

        atomic_write(stored_config, lambda f: f.write(OmegaConf.to_yaml(cfg, resolve=True).encode()))
    eta, eps = _as_list(cfg.eta), _as_list(cfg.eps)
    if n_processes > 1:  # contiguous shares of the η grid; every η uses the same draws, so the shares are independent
        share = len(eta) // n_processes + (rank < len(eta) % n_processes)
        start = rank * (len(eta) // n_processes) + min(rank, len(eta) % n_processes)
        eta = eta[start:start + share]
        log.info("process %d of %d: η %s", rank, n_processes, eta)
    attrs = {"config": OmegaConf.to_yaml(cfg, resolve=True), "method": cfg.method}
    shared = dict(eta=eta, n_ic=cfg.n_ic, steps=cfg.steps, seed=cfg.seed, progress=cfg.progress, attrs=attrs)
    parts = []
    if cfg.method in ("finite", "both"):
        starts, lengths = _window_grid(cfg)
        log.info("%s finite-ε: %d η × %d ε × %d ICs × %d members × %d updates", task.name, len(eta), len(eps), cfg.n_ic, cfg.n_perturb + 1, cfg.steps)
        parts.append(finite_sweep(
            task,
            **shared,
            eps=eps,
            n_perturb=cfg.n_perturb,
            starts=starts,
            lengths=lengths,
            min_r2=cfg.lyapunov.min_r2,
            min_exponent=cfg.lyapunov.min_exponent,
            estimator=cfg.lyapunov.estimator,
            accuracy_target=cfg.accuracy_target,
            include_bias=cfg.perturbation.include_bias,
            distance=cfg.perturbation.distance,
            chunk=cfg.chunk,
            checkpoint=own_ckpt and own_ckpt / "finite",
            ic_slice=cfg.ic_slice,
        ))
    if cfg.method in ("tangent", "both"):
        log.info("%s tangent: %d η × %d ICs × k=%d × %d updates", task.name, len(eta), cfg.n_ic, cfg.lyapunov.k, cfg.steps)
        parts.append(tangent_sweep(
            task,
            **shared,
            k=cfg.lyapunov.k,
            transient=cfg.lyapunov.transient,
            renorm_every=cfg.lyapunov.renorm_every,
            chunk=cfg.chunk,
            checkpoint=own_ckpt and own_ckpt / "tangent",
        ))
    if cfg.method == "sharpness":
        sh = cfg.sharpness
        log.info("%s curvature: %d η × %d ICs × %d updates, every %d", task.name, len(eta), cfg.n_ic, cfg.steps, sh.every)
        parts.append(sharpness_sweep(
            task,
            **shared,
            every=sh.every,
            k=sh.k,
            method=sh.method,
            num_iters=sh.num_iters,
            flat_rtol=sh.get("flat_rtol"),
            chunk=max(1, cfg.chunk // sh.every),
            checkpoint=own_ckpt and own_ckpt / "sharpness",
        ))
    ds = add_window_matched_tangent(xr.merge(parts, combine_attrs="drop_conflicts")) if len(parts) > 1 else parts[0]
    if n_processes > 1:
        from jax.experimental import multihost_utils

        ds = _gather_eta_parts(ds, n_processes)
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
    plots.save_all(ds, os.path.join(output_dir, "figures"), etas=cfg.figures.etas)
    for prefix in ("", "tangent_", "sharpness_"):
        if f"{prefix}run_seconds" in ds.attrs:
            log.info("%s compile %.1fs, run %.1fs (%s, %s)", prefix.rstrip("_") or "finite", ds.attrs[f"{prefix}compile_seconds"], ds.attrs[f"{prefix}run_seconds"], ds.attrs["backend"], ds.attrs["dtype"])
    log.info("\n%s", results.summary_table(ds).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    log.info("results: %s", path)
    return ds


def _check_optional_groups(overrides: list[str]) -> None:
    """An unknown ``experiment=NAME`` is an error: the group is optional, so Hydra would silently compose without it."""
    import pathlib

    directory = pathlib.Path(config_dir()) / "experiment"
    known = sorted(f.stem for f in directory.glob("*.yaml"))
    for arg in overrides:
        key, _, name = arg.lstrip("+~").partition("=")
        for one in name.split(",") if key == "experiment" else ():
            if one not in ("", "null") and one not in known:
                raise ConfigError(f"unknown experiment {one!r}; choose one of {known}")


def precheck(args: list[str], config_name: str = "sweep"):
    """Compose the config as Hydra will and :func:`validate` it, before Hydra creates run directories.

    Raises :class:`ConfigError` with a one-line message for unknown keys or config
    names, unparsable values and invalid settings. Skipped for multirun jobs and
    Hydra flags (each job validates itself). Returns the composed config, or None when skipped.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(a.startswith("-") for a in args):
        return None
    overrides = [a for a in args if not a.lstrip("+~").startswith("hydra.")]
    _check_optional_groups(overrides)
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(" ".join(str(err).split("Config search path")[0].split())) from None
    except Exception as err:  # Hydra's composition raises plain TypeError/ValueError for malformed group values
        raise ConfigError(f"cannot compose the config from {' '.join(overrides)}: {' '.join(str(err).split())}") from None
    validate(cfg)
    return cfg


def _prepare(args: list[str]) -> list[str]:
    cfg = precheck(args)
    resume = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if resume and resume[-1] not in ("null", ""):
        check(Path(resume[-1]).is_dir(), f"resume={resume[-1]}: no such run directory")
        args = [*args, f"hydra.run.dir={resume[-1]}"]
    if cfg is not None and cfg.distributed:
        args = _distributed_overrides(cfg, args)
    return args


def main(argv: list[str] | None = None) -> None:
    """Console entry point: rewrite η/ε sweeps, check the config, then hand over to Hydra.

    ``resume=<dir>`` runs in ``<dir>`` (continuing its checkpoints).
    """
    hydra_app("gdchaos.sweep", "sweep", run_sweep, argv, prepare=_prepare)


if __name__ == "__main__":
    main()
