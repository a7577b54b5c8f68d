"""Several processes (hosts) in one sweep: ``distributed=true`` and the ``cluster.*`` keys.

Every process runs its share of the η grid; they join with ``jax.distributed.initialize``
(CPU processes talk through gloo), and process 0 writes the run directory. Also the CPU
device set-up (one XLA host device per core).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import sys
import threading
import time
import zlib
from typing import Any

import jax
import numpy as np
import xarray as xr
from jax.experimental import multihost_utils
from omegaconf import OmegaConf

from gdchaos.cli.app import config_dir
from gdchaos.cli.rundir import RESUME_FREE_KEYS, flat_keys
from gdchaos.core.errors import ConfigError, check

__all__ = ["broadcast_text", "check_cluster", "check_same_config", "configure_devices", "distributed_overrides",
           "gather_eta_parts", "join_processes", "share_of_grid"]
log = logging.getLogger("gdchaos.sweep")


def configure_devices(cfg: Any) -> None:
    """On CPU, expose one XLA host device per core so the ensemble is split across cores."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = (os.cpu_count() or 1) if cfg.cpu_devices == "auto" else int(cfg.cpu_devices)
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def check_cluster(cfg: Any) -> None:
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


def wait_for_coordinator(address: str, deadline: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens before ``deadline`` (time.monotonic())."""

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


def join_processes(cfg: Any) -> tuple[int, int]:
    """Join the processes of a ``distributed=true`` run; return ``(process index, process count)``.

    Calls ``jax.distributed.initialize`` with ``cluster.coordinator``, ``cluster.num_processes``
    and ``cluster.process_id``; those left null come from the cluster environment (TPU pod
    metadata, SLURM, Open MPI) or ``JAX_COORDINATOR_ADDRESS``. CPU processes exchange data
    with gloo collectives. Within ``cluster.timeout`` seconds every process has joined, or
    this one stops with one line on stderr (exit 2): a process other than 0 that cannot
    reach the coordinator says so, any other says which processes were awaited. A no-op
    returning the current rank when JAX's distributed system is already up.
    """

    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    check_cluster(cfg)
    cluster = cfg.get("cluster") or {}
    coordinator = cluster.get("coordinator") or os.environ.get("JAX_COORDINATOR_ADDRESS")
    n, pid, timeout = cluster.get("num_processes"), cluster.get("process_id"), float(cluster.get("timeout", 300))
    configure_devices(cfg)  # before the backend starts
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk through gloo
    deadline = time.monotonic() + timeout
    where = f"the coordinator {coordinator}" if coordinator else "the coordinator from the cluster environment"
    if coordinator and pid is not None and pid > 0 and not wait_for_coordinator(coordinator, deadline):
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


def broadcast_text(text: str, size: int = 4096) -> str:
    """Process 0's ``text`` on every process."""

    data = text.encode()[: size - 1]  # callers send less
    buf = np.zeros(size, np.uint8)
    buf[: len(data)] = np.frombuffer(data, np.uint8)
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf))).rstrip(b"\0").decode()


def gather_eta_parts(ds: xr.Dataset, n_processes: int) -> xr.Dataset:
    """Concatenate every process's Dataset (its share of the η grid, in process order) on every process."""


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


def check_same_config(cfg: Any) -> None:
    """Every process was started with process 0's config (up to :data:`RESUME_FREE_KEYS`), else one line on each."""


    flat = flat_keys(OmegaConf.to_container(cfg, resolve=True))
    text = repr(sorted((k, repr(v)) for k, v in flat.items() if k.split(".")[0] not in RESUME_FREE_KEYS))
    hashes = np.asarray(multihost_utils.process_allgather(np.uint32(zlib.crc32(text.encode())))).ravel()
    others = [i for i, h in enumerate(hashes) if h != hashes[0]]
    check(not others, f"distributed: process(es) {others} run another config than process 0; "
          "start the same command (up to cluster.process_id) in every process")


def distributed_overrides(cfg: Any, args: list[str]) -> list[str]:
    """Join the processes before Hydra starts; all use process 0's run directory, and only process 0
    writes Hydra's files there (``.hydra/``, the log): the others log to stdout."""
    rank, n_processes = join_processes(cfg)
    if n_processes == 1:
        return args
    check_same_config(cfg)  # before Hydra makes a run directory
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
    run_dir = broadcast_text(run_dir)
    if run_dir:
        quoted = run_dir if all(c.isalnum() or c in "_./-+" for c in run_dir) else "'" + run_dir.replace("'", "\\'") + "'"
        args = [a for a in args if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={quoted}"]
    if rank != 0:
        args = [*args, "hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return args




def share_of_grid(values: list[float], rank: int, n_processes: int) -> list[float]:
    """Process ``rank``'s contiguous share of ``values`` (sizes differ by at most one, earlier ranks larger).

    Example:
        >>> [share_of_grid([1, 2, 3, 4, 5], r, 2) for r in range(2)]
        [[1, 2, 3], [4, 5]]
    """
    share = len(values) // n_processes + (rank < len(values) % n_processes)
    start = rank * (len(values) // n_processes) + min(rank, len(values) % n_processes)
    return values[start:start + share]
