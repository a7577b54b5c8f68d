"""Run directories: refuse a different config, resume from checkpoints, reload a finished run.

The config of a run is kept in ``checkpoint/config.yaml`` while it runs and in
``results.nc`` once finished; :data:`RESUME_FREE_KEYS` may change between the two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml
from jax.experimental import multihost_utils
from omegaconf import OmegaConf

from gdchaos.core.errors import ConfigError
from gdchaos.experiments import results

__all__ = ["CHECKPOINT_DIR", "RESUME_FREE_KEYS", "config_differences", "flat_keys", "prepare_run_dir",
           "prepare_run_dir_together"]

CHECKPOINT_DIR = "checkpoint"
"""The subdirectory of a run directory holding chunk checkpoints and the stored config."""

RESUME_FREE_KEYS = ("progress", "resume", "checkpoint", "cpu_devices", "figures", "distributed", "cluster")
"""Config keys that may change between an interrupted run and its resumption."""


def flat_keys(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flat_keys(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(stored: dict, current: dict) -> list[str]:
    """Keys (dotted) whose values differ between two run configs, ignoring :data:`RESUME_FREE_KEYS`.

    Example:
        >>> config_differences({"eta": [1.0], "steps": 10, "progress": True}, {"eta": [1.0], "steps": 20, "progress": False})
        ['steps']
    """
    a, b = flat_keys(stored), flat_keys(current)
    free = lambda key: key.split(".")[0] in RESUME_FREE_KEYS
    return sorted(k for k in set(a) | set(b) if not free(k) and a.get(k, "<unset>") != b.get(k, "<unset>"))


def prepare_run_dir(cfg: Any, output_dir: Path) -> xr.Dataset | None:
    """Check a run directory before a (re)run: refuse a different config; return a finished Dataset or None.

    The config of the run is kept in ``checkpoint/config.yaml`` while it runs, and in
    ``results.nc`` once finished.
    """

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
        was, now = flat_keys(stored), flat_keys(current)
        detail = ", ".join(f"{k} (was {was.get(k, '<unset>')!r}, now {now.get(k, '<unset>')!r})" for k in diff[:5])
        raise ConfigError(
            f"{output_dir} holds a run with a different config: {detail}; "
            "rerun with the stored values to resume, or choose a new run directory"
        )
    return finished




def prepare_run_dir_together(cfg: Any, output_dir: Path, rank: int, n_processes: int) -> tuple[xr.Dataset | None, bool]:
    """:func:`prepare_run_dir` on process 0, its verdict on all: ``(finished Dataset or None, finished?)``.

    A refused directory stops every process (exit 2), not only process 0, so none waits for the others.
    """
    if n_processes == 1:
        finished = prepare_run_dir(cfg, output_dir)
        return finished, finished is not None

    finished, error, verdict = None, None, 0
    if rank == 0:
        try:
            finished = prepare_run_dir(cfg, output_dir)
            verdict = 0 if finished is None else 1
        except Exception as err:  # tell the others before stopping, or they wait for process 0 forever
            error, verdict = err, 2
    verdict = int(np.asarray(multihost_utils.broadcast_one_to_all(np.int32(verdict))))
    if verdict == 2:
        raise error if rank == 0 else ConfigError(f"process 0 refused the run directory {output_dir} (see its error)")
    return finished, verdict == 1


