"""Typed readers for Hydra config values: each returns the value or raises a one-line :class:`ConfigError`.

Every app validates its config with these before any computation, so a bad value stops
the run with ``<prog>: error: <key> must be ...`` instead of a traceback.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import ListConfig, OmegaConf

from gdchaos.core.errors import check

__all__ = ["integer", "integer_list", "number", "select"]


def select(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` of ``cfg`` (a DictConfig or a plain dict), or None when absent."""
    if OmegaConf.is_config(cfg):
        return OmegaConf.select(cfg, key)
    value = cfg
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(cfg: Any, key: str, minimum: int) -> int:
    """The integer at ``key``, which must be >= ``minimum``.

    Example:
        >>> integer({"steps": 10}, "steps", 1)
        10
    """
    value = select(cfg, key)
    check(_is_int(value) and value >= minimum, f"{key} must be an integer >= {minimum}; got {value!r}")
    return value


def number(cfg: Any, key: str, minimum: float = -math.inf, *, strict: bool = False) -> float:
    """The finite number at ``key``, >= ``minimum`` (> ``minimum`` when ``strict``).

    Example:
        >>> number({"lr": {"eta": 0.5}}, "lr.eta", 0.0, strict=True)
        0.5
    """
    value = select(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    bound = "" if minimum == -math.inf else f" {'>' if strict else '>='} {minimum:g}"
    check(ok, f"{key} must be a finite number{bound}; got {value!r}")
    return float(value)


def integer_list(cfg: Any, key: str, minimum: int) -> list[int]:
    """A non-empty list of integers >= ``minimum`` at ``key`` (a single integer is a list of one).

    Example:
        >>> integer_list({"batch": 4}, "batch", 1)
        [4]
    """
    value = select(cfg, key)
    if _is_int(value):
        value = [value]
    check(isinstance(value, (list, ListConfig)) and len(value) > 0 and all(_is_int(v) and v >= minimum for v in value),
          f"{key} must be a non-empty list of integers >= {minimum}; got {value!r}")
    return [int(v) for v in value]
