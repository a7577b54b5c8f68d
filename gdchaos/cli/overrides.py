"""Command-line overrides: η and ε sweeps become list overrides, vectorized in one process.

``eta=range(0.01,20)`` → ``eta=[0.01,1.01,...]``; ``eps=1e-8,1e-6`` → ``eps=[1e-08,1e-06]``; a sweep
over any other key becomes Hydra multirun jobs (``--multirun`` is added).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, RangeSweep
from hydra.errors import HydraException

from gdchaos.core.errors import ConfigError, check

__all__ = ["VECTORIZED_KEYS", "eta_grid", "expand_range", "number_list", "vectorize_overrides"]

VECTORIZED_KEYS = ("eta", "eps")


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


def _numbers(key: str, values: Iterable[Any]) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} values must be numbers; got {list(values)!r}") from None


def number_list(value: Any, key: str = "eta/eps") -> list[float]:
    """``value`` (a number, a list of numbers or None) as a list of floats; a one-line error otherwise."""
    if value is None:
        return []
    if isinstance(value, (int, float, str)):
        return _numbers(key, [value])
    return _numbers(key, value)


def eta_grid(value: Any) -> list[float]:
    """The η values of a config entry: a number, a list, or a sweep string such as ``range(0.5,1.6,0.001)``.

    Sweep strings are expanded by :func:`vectorize_overrides` (stop excluded).

    Example:
        >>> eta_grid("range(0.5,0.8,0.1)"), eta_grid([1, 2]), eta_grid(0.3)
        ([0.5, 0.6, 0.7], [1.0, 2.0], [0.3])
    """
    if isinstance(value, str):
        try:
            rewritten = vectorize_overrides([f"eta={value.strip()}"])[0]
            value = ast.literal_eval(rewritten.split("=", 1)[1])
        except ConfigError:
            raise
        except Exception:
            raise ConfigError(f"eta must be numbers, a list or range(start,stop,step); got {value!r}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"eta values must be numbers; got {value!r}") from None
    return values
