"""Errors that gdchaos raises for bad input, and the argument checks that raise them. Messages state the fix."""

from __future__ import annotations

import numpy as np


class ConfigError(ValueError):
    """A configuration or argument that cannot run; the message says how to fix it."""


class PrecisionError(RuntimeError):
    """A computation whose requested precision is unavailable on this backend."""


class DatasetUnavailableError(RuntimeError):
    """A dataset that cannot be loaded here (e.g. not downloaded and no network)."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def check_int(name: str, value: object, low: int, high: int | None = None, what: str = "the number of parameters") -> int:
    """``value`` as an ``int``; raise :class:`ConfigError` unless it is an integer (not a bool) in ``low..high``.

    ``what`` names the upper bound in the message (``high=None``: no upper bound).

    Example:
        >>> check_int("k", 3, 1, 10)
        3
        >>> check_int("k", 12, 1, 10)
        Traceback (most recent call last):
        ...
        gdchaos.core.errors.ConfigError: k must be <= 10 (the number of parameters); got 12
    """
    check(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool),
        f"{name} must be an integer; got {value!r}",
    )
    check(value >= low, f"{name} must be >= {low}; got {value}")
    if high is not None:
        check(value <= high, f"{name} must be <= {high} ({what}); got {value}")
    return int(value)


def check_positive(name: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` > 0; a traced value (under jit/vmap) is not checked.

    Example:
        >>> check_positive("eta", 0.1)
        >>> check_positive("eta", 0.0)
        Traceback (most recent call last):
        ...
        gdchaos.core.errors.ConfigError: eta must be > 0; got 0.0
    """
    try:
        number = float(value)
    except TypeError:  # a tracer (jax's concretization errors are TypeErrors): no Python check
        return
    check(number > 0, f"{name} must be > 0; got {number}")
