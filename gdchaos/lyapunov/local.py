r"""Local (one-step) Lyapunov exponents of gradient descent from the Hessian (herrmann2022).

Near θ the GD map θ ↦ θ − η∇L(θ) has the symmetric Jacobian I − ηH(θ). Along the
Hessian eigenvector v_i (eigenvalue λ_i) a perturbation is multiplied by 1 − ηλ_i in
one step, so the local exponents are

    μ_i = ln |1 − η λ_i|       (−∞ at λ_i = 1/η: that direction is annihilated),

and direction i is locally chaotic (μ_i ≥ 0) iff λ_i ≤ 0 or λ_i ≥ 2/η. For GD with L2
weight decay pass the regularized loss (H + λ₂ I). On a quadratic loss ½θᵀAθ the
Hessian is A everywhere and μ_i are the exact (tangent) Lyapunov exponents.

The Hessian is built explicitly (``jax.hessian`` of the flattened parameters, then
``eigh``): N² memory and O(N³) time, so this is for small models (``max_params``);
large models need matrix-free curvature (HVPs, Lanczos).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdchaos.errors import check

MAX_PARAMS = 4096


class LocalExponents(NamedTuple):
    """Hessian spectrum at θ and what it implies for GD at learning rate η.

    Attributes:
        eigenvalues: ``(N,)`` Hessian eigenvalues λ_i, ascending.
        exponents: ``(N,)`` ln|1 − ηλ_i|, same order.
        n_chaotic: number of locally chaotic directions (λ_i ≤ 0 or λ_i ≥ 2/η).
        n_positive: number of λ_i > 0.
        n_negative: number of λ_i < 0.
        finite: the spectrum is finite. Non-finite parameters or curvature give NaN
            eigenvalues and exponents, ``finite = False`` and counts of −1, never a count.

    Eigenvalues within :func:`zero_tolerance` of 0 count as exactly 0 in the counts.
    """

    eigenvalues: jax.Array
    exponents: jax.Array
    n_chaotic: jax.Array
    n_positive: jax.Array
    n_negative: jax.Array
    finite: jax.Array


def _check_size(params, max_params: int) -> int:
    n = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    check(
        n <= max_params,
        f"the explicit Hessian of {n} parameters needs {n}×{n} entries; raise max_params "
        f"(now {max_params}) if that fits in memory, or use matrix-free curvature for large models",
    )
    return n


@functools.partial(jax.jit, static_argnums=0)
def hessian_matrix(loss: Callable, params) -> jax.Array:
    """Explicit N×N Hessian of ``loss(params)`` over the flattened parameters (``ravel_pytree`` order).

    Compiled once per ``loss`` function (a hashable callable, static).
    """
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda v: loss(unravel(v)))(flat)


@functools.partial(jax.jit, static_argnums=0)
def _eigenvalues(loss: Callable, params) -> jax.Array:
    return jnp.linalg.eigvalsh(hessian_matrix(loss, params))


def hessian_spectrum(loss: Callable, params, *, max_params: int = MAX_PARAMS) -> jax.Array:
    """Ascending eigenvalues of the Hessian of ``loss(params)`` (compiled once per ``loss`` function).

    Example:
        >>> import jax.numpy as jnp
        >>> hessian_spectrum(lambda p: p["a"] ** 2 + 3 * p["b"] ** 2, {"a": 1.0, "b": 2.0}).tolist()
        [2.0, 6.0]
    """
    _check_size(params, max_params)
    return _eigenvalues(loss, params)


def gd_local_exponents(eigenvalues, eta) -> jax.Array:
    """μ_i = ln|1 − η λ_i| for Hessian eigenvalues λ_i (broadcasts η against λ)."""
    return jnp.log(jnp.abs(1.0 - eta * jnp.asarray(eigenvalues)))


def zero_tolerance(eigenvalues, rtol=None) -> jax.Array:
    """|λ| below which an eigenvalue counts as zero: ``rtol``·max|λ| over the last axis.

    ``rtol`` defaults to N·ε of the dtype (the roundoff of ``eigh``), so exactly flat
    directions (symmetries, dead units), which come out as ±roundoff, count as λ = 0.
    """
    lam = jnp.asarray(eigenvalues)
    if rtol is None:
        rtol = lam.shape[-1] * jnp.finfo(lam.dtype).eps
    return rtol * jnp.max(jnp.abs(lam), axis=-1, keepdims=True)


def spectrum_count(mask, eigenvalues) -> jax.Array:
    """Σ mask over the last axis, or −1 where the spectrum has a non-finite eigenvalue (no count from NaN).

    Example:
        >>> spectrum_count(jnp.array([[True, True], [True, False]]), jnp.array([[1.0, 2.0], [jnp.nan, 1.0]])).tolist()
        [2, -1]
    """
    finite = jnp.all(jnp.isfinite(jnp.asarray(eigenvalues)), axis=-1)
    return jnp.where(finite, jnp.sum(mask, axis=-1), -1)


def chaotic_count(eigenvalues, eta, rtol=None) -> jax.Array:
    """Number of locally chaotic directions, λ_i ≤ 0 or λ_i ≥ 2/η, over the last axis (−1 for a non-finite spectrum).

    λ_i within :func:`zero_tolerance` of 0 count as 0 (chaotic, μ_i = 0: marginal).

    Example:
        >>> int(chaotic_count(jnp.array([-1.0, 0.5, 3.0]), eta=1.0))
        2
        >>> int(chaotic_count(jnp.array([jnp.nan, 0.5, 3.0]), eta=1.0))
        -1
    """
    lam = jnp.asarray(eigenvalues)
    return spectrum_count((lam <= zero_tolerance(lam, rtol)) | (eta * lam >= 2.0), lam)


def _summarize(eig, eta, rtol=None) -> LocalExponents:
    tol = zero_tolerance(eig, rtol)
    return LocalExponents(
        eigenvalues=eig,
        exponents=gd_local_exponents(eig, eta),
        n_chaotic=chaotic_count(eig, eta, rtol),
        n_positive=spectrum_count(eig > tol, eig),
        n_negative=spectrum_count(eig < -tol, eig),
        finite=jnp.all(jnp.isfinite(eig), axis=-1),
    )


def local_exponents(loss: Callable, params, eta, *, max_params: int = MAX_PARAMS) -> LocalExponents:
    """Local GD exponents at ``params`` from the full Hessian spectrum of ``loss(params)``.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.diag(jnp.array([-1.0, 0.5, 3.0]))
        >>> le = local_exponents(lambda p: 0.5 * p @ a @ p, jnp.zeros(3), eta=1.0)
        >>> [round(float(v), 4) for v in le.exponents], int(le.n_chaotic)
        ([0.6931, -0.6931, 0.6931], 2)
    """
    return _summarize(hessian_spectrum(loss, params, max_params=max_params), eta)


@functools.partial(jax.jit, static_argnums=0)
def _eigenvalues_along(loss: Callable, snapshots) -> jax.Array:
    return jax.vmap(lambda p: _eigenvalues(loss, p))(snapshots)


def local_exponents_along(loss: Callable, snapshots, eta, *, max_params: int = MAX_PARAMS) -> LocalExponents:
    """:func:`local_exponents` at each of a stack of parameter snapshots (leading axis = time), vmapped.

    Every field gains the leading snapshot axis, e.g. ``eigenvalues`` is ``(T, N)`` and
    ``n_chaotic`` is ``(T,)``.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: jnp.sum(p ** 4)  # Hessian diag(12 p²)
        >>> le = local_exponents_along(loss, jnp.array([[0.1, 0.2], [0.5, 1.0]]), eta=0.5)
        >>> le.n_chaotic.tolist()
        [0, 1]
    """
    _check_size(jax.tree.map(lambda a: a[0], snapshots), max_params)
    return _summarize(_eigenvalues_along(loss, snapshots), eta)
