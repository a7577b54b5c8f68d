r"""Hutchinson's stochastic trace estimator with Rademacher probes.

For z with independent entries ±1 (E zzᵀ = I),

    E[zᵀ H z] = tr H,        Var[zᵀ H z] = 2 Σ_{i≠j} H_ij²,

so the mean over p probes estimates tr H with standard error ≈ std/√p. One
Hessian-vector product per probe; a diagonal H is estimated exactly by every probe.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from gdchaos.analyses.curvature.hvp import flat_hvp_fn
from gdchaos.core.errors import check_int

Params = Any


class TraceEstimate(NamedTuple):
    """Attributes:
    trace: mean of zᵀHz over the probes.
    stderr: standard error of that mean (sample std / √probes; NaN for one probe).
    """

    trace: jax.Array
    stderr: jax.Array


def hutchinson(
    matvec: Callable[[jax.Array], jax.Array],
    dim: int,
    key: jax.Array,
    num_probes: int = 100,
    *,
    dtype: DTypeLike | None = None,
    batch_size: int | None = None,
) -> TraceEstimate:
    """tr A of a linear operator ``matvec`` on flat ``dim``-vectors from ``num_probes`` Rademacher probes.

    Probes are vmapped all at once, or ``batch_size`` at a time (``lax.map``) to bound memory.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> est = hutchinson(lambda v: jnp.array([1.0, 2.0, 3.0]) * v, 3, jax.random.key(0), 4)
        >>> float(est.trace)
        6.0
    """
    dim = check_int("dim", dim, 1)
    num_probes = check_int("num_probes", num_probes, 1)
    dtype = jnp.result_type(float) if dtype is None else dtype
    z = jax.random.rademacher(key, (num_probes, dim), dtype)

    def quad(v):
        return jnp.vdot(v, matvec(v))

    if batch_size is None:
        samples = jax.vmap(quad)(z)
    else:
        samples = jax.lax.map(quad, z, batch_size=check_int("batch_size", batch_size, 1))
    std = jnp.std(samples, ddof=1) if num_probes > 1 else jnp.asarray(jnp.nan, samples.dtype)
    return TraceEstimate(jnp.mean(samples), std / jnp.sqrt(num_probes))


def hutchinson_trace(
    loss: Callable[[Params], jax.Array],
    params: Params,
    key: jax.Array,
    num_probes: int = 100,
    *,
    batch_size: int | None = None,
) -> TraceEstimate:
    """tr H(θ) of ``loss(params)`` by Hutchinson's estimator (``num_probes`` HVPs, Rademacher probes from ``key``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> loss = lambda p: jnp.sum(p["a"] ** 2) + 2.0 * p["b"] ** 2  # H = diag(2, 2, 4)
        >>> est = hutchinson_trace(loss, {"a": jnp.ones(2), "b": jnp.array(0.5)}, jax.random.key(1), 8)
        >>> float(est.trace), float(est.stderr)
        (8.0, 0.0)
    """
    check_int("num_probes", num_probes, 1)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    return _hutchinson_at(loss, params, key, num_probes, batch_size)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _hutchinson_at(loss, params, key, num_probes, batch_size):
    matvec, flat, _ = flat_hvp_fn(loss, params)
    return hutchinson(matvec, flat.size, key, num_probes, dtype=flat.dtype, batch_size=batch_size)
