r"""Hessian spectral density by stochastic Lanczos quadrature (SLQ).

The spectral density of the N×N Hessian is φ(λ) = (1/N) Σ_i δ(λ − λ_i). For a unit
probe u = z/‖z‖ with Rademacher z, uᵀ f(H) u is an unbiased estimate of
(1/N) tr f(H) = ∫ f dφ. m Lanczos steps from u give T_m with eigenpairs (θ_j, s_j);
Gauss quadrature then says

    uᵀ f(H) u ≈ Σ_j τ_j f(θ_j),      τ_j = (s_j)_1²,

exact for polynomials f of degree ≤ 2m − 1. Averaging over p probes gives nodes θ and
weights τ/p that sum to 1: a discrete estimate of φ whose moments ∫ λ^q dφ
estimate tr(H^q)/N. :func:`gaussian_density` broadens it on a grid,

    φ_σ(λ) = Σ_{probes, j} w_j 𝒩(λ; θ_j, σ²).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from gdchaos.analyses.curvature.eigen import lanczos, tridiagonal
from gdchaos.analyses.curvature.hvp import flat_hvp_fn
from gdchaos.core.errors import check, check_int
from gdchaos.core.tree import count_params

Params = Any


class SpectralDensity(NamedTuple):
    """A discrete spectral density from SLQ.

    Attributes:
        nodes: ``(probes, m)`` Ritz values of each probe's Lanczos run, ascending.
        weights: ``(probes, m)`` quadrature weights divided by the number of probes; they sum to 1.
    """

    nodes: jax.Array
    weights: jax.Array


def slq(
    matvec: Callable[[jax.Array], jax.Array],
    dim: int,
    key: jax.Array,
    *,
    num_probes: int = 8,
    num_iters: int = 30,
    dtype: DTypeLike | None = None,
) -> SpectralDensity:
    """SLQ density of a symmetric operator ``matvec`` on flat ``dim``-vectors (Rademacher probes from ``key``).

    Example (diagonal operator, m = N: the nodes are its eigenvalues, weights 1/N):
        >>> import jax, jax.numpy as jnp
        >>> dens = slq(lambda v: jnp.array([1.0, 2.0, 4.0]) * v, 3, jax.random.key(0), num_probes=1, num_iters=3)
        >>> [round(float(x), 4) for x in dens.nodes[0]], [round(float(w), 4) for w in dens.weights[0]]
        ([1.0, 2.0, 4.0], [0.3333, 0.3333, 0.3333])
    """
    dim = check_int("dim", dim, 1)
    num_probes = check_int("num_probes", num_probes, 1)
    num_iters = check_int("num_iters", num_iters, 1, dim, "the operator dimension")
    dtype = jnp.result_type(float) if dtype is None else dtype
    k_probe, k_restart = jax.random.split(key)
    z = jax.random.rademacher(k_probe, (num_probes, dim), dtype)

    def one(z, key):
        theta, s = jnp.linalg.eigh(tridiagonal(lanczos(matvec, z, num_iters, key)))
        return theta, s[0, :] ** 2

    nodes, tau = jax.vmap(one)(z, jax.random.split(k_restart, num_probes))
    return SpectralDensity(nodes, tau / num_probes)


def hessian_density(
    loss: Callable[[Params], jax.Array],
    params: Params,
    key: jax.Array,
    *,
    num_probes: int = 8,
    num_iters: int = 30,
) -> SpectralDensity:
    """SLQ spectral density of the Hessian of ``loss(params)``: ``num_probes`` × ``num_iters`` HVPs.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([-1.0, 1.0, 3.0, 5.0]) * p ** 2)
        >>> dens = hessian_density(loss, jnp.zeros(4), jax.random.key(0), num_probes=2, num_iters=4)
        >>> round(float(dens.weights.sum()), 6), round(float(spectral_moment(dens, 1)), 6)  # tr H / N = 2
        (1.0, 2.0)
    """
    n = count_params(params)
    check_int("num_probes", num_probes, 1)
    check_int("num_iters", num_iters, 1, n)
    return _slq_at(loss, params, key, num_probes, num_iters)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _slq_at(loss, params, key, num_probes, num_iters):
    matvec, flat, _ = flat_hvp_fn(loss, params)
    return slq(matvec, flat.size, key, num_probes=num_probes, num_iters=num_iters, dtype=flat.dtype)


def spectral_moment(density: SpectralDensity, power: ArrayLike) -> jax.Array:
    """∫ λ^p dφ = Σ w θ^p, an estimate of tr(H^p)/N (exact quadrature for p ≤ 2m − 1 per probe).

    Example:
        >>> import jax.numpy as jnp
        >>> float(spectral_moment(SpectralDensity(jnp.array([[1.0, 3.0]]), jnp.array([[0.5, 0.5]])), 2))
        5.0
    """
    return jnp.sum(density.weights * density.nodes**power)


def gaussian_density(density: SpectralDensity, grid: jax.Array, sigma: ArrayLike) -> jax.Array:
    """φ_σ(λ) on ``grid``: every node broadened to a normal of width ``sigma``, weighted; integrates to ≈ 1.

    Example:
        >>> import jax.numpy as jnp
        >>> grid = jnp.linspace(-5.0, 5.0, 1001)
        >>> phi = gaussian_density(SpectralDensity(jnp.array([[0.0]]), jnp.array([[1.0]])), grid, 0.5)
        >>> round(float(jnp.sum(phi) * (grid[1] - grid[0])), 4)
        1.0
    """
    if isinstance(sigma, (int, float)):
        check(sigma > 0, f"sigma must be > 0; got {sigma}")
    grid = jnp.asarray(grid)
    nodes = density.nodes.reshape(-1)
    weights = density.weights.reshape(-1)
    z = (grid[:, None] - nodes[None, :]) / sigma
    gauss = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi))
    return gauss @ weights
