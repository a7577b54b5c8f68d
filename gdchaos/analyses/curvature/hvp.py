r"""Hessian-vector products, matrix-free.

For a scalar loss L(θ) on a pytree θ, the Hessian-vector product is the directional
derivative of the gradient,

    H(θ) v = d/dt ∇L(θ + t v) |_{t=0},

computed forward-over-reverse: ``jax.jvp`` of ``jax.grad``. It costs a small constant
times one gradient and never forms the N×N Hessian. :func:`hvp_fn` linearizes the
gradient once (``jax.linearize``) so that repeated products at the same θ (Lanczos,
power iteration, Hutchinson probes) skip the forward pass. :func:`flat_hvp_fn` is the
same operator on flat vectors (``ravel_pytree`` order), the form used at the
linear-algebra boundary.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.flatten_util import ravel_pytree

Params = Any


def hvp(loss: Callable[[Params], jax.Array], params: Params, v: Params) -> Params:
    """H(θ) v for ``loss(params) -> scalar``: ``jax.jvp`` of ``jax.grad``; ``v`` shaped like ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: p["a"] ** 2 + 3.0 * p["a"] * p["b"]  # H = [[2, 3], [3, 0]]
        >>> out = hvp(loss, {"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 0.0})
        >>> float(out["a"]), float(out["b"])
        (2.0, 3.0)
    """
    return jax.jvp(jax.grad(loss), (params,), (v,))[1]


def hvp_fn(loss: Callable[[Params], jax.Array], params: Params) -> Callable[[Params], Params]:
    """``v ↦ H(θ) v`` at fixed θ, with the gradient linearized once (``jax.linearize``).

    Use it for many products at the same θ; each call then runs only the linear
    (tangent) part of the forward-over-reverse computation.

    Example:
        >>> import jax.numpy as jnp
        >>> matvec = hvp_fn(lambda p: jnp.sum(p ** 3), jnp.array([1.0, 2.0]))  # H = diag(6 p)
        >>> matvec(jnp.ones(2)).tolist()
        [6.0, 12.0]
    """
    return jax.linearize(jax.grad(loss), params)[1]


def flat_hvp_fn(
    loss: Callable[[Params], jax.Array], params: Params
) -> tuple[Callable[[jax.Array], jax.Array], jax.Array, Callable[[jax.Array], Params]]:
    """The Hessian as a matvec on flat vectors: ``(matvec, flat_params, unravel)``.

    ``matvec(u) = ravel(H unravel(u))`` with ``ravel``/``unravel`` from
    ``jax.flatten_util.ravel_pytree(params)``; ``flat_params`` fixes N and the dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> matvec, flat, unravel = flat_hvp_fn(lambda p: p["x"] @ p["x"] + p["y"] ** 2,
        ...                                     {"x": jnp.ones(2), "y": jnp.array(1.0)})
        >>> matvec(jnp.array([1.0, 2.0, 3.0])).tolist(), flat.shape
        ([2.0, 4.0, 6.0], (3,))
    """
    flat, unravel = ravel_pytree(params)
    linear = hvp_fn(loss, params)

    def matvec(u: jax.Array) -> jax.Array:
        return ravel_pytree(linear(unravel(u)))[0]

    return matvec, flat, unravel
