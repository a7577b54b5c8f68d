"""Losses and metrics on logits: ``fn(logits, labels) -> scalar``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from gdchaos.core.errors import check


def cross_entropy(logits: jax.Array, labels: ArrayLike) -> jax.Array:
    """Mean softmax cross-entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def mse(logits: jax.Array, labels: ArrayLike) -> jax.Array:
    """Mean squared error against one-hot targets: mean_n ½‖f(x_n) − e_{y_n}‖²."""
    onehot = jnp.eye(logits.shape[-1], dtype=logits.dtype)[labels]
    return 0.5 * jnp.mean(jnp.sum((logits - onehot) ** 2, axis=-1))


def accuracy(logits: jax.Array, labels: ArrayLike) -> jax.Array:
    """Fraction of samples whose arg-max logit equals the label."""
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype))


LOSSES = {"cross_entropy": cross_entropy, "mse": mse}


def get_loss(name: str) -> Callable[[jax.Array, ArrayLike], jax.Array]:
    """The loss called ``name`` (``cross_entropy`` or ``mse``)."""
    check(name in LOSSES, f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]
