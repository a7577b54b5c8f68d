"""The Hydra command-line apps (``gdchaos.sweep``, ``gdchaos.toymap``, ``gdchaos.phase``) share one entry point.

``hydra_app(prog, config_name, run)`` rewrites η/ε sweeps into list overrides
(:func:`gdchaos.sweep.vectorize_overrides`), optionally checks the config before
Hydra creates a run directory, hands over to Hydra and calls
``run(cfg, output_dir)``; bad input ends with one line ``<prog>: error: ...`` and exit 2.
"""

from __future__ import annotations

import logging
import sys
from importlib import resources
from typing import Callable

from gdchaos.core.errors import ConfigError, DatasetUnavailableError, PrecisionError

USER_ERRORS = (ConfigError, PrecisionError, DatasetUnavailableError)


def config_dir() -> str:
    """Absolute path of the shipped Hydra configs (``conf/``)."""
    return str(resources.files("gdchaos.conf"))


def fail(prog: str, err: Exception) -> None:
    print(f"{prog}: error: {err}", file=sys.stderr)
    sys.exit(2)


def hydra_app(
    prog: str,
    config_name: str,
    run: Callable,
    argv: list[str] | None = None,
    prepare: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """Run ``run(cfg, output_dir)`` as the Hydra app ``prog`` on ``conf/<config_name>.yaml``.

    ``prepare(args) -> args`` may check or extend the rewritten overrides first (raise
    :class:`ConfigError` to stop).
    """
    import hydra

    from gdchaos.sweep import vectorize_overrides

    try:
        args = vectorize_overrides(sys.argv[1:] if argv is None else argv)
        if prepare is not None:
            args = prepare(args)
    except ConfigError as err:
        fail(prog, err)

    def task(cfg) -> None:
        from hydra.core.hydra_config import HydraConfig

        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        try:
            run(cfg, HydraConfig.get().runtime.output_dir)
        except USER_ERRORS as err:
            fail(prog, err)

    if not any(a.startswith("hydra.job.name=") for a in args):
        args = [*args, f"hydra.job.name={config_name}"]  # the log file is <config_name>.log
    sys.argv = [sys.argv[0], *args]
    hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")(task)()
