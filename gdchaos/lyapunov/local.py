r"""Local (one-step) Lyapunov exponents of gradient descent from the Hessian (herrmann2022).

Near θ the GD map θ ↦ θ − η∇L(θ) has Jacobian I − ηH(θ). Along the Hessian
eigenvector v_i (eigenvalue λ_i) a perturbation is stretched by |1 − ηλ_i| per
step, so the local exponents are

    μ_i = ln |1 − η λ_i|,

and direction i is locally chaotic (μ_i ≥ 0) iff λ_i ≤ 0 or λ_i ≥ 2/η.

The full Hessian is built explicitly (``jax.hessian`` on the flattened parameters),
so this is for small models; large models use matrix-free curvature estimates.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


class LocalExponents(NamedTuple):
    """Hessian spectrum at θ and what it implies for GD at learning rate η.

    Attributes:
        eigenvalues: ascending Hessian eigenvalues λ_i.
        exponents: ln|1 − ηλ_i| (same order).
        n_chaotic: number of directions with λ_i ≤ 0 or λ_i ≥ 2/η.
        n_positive: number of λ_i > 0.
        n_negative: number of λ_i < 0.
    """

    eigenvalues: jax.Array
    exponents: jax.Array
    n_chaotic: jax.Array
    n_positive: jax.Array
    n_negative: jax.Array


def hessian_matrix(loss: Callable, params) -> jax.Array:
    """Explicit N×N Hessian of ``loss(params)`` over the flattened parameters."""
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda v: loss(unravel(v)))(flat)


def gd_local_exponents(eigenvalues: jax.Array, eta) -> jax.Array:
    """μ_i = ln|1 − η λ_i| for Hessian eigenvalues λ_i."""
    return jnp.log(jnp.abs(1.0 - eta * eigenvalues))


def chaotic_count(eigenvalues: jax.Array, eta) -> jax.Array:
    """Number of locally chaotic directions: λ_i ≤ 0 or λ_i ≥ 2/η."""
    return jnp.sum((eigenvalues <= 0) | (eigenvalues >= 2.0 / eta))


def local_exponents(loss: Callable, params, eta) -> LocalExponents:
    """Local GD exponents at ``params`` from the full Hessian spectrum of ``loss``.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.diag(jnp.array([-1.0, 0.5, 3.0]))
        >>> le = local_exponents(lambda p: 0.5 * p @ a @ p, jnp.zeros(3), eta=1.0)
        >>> [round(float(v), 4) for v in le.exponents], int(le.n_chaotic)
        ([0.6931, -0.6931, 0.6931], 2)
    """
    eig = jnp.linalg.eigvalsh(hessian_matrix(loss, params))
    return LocalExponents(
        eigenvalues=eig,
        exponents=gd_local_exponents(eig, eta),
        n_chaotic=chaotic_count(eig, eta),
        n_positive=jnp.sum(eig > 0),
        n_negative=jnp.sum(eig < 0),
    )


def local_exponents_along(loss: Callable, snapshots, eta) -> LocalExponents:
    """:func:`local_exponents` for a stack of parameter snapshots (leading axis = time), vmapped."""
    return jax.vmap(lambda p: local_exponents(loss, p, eta))(snapshots)
