"""Optimizers by name: one registry holding the optax aliases, CGD and transformations of your own.

A config's ``optimizer.name`` is looked up here. An entry is an *optax-alias-like* factory
``f(learning_rate, **hyperparameters) -> optax.GradientTransformation`` (what
:func:`gdchaos.core.maps.from_optax` turns into a training map, with every numeric argument
settable per step from ``hyper``), or, registered with ``needs_loss=True``, a builder
``b(loss, **options) -> f`` that needs the full-batch training loss (CGD prunes by its Hessian).

* every optax alias (``sgd``, ``adam``, ``rmsprop``, ...) is there under its own name;
* ``cgd``: chaotic-direction pruning (:func:`gdchaos.analyses.curvature.cgd.cgd_optimizer`),
  options ``which``, ``k``, ``every``, ``method``, ``num_iters``, ``seed`` and ``base`` (the
  name of the optimizer it runs before, default ``sgd``);
* your own: ``register_optimizer("mine", factory)`` in a module the sweep imports with
  ``plugins=[module]``, then ``optimizer.name=mine``.

Example:
    >>> import optax
    >>> register_optimizer("sgd_nesterov", lambda learning_rate, momentum=0.9: optax.sgd(learning_rate, momentum,
    ...                                                                                   nesterov=True), overwrite=True)
    >>> optimizer("sgd_nesterov")(0.1).init  # doctest: +ELLIPSIS
    <function ...>
    >>> optimizer("adam") is optax.adam
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optax

from gdchaos.analyses.curvature.cgd import cgd_optimizer
from gdchaos.core.errors import check

__all__ = ["optimizer", "optimizer_names", "register_optimizer"]

OptaxAlias = Callable[..., optax.GradientTransformation]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Any]
    needs_loss: bool


_OPTIMIZERS: dict[str, _Entry] = {}


def register_optimizer(name: str, factory: Callable[..., Any], *, needs_loss: bool = False, overwrite: bool = False) -> None:
    """Make ``factory`` selectable as ``optimizer.name=<name>``.

    ``factory``: an optax-alias-like ``f(learning_rate, ...)``; with ``needs_loss``, a builder
    ``b(loss, **options) -> f`` given the full-batch training loss ``loss(params)``. A name
    already taken (an optax alias included) needs ``overwrite=True``.
    """
    check(isinstance(name, str) and name.isidentifier(), f"an optimizer name must be an identifier; got {name!r}")
    check(callable(factory), f"optimizer {name!r}: the factory must be callable; got {factory!r}")
    check(overwrite or name not in optimizer_names(),
          f"an optimizer named {name!r} is already registered; pass overwrite=True to replace it")
    _OPTIMIZERS[name] = _Entry(factory, needs_loss)


def _optax_alias(name: str) -> OptaxAlias | None:
    alias = getattr(optax, name, None)
    return alias if callable(alias) and name[:1].islower() and not name.startswith("_") else None


def optimizer_names() -> list[str]:
    """Every registered name: the optax aliases, ``cgd`` and those registered by you."""
    aliases = [n for n in dir(optax) if _optax_alias(n) is not None]
    return sorted(set(aliases) | set(_OPTIMIZERS))


def optimizer(name: str, *, loss: Callable[[Any], Any] | None = None, options: Mapping[str, Any] | None = None) -> OptaxAlias:
    """The optax-alias-like factory registered as ``name``.

    ``loss``: the full-batch training loss, for optimizers that need it (``cgd``);
    ``options``: keyword arguments of such a builder (not per-step hyperparameters).
    """
    options = dict(options or {})
    entry = _OPTIMIZERS.get(name)
    if entry is None:
        alias = _optax_alias(name)
        check(alias is not None, f"unknown optimizer {name!r}; use an optax alias such as 'sgd', 'adam', 'rmsprop', "
                                 "'cgd', or one registered with gdchaos.experiments.optimizers.register_optimizer")
        check(not options, f"optimizer {name!r} takes no options (got {sorted(options)}); "
                           "its hyperparameters go in optimizer.kwargs")
        return alias
    if not entry.needs_loss:
        check(not options, f"optimizer {name!r} takes no options (got {sorted(options)}); "
                           "its hyperparameters go in optimizer.kwargs")
        return entry.factory
    check(loss is not None, f"optimizer {name!r} needs the training loss")
    return entry.factory(loss, **options)


def _cgd(loss: Callable[[Any], Any], base: str = "sgd", **options: Any) -> OptaxAlias:
    check(base != "cgd", "cgd cannot run before itself: choose another optimizer.options.base")
    return cgd_optimizer(loss, base=optimizer(base), **options)


register_optimizer("cgd", _cgd, needs_loss=True)
