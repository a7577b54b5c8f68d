r"""Training maps: pure ``(init, step)`` pairs built from optax.

A training map advances the dynamical state of training by one update::

    state = tmap.init(params, key)
    state, info = tmap.step(state, hyper)

``hyper`` is a dict of arrays — ``learning_rate`` (η), optionally ``l2`` (λ) and any
numeric hyperparameter of the optax optimizer (e.g. ``momentum``). Because they are
arguments, not closure constants, ``jax.vmap`` over η costs nothing extra and a new η
grid never recompiles. The update is

    θ_{t+1} = θ_t + U(∇_θ [L(θ_t; B_t) + ½ λ ‖θ_t‖²], s_t; hyper)

with U the optax update, B_t the full training set (GD) or a mini-batch drawn from the
key in the state (SGD). For plain GD, θ_{t+1} = θ_t − η ∇L(θ_t).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdchaos.core.errors import check
from gdchaos.core.tree import PyTree, tree_all_finite, tree_l2_norm, tree_sq_norm

Params = PyTree
Hyper = dict
LossFn = Callable[[Params, jax.Array, jax.Array], jax.Array]
"""``loss_fn(params, x, y) -> scalar``: the mean loss of a batch."""


class TrainState(NamedTuple):
    """What the next update needs.

    Attributes:
        params: model parameters (pytree).
        opt_state: optax state; its ``hyperparams`` are overwritten from ``hyper`` each step.
        count: number of updates applied (int32 scalar).
        key: PRNG key for mini-batch sampling (unused by full-batch maps).
    """

    params: Params
    opt_state: Any
    count: jax.Array
    key: jax.Array


class StepInfo(NamedTuple):
    """Diagnostics of one update, evaluated at the parameters *before* it.

    Attributes:
        loss: data loss L(θ_t; B_t) (without the L2 term).
        grad_norm: ‖∇(L + ½λ‖θ‖²)‖₂.
        diverged: True if the loss, gradient or new parameters are not finite.
    """

    loss: jax.Array
    grad_norm: jax.Array
    diverged: jax.Array


class TrainingMap(NamedTuple):
    """A pure training map: ``init(params, key=None) -> state``, ``step(state, hyper) -> (state, info)``."""

    init: Callable[..., TrainState]
    step: Callable[[TrainState, Hyper], tuple[TrainState, StepInfo]]


def _accepted_keys(opt_state, schedules: frozenset) -> tuple[str, ...]:
    return tuple(sorted({"learning_rate", "l2"} | (set(opt_state.hyperparams) - schedules)))


def check_hyper(hyper: Hyper, accepted: Iterable[str]) -> None:
    """Raise :class:`~gdchaos.core.errors.ConfigError` unless ``hyper`` has ``learning_rate`` and only ``accepted`` keys."""
    check(isinstance(hyper, dict), f"hyper must be a dict such as {{'learning_rate': 0.1}}; got {type(hyper).__name__}")
    unknown = sorted(set(hyper) - set(accepted))
    check(not unknown, f"unknown hyperparameter(s) {unknown}; this training map accepts {sorted(accepted)}")
    check("learning_rate" in hyper, f"hyper has no 'learning_rate' (η); this training map accepts {sorted(accepted)}")


def from_optax(
    optimizer: Callable[..., optax.GradientTransformation],
    loss_fn: Callable[[Params, jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array,
    batch_size: int | None = None,
    **optimizer_kwargs: Any,
) -> TrainingMap:
    r"""Training map for any optax optimizer alias (``optax.sgd``, ``optax.adam``, ...).

    ``hyper`` must hold ``learning_rate`` (η); it may hold ``l2`` (λ) and any numeric
    hyperparameter of the optimizer. Any other key is an error that lists the accepted
    ones: a misspelt key is never silently ignored.

    **Schedules.** With a schedule as ``learning_rate`` (e.g.
    ``optax.cosine_decay_schedule(1.0, 1000)``), η from ``hyper`` multiplies it: the step
    size at update t is η·s(t), so a sweep over η scales the whole schedule (give s with
    s(0) = 1 to read η as the initial step size). Other schedule-valued arguments are
    evaluated by optax each update and cannot also be set from ``hyper``.

    Args:
        optimizer: an optax alias; wrapped in ``optax.inject_hyperparams`` so its numeric
            hyperparameters can be set per step from ``hyper``.
        loss_fn: ``loss_fn(params, x, y) -> scalar`` data loss.
        x, y: training inputs and labels (NumPy or JAX arrays; stored as JAX arrays).
        batch_size: ``None`` for full-batch updates; otherwise each step draws
            ``batch_size`` distinct samples with the state's key.
        **optimizer_kwargs: fixed optimizer arguments (e.g. ``nesterov=True``). Numeric
            ones become defaults that ``hyper`` may override.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> loss = lambda p, x, y: jnp.mean((x @ p - y) ** 2)
        >>> tmap = from_optax(optax.sgd, loss, jnp.eye(2), jnp.ones(2))
        >>> state = tmap.init(jnp.zeros(2))
        >>> state, info = tmap.step(state, {"learning_rate": 0.5})
        >>> state.params.tolist()
        [0.5, 0.5]
        >>> tmap.step(state, {"lr": 0.5})
        Traceback (most recent call last):
        ...
        gdchaos.core.errors.ConfigError: unknown hyperparameter(s) ['lr']; this training map accepts ['l2', 'learning_rate']
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    if batch_size is not None:
        check(0 < batch_size <= n, f"batch_size must be in 1..{n} (training set size); got {batch_size}")
    schedules = frozenset(k for k, v in optimizer_kwargs.items() if callable(v))
    schedule = optimizer_kwargs.get("learning_rate")
    if callable(schedule):

        def scaled(learning_rate, **kwargs):
            return optax.chain(optimizer(learning_rate=schedule, **kwargs), optax.scale(learning_rate))

        scaled.__signature__ = inspect.signature(optimizer)  # inject_hyperparams binds by signature
        kwargs = {k: v for k, v in optimizer_kwargs.items() if k != "learning_rate"}
        tx = optax.inject_hyperparams(scaled)(learning_rate=1.0, **kwargs)
        schedules = schedules - {"learning_rate"}
    else:
        tx = optax.inject_hyperparams(optimizer)(**{"learning_rate": 0.0, **optimizer_kwargs})

    def init(params: Params, key: jax.Array | None = None) -> TrainState:
        key = jax.random.key(0) if key is None else key
        return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), key)

    def objective(params, xb, yb, l2):
        loss = loss_fn(params, xb, yb)
        return loss + 0.5 * l2 * tree_sq_norm(params), loss

    def step(state: TrainState, hyper: Hyper) -> tuple[TrainState, StepInfo]:
        opt_state = state.opt_state
        check_hyper(hyper, _accepted_keys(opt_state, schedules))
        key = state.key
        if batch_size is None:
            xb, yb = x, y
        else:
            key, sub = jax.random.split(key)
            idx = jax.random.choice(sub, n, (batch_size,), replace=False)
            xb, yb = x[idx], y[idx]
        l2 = hyper.get("l2", 0.0)
        (_, loss), grads = jax.value_and_grad(objective, has_aux=True)(state.params, xb, yb, l2)
        injected = {
            k: jnp.asarray(v, opt_state.hyperparams[k].dtype)
            for k, v in hyper.items()
            if k in opt_state.hyperparams
        }
        opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, **injected})
        updates, opt_state = tx.update(grads, opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = tree_l2_norm(grads)
        diverged = ~(jnp.isfinite(loss) & jnp.isfinite(grad_norm) & tree_all_finite(params))
        new = TrainState(params, opt_state, state.count + 1, key)
        return new, StepInfo(loss, grad_norm, diverged)

    return TrainingMap(init, step)


def gd(loss_fn: LossFn, x: jax.Array, y: jax.Array) -> TrainingMap:
    """Full-batch gradient descent: θ ← θ − η ∇L(θ). η is ``hyper["learning_rate"]``."""
    return from_optax(optax.sgd, loss_fn, x, y)


def sgd(loss_fn: LossFn, x: jax.Array, y: jax.Array, batch_size: int) -> TrainingMap:
    """Mini-batch SGD: θ ← θ − η ∇L(θ; B_t), B_t drawn without replacement from the state's key."""
    return from_optax(optax.sgd, loss_fn, x, y, batch_size=batch_size)


def momentum(
    loss_fn: LossFn, x: jax.Array, y: jax.Array, beta: float = 0.9, nesterov: bool = False, batch_size: int | None = None
) -> TrainingMap:
    """Heavy-ball momentum: v ← β v + ∇L, θ ← θ − η v (``hyper["momentum"]`` overrides β)."""
    check(0 <= beta < 1, f"momentum beta must be in [0, 1); got {beta}")
    return from_optax(optax.sgd, loss_fn, x, y, batch_size=batch_size, momentum=beta, nesterov=nesterov)


def supervised_loss(model_apply: Callable[[Params, jax.Array], jax.Array], loss: Callable[[jax.Array, jax.Array], jax.Array]) -> LossFn:
    """``loss_fn(params, x, y) = loss(model_apply(params, x), y)``."""

    def loss_fn(params, x, y):
        return loss(model_apply(params, x), y)

    return loss_fn
