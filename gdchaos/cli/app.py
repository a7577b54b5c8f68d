"""The Hydra command-line apps (``gdchaos.sweep``, ``toymap``, ``phase``, ``intermittency``, ``minima``, ``onset``) share one entry point.

``hydra_app(prog, config_name, run)`` rewrites η/ε sweeps into list overrides
(:func:`gdchaos.cli.overrides.vectorize_overrides`), optionally checks the config before
Hydra creates a run directory, hands over to Hydra and calls ``run(cfg, output_dir)``;
bad input ends with one line ``<prog>: error: ...`` and exit 2.
"""

from __future__ import annotations

import logging
import pathlib
import sys
from collections.abc import Callable
from importlib import resources
from typing import Any, NoReturn

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from gdchaos.cli.overrides import vectorize_overrides
from gdchaos.core.errors import ConfigError, DatasetUnavailableError, PrecisionError

__all__ = ["USER_ERRORS", "check_optional_groups", "compose_config", "config_dir", "fail", "hydra_app"]

USER_ERRORS = (ConfigError, PrecisionError, DatasetUnavailableError)


def config_dir() -> str:
    """Absolute path of the shipped Hydra configs (``conf/``)."""
    return str(resources.files("gdchaos.conf"))


def fail(prog: str, err: Exception) -> NoReturn:
    """Print ``<prog>: error: <err>`` on stderr and exit with code 2."""
    print(f"{prog}: error: {err}", file=sys.stderr)
    sys.exit(2)


def check_optional_groups(overrides: list[str]) -> None:
    """An unknown ``experiment=NAME`` is an error: the group is optional, so Hydra would silently compose without it."""
    directory = pathlib.Path(config_dir()) / "experiment"
    known = sorted(f.stem for f in directory.glob("*.yaml"))
    for arg in overrides:
        key, _, name = arg.lstrip("+~").partition("=")
        for one in name.split(",") if key == "experiment" else ():
            if one not in ("", "null") and one not in known:
                raise ConfigError(f"unknown experiment {one!r}; choose one of {known}")


def compose_config(args: list[str], config_name: str) -> DictConfig | None:
    """Compose the config as Hydra will from the command-line ``args``, or None for multirun jobs and Hydra flags.

    Raises :class:`ConfigError` with a one-line message for unknown keys or config names and
    unparsable values.
    """
    if any(a.startswith("-") for a in args):
        return None
    overrides = [a for a in args if not a.lstrip("+~").startswith("hydra.")]
    check_optional_groups(overrides)
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(" ".join(str(err).split("Config search path")[0].split())) from None
    except Exception as err:  # Hydra's composition raises plain TypeError/ValueError for malformed group values
        raise ConfigError(f"cannot compose the config from {' '.join(overrides)}: {' '.join(str(err).split())}") from None


def hydra_app(
    prog: str,
    config_name: str,
    run: Callable[[DictConfig, str], Any],
    argv: list[str] | None = None,
    prepare: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """Run ``run(cfg, output_dir)`` as the Hydra app ``prog`` on ``conf/<config_name>.yaml``.

    ``prepare(args) -> args`` may check or extend the rewritten overrides first (raise
    :class:`ConfigError` to stop).
    """
    try:
        args = vectorize_overrides(sys.argv[1:] if argv is None else argv)
        if prepare is not None:
            args = prepare(args)
    except ConfigError as err:
        fail(prog, err)

    def task(cfg: DictConfig) -> None:
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            run(cfg, HydraConfig.get().runtime.output_dir)
        except USER_ERRORS as err:
            fail(prog, err)

    if not any(a.startswith("hydra.job.name=") for a in args):
        args = [*args, f"hydra.job.name={config_name}"]  # the log file is <config_name>.log
    sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")(task)()
