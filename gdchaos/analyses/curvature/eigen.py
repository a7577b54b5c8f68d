r"""Extreme Hessian eigenpairs, matrix-free: Lanczos with full reorthogonalization, power iteration.

**Lanczos.** From a unit start vector v₁ the recurrence

    β_j v_{j+1} = H v_j − α_j v_j − β_{j−1} v_{j−1},   α_j = v_jᵀ H v_j,

builds an orthonormal basis V_m = [v₁ … v_m] of the Krylov space K_m(H, v₁) in which
H is tridiagonal, T_m = V_mᵀ H V_m (α on the diagonal, β off it). The eigenpairs
(θ_i, s_i) of T_m give Ritz pairs (θ_i, V_m s_i); the extreme ones converge first, with
residual ‖H y_i − θ_i y_i‖ = |β_m s_{m,i}| in exact arithmetic (the estimate ignores
roundoff, so it can fall below the ~ε‖H‖ floor of the computed products). Each step
costs one Hessian-vector product (:mod:`gdchaos.analyses.curvature.hvp`). Every new vector is
orthogonalized against all previous ones twice (full reorthogonalization, O(m² N)
work in total), so no spurious copies of converged eigenvalues appear. When β_j falls
to roundoff, 10 √N ε ‖H‖, the Krylov space is invariant; the next vector is then a
fresh pseudo-random one orthogonal to V (and T_m gets 0 instead of β_j), so degenerate
eigenvalues are found with their multiplicity and m = N gives the whole spectrum.

**Power iteration** v ← H v / ‖H v‖ converges to the eigenvalue of largest |λ| at rate
|λ₂/λ₁| per product.

Everything has fixed iteration counts (``lax.fori_loop``), so it jits and vmaps over an
ensemble of parameter pytrees. Vectors are flat arrays (``ravel_pytree`` order) inside,
and eigenvectors come back shaped like the parameters with a leading k axis.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdchaos.analyses.curvature.hvp import flat_hvp_fn
from gdchaos.analyses.lyapunov.local import hessian_matrix
from gdchaos.core.errors import check, check_int
from gdchaos.core.tree import PyTree, count_params, unravel_rows

Params = PyTree

FULL_MAX_PARAMS = 1024
"""``method="auto"`` uses the explicit Hessian (all N eigenpairs) up to this many parameters, Lanczos above."""


class LanczosResult(NamedTuple):
    """Output of :func:`lanczos` with m steps on an N-dimensional operator.

    Attributes:
        alpha: ``(m,)`` diagonal of the tridiagonal T_m.
        beta: ``(m,)`` residual norms β_j = ‖r_j‖ after step j; ``beta[:-1]`` couples v_j and
            v_{j+1} in T_m except where ``restarted``, and ``beta[-1]`` is the last residual.
        vectors: ``(m, N)`` orthonormal Lanczos vectors, one per row.
        restarted: ``(m,)`` bool, True where β_j fell below 10 √N ε ‖H‖ (an invariant subspace
            was found) and v_{j+1} is a fresh vector: T_m has a zero there instead of β_j.
    """

    alpha: jax.Array
    beta: jax.Array
    vectors: jax.Array
    restarted: jax.Array


class Eigenpairs(NamedTuple):
    """Eigenvalue estimates and their unit eigenvectors.

    Attributes:
        values: ``(k,)`` eigenvalues.
        vectors: pytree shaped like the parameters with a leading k axis; ``vectors[i]``
            has unit L2 norm over all leaves and belongs to ``values[i]``.
        residuals: ``(k,)`` ‖H v_i − λ_i v_i‖ (Lanczos: the Ritz estimate, see :func:`ritz_pairs`).
    """

    values: jax.Array
    vectors: Any
    residuals: jax.Array


def _unit(v):
    n = jnp.linalg.norm(v)
    return v / jnp.where(n > 0, n, 1).astype(v.dtype)


def _key_words(key) -> jax.Array:
    """Raw uint32 words of a PRNG key (typed or legacy), for :func:`_hash_uniform`."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = jnp.ravel(key).astype(jnp.uint32)
    return jnp.stack([words[0], words[-1]])


def _mix(x):
    """A 32-bit integer hash (xor-shift-multiply)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _hash_uniform(words, j, n: int, dtype):
    """n pseudo-random numbers in [−1, 1) from key words and counter j: a cheap counter-based generator.

    Used only for restart vectors after a Lanczos breakdown, where any vector outside the
    current Krylov space will do; it compiles far faster than a threefry draw in a loop.
    """
    x = jnp.arange(n, dtype=jnp.uint32) + jnp.asarray(j).astype(jnp.uint32) * jnp.uint32(0x9E3779B9)
    x = _mix(_mix(x ^ words[0]) ^ words[1])
    return (x >> 8).astype(dtype) * (2.0 / 2**24) - 1.0


def _orthogonalize(basis, w):
    """w minus its projection on the rows of ``basis`` (classical Gram–Schmidt, applied twice)."""
    w = w - basis.T @ (basis @ w)
    return w - basis.T @ (basis @ w)


def lanczos(
    matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, num_iters: int, key: jax.Array | None = None
) -> LanczosResult:
    r"""m = ``num_iters`` Lanczos steps with full reorthogonalization from the start vector ``v0`` (flat, N).

    ``matvec`` is any symmetric linear operator on flat vectors (e.g. from
    :func:`~gdchaos.analyses.curvature.hvp.flat_hvp_fn`). ``key`` draws the restart vectors after a
    breakdown (default ``jax.random.key(0)``). Returns a :class:`LanczosResult`; the
    leading j×j block of T_m is what j steps would have given.

    Example (a diagonal operator; m = N recovers every eigenvalue):
        >>> import jax.numpy as jnp
        >>> d = jnp.array([1.0, 2.0, 5.0, 7.0])
        >>> res = lanczos(lambda v: d * v, jnp.ones(4), num_iters=4)
        >>> values, _, _ = ritz_pairs(res)
        >>> [round(float(x), 4) for x in values]
        [1.0, 2.0, 5.0, 7.0]
    """
    n = int(np.size(v0))
    m = check_int("num_iters", num_iters, 1, n, "the dimension of v0")
    v0 = jnp.ravel(v0)
    dtype = v0.dtype
    words = _key_words(_default_key(key))
    eps = jnp.finfo(dtype).eps
    basis = jnp.zeros((m + 1, n), dtype).at[0].set(_unit(v0))

    def body(j, carry):
        basis, alpha, beta, restarted, anorm = carry
        v = basis[j]
        w = matvec(v)
        a = jnp.vdot(v, w)
        b_prev = jnp.where((j > 0) & ~restarted[j - 1], beta[j - 1], 0).astype(dtype)
        w = w - a * v - b_prev * basis[j - 1]
        w = _orthogonalize(basis, w)
        b = jnp.linalg.norm(w)
        anorm = jnp.maximum(anorm, jnp.sqrt(a**2 + b_prev**2 + b**2))
        breakdown = b <= 10 * np.sqrt(n) * eps * anorm
        fresh = _orthogonalize(basis, _hash_uniform(words, j + 1, n, dtype))
        nxt = jnp.where(breakdown, _unit(fresh), w / jnp.where(breakdown, 1, b).astype(dtype))
        basis = basis.at[j + 1].set(nxt)
        return basis, alpha.at[j].set(a), beta.at[j].set(b), restarted.at[j].set(breakdown), anorm

    init = (basis, jnp.zeros(m, dtype), jnp.zeros(m, dtype), jnp.zeros(m, bool), jnp.zeros((), dtype))
    basis, alpha, beta, restarted, _ = jax.lax.fori_loop(0, m, body, init)
    return LanczosResult(alpha, beta, basis[:m], restarted)


def tridiagonal(result: LanczosResult) -> jax.Array:
    """T_m (m×m) of a :class:`LanczosResult`."""
    off = jnp.where(result.restarted[:-1], 0, result.beta[:-1])
    return jnp.diag(result.alpha) + jnp.diag(off, 1) + jnp.diag(off, -1)


def ritz_pairs(result: LanczosResult) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Ritz values ``(m,)`` ascending, Ritz vectors ``(m, N)`` (rows) and residual estimates ``(m,)``.

    Residual of pair i: ‖H y_i − θ_i y_i‖ ≈ (Σ_j (β_j s_{j,i})²)^½ over the last step j = m
    and the restarts (the residuals that T_m leaves out), with s_i the eigenvector of T_m.
    """
    theta, s = jnp.linalg.eigh(tridiagonal(result))
    vectors = s.T @ result.vectors
    dropped = result.restarted.at[-1].set(True)
    residuals = jnp.sqrt(jnp.sum(jnp.where(dropped[:, None], (result.beta[:, None] * s) ** 2, 0), axis=0))
    return theta, vectors, residuals


def default_num_iters(n: int, k: int) -> int:
    """Default Lanczos steps for k eigenpairs at an end of an N-dimensional spectrum: min(N, max(2k + 40, 3k)).

    Example:
        >>> default_num_iters(1000, 1), default_num_iters(1000, 30), default_num_iters(20, 1)
        (42, 100, 20)
    """
    return min(n, max(2 * k + 40, 3 * k))


def _start(key, flat):
    return jax.random.normal(key, flat.shape, flat.dtype)


def _default_key(key):
    return jax.random.key(0) if key is None else key


@functools.partial(jax.jit, static_argnums=(0, 2))
def _lanczos_ritz(loss, params, num_iters, key):
    """Ritz values, vectors (rows) and residuals of ``num_iters`` Lanczos steps on the Hessian at ``params``.

    Compiled once per ``loss`` function and ``num_iters`` (the heavy part; the cheap
    selections after it are compiled per shape, whatever the loss).
    """
    matvec, flat, _ = flat_hvp_fn(loss, params)
    k_start, k_restart = jax.random.split(key)
    return ritz_pairs(lanczos(matvec, _start(k_start, flat), num_iters, k_restart))


@functools.partial(jax.jit, static_argnums=0)
def _full_eigh(loss, params):
    """All eigenpairs (ascending values, vectors as rows) of the explicit Hessian."""
    values, vecs = jnp.linalg.eigh(hessian_matrix(loss, params))
    return values, vecs.T


@functools.partial(jax.jit, static_argnums=3)
def _ends(theta, vecs, res, k):
    m = theta.shape[0]
    idx = np.array(sorted(set(range(k)) | set(range(m - k, m))))
    return theta[idx], vecs[idx], res[idx]


@functools.partial(jax.jit, static_argnums=(4, 5))
def _pick(theta, vecs, res, params, k, which):
    m = theta.shape[0]
    idx = np.arange(m - 1, m - 1 - k, -1) if which == "top" else np.arange(k)
    return Eigenpairs(theta[idx], unravel_rows(ravel_pytree(params)[1], vecs[idx]), res[idx])


@jax.jit
def _as_pytrees(values, vecs, res, params):
    return Eigenpairs(values, unravel_rows(ravel_pytree(params)[1], vecs), res)


def resolve_method(method: str, n: int) -> str:
    """``"full"`` or ``"lanczos"`` for ``method`` in ``{"auto", "full", "lanczos"}`` and N parameters."""
    check(method in ("auto", "full", "lanczos"), f"method must be 'auto', 'full' or 'lanczos'; got {method!r}")
    if method == "auto":
        return "full" if n <= FULL_MAX_PARAMS else "lanczos"
    return method


def _resolve(params, k, method, num_iters):
    """Checked ``(method, k, num_iters)`` for :func:`ascending_eigenpairs_flat`."""
    n = count_params(params)
    method = resolve_method(method, n)
    if method == "full":
        return method, None, None
    check(k is not None, "method='lanczos' needs k (how many eigenpairs at each end of the spectrum); pass k >= 1")
    k = check_int("k", k, 1, n)
    num_iters = default_num_iters(n, k) if num_iters is None else num_iters
    check_int("num_iters", num_iters, k, n)
    return method, k, int(num_iters)


def _pairs(loss, params, k, method, num_iters, key):
    """``(values, vectors (rows), residuals)`` ascending for a resolved configuration."""
    if method == "full":
        values, vecs = _full_eigh(loss, params)
        return values, vecs, jnp.zeros_like(values)
    return _ends(*_lanczos_ritz(loss, params, num_iters, key), k)


def _extreme(loss, params, k, which, num_iters, key) -> Eigenpairs:
    n = count_params(params)
    k = check_int("k", k, 1, n)
    num_iters = default_num_iters(n, k) if num_iters is None else num_iters
    check_int("num_iters", num_iters, k, n)
    return _pick(*_lanczos_ritz(loss, params, int(num_iters), _default_key(key)), params, k, which)


def top_hessian_eigenpairs(
    loss: Callable[[Params], jax.Array],
    params: Params,
    k: int = 1,
    *,
    num_iters: int | None = None,
    key: jax.Array | None = None,
) -> Eigenpairs:
    r"""The k largest Hessian eigenpairs by Lanczos, in descending order (``values[0]`` is λ_max).

    Matrix-free: ``num_iters`` Hessian-vector products (default :func:`default_num_iters`,
    min(N, max(2k + 40, 3k))) from a random start drawn with ``key`` (default
    ``jax.random.key(0)``). Check ``residuals`` and raise ``num_iters`` if they are not
    small; ``num_iters = N`` is exact up to roundoff. Compiled once per ``loss`` function
    and options; jit/vmap-able over ``params``.

    Example (H = diag(1, 2, 3, 10)):
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 2.0, 3.0, 10.0]) * p["w"] ** 2)
        >>> top = top_hessian_eigenpairs(loss, {"w": jnp.zeros(4)}, k=2)
        >>> [round(float(x), 4) for x in top.values], top.vectors["w"].shape
        ([10.0, 3.0], (2, 4))
    """
    return _extreme(loss, params, k, "top", num_iters, key)


def bottom_hessian_eigenpairs(
    loss: Callable[[Params], jax.Array],
    params: Params,
    k: int = 1,
    *,
    num_iters: int | None = None,
    key: jax.Array | None = None,
) -> Eigenpairs:
    r"""The k smallest Hessian eigenpairs by Lanczos, in ascending order (``values[0]`` is λ_min).

    As :func:`top_hessian_eigenpairs`, at the other end of the spectrum.

    Example (H = diag(1, 2, 3, 10)):
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 2.0, 3.0, 10.0]) * p ** 2)
        >>> [round(float(x), 4) for x in bottom_hessian_eigenpairs(loss, jnp.zeros(4), k=2).values]
        [1.0, 2.0]
    """
    return _extreme(loss, params, k, "bottom", num_iters, key)


def ascending_eigenpairs_flat(
    loss: Callable[[Params], jax.Array],
    params: Params,
    k: int | None = None,
    *,
    method: str = "auto",
    num_iters: int | None = None,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, Callable]:
    """:func:`ascending_hessian_eigenpairs` with flat eigenvectors.

    Returns ``(values (K,), vectors (K, N) as rows, residuals (K,), unravel)``.
    """
    method, k, num_iters = _resolve(params, k, method, num_iters)
    values, vecs, res = _pairs(loss, params, k, method, num_iters, _default_key(key))
    return values, vecs, res, ravel_pytree(params)[1]


def ascending_hessian_eigenpairs(
    loss: Callable[[Params], jax.Array],
    params: Params,
    k: int | None = None,
    *,
    method: str = "auto",
    num_iters: int | None = None,
    key: jax.Array | None = None,
) -> Eigenpairs:
    r"""Hessian eigenpairs in ascending order: all N of them, or the k smallest and k largest.

    ``method="full"`` builds the explicit Hessian
    (:func:`gdchaos.analyses.lyapunov.local.hessian_matrix`) and returns all N pairs from ``eigh``
    (``k`` ignored, residuals 0). ``method="lanczos"`` runs one Lanczos pass
    (``num_iters`` HVPs, default min(N, max(2k + 40, 3k)), start from ``key``) and returns the
    bottom-k and top-k Ritz pairs, min(2k, num_iters) in all (overlaps counted once).
    ``"auto"`` is ``"full"`` for N ≤ :data:`FULL_MAX_PARAMS` and ``"lanczos"`` above.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([-1.0, 2.0, 3.0, 10.0]) * p ** 2)
        >>> ascending_hessian_eigenpairs(loss, jnp.zeros(4)).values.tolist()
        [-1.0, 2.0, 3.0, 10.0]
        >>> ends = ascending_hessian_eigenpairs(loss, jnp.zeros(4), k=1, method="lanczos", num_iters=4)
        >>> [round(float(x), 4) for x in ends.values]
        [-1.0, 10.0]
    """
    method, k, num_iters = _resolve(params, k, method, num_iters)
    return _as_pytrees(*_pairs(loss, params, k, method, num_iters, _default_key(key)), params)


def power_iteration(
    loss: Callable[[Params], jax.Array], params: Params, *, num_iters: int = 100, key: jax.Array | None = None
) -> Eigenpairs:
    r"""Dominant Hessian eigenpair (largest |λ|) by ``num_iters`` steps of v ← Hv/‖Hv‖.

    Returns :class:`Eigenpairs` with k = 1: the Rayleigh quotient vᵀHv (signed), the unit
    vector, and ‖Hv − λv‖. Converges at rate |λ₂/λ₁| per step; when the most negative
    eigenvalue is largest in modulus it finds that one (use :func:`top_hessian_eigenpairs` for the
    top of the spectrum).

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 2.0, 8.0]) * p ** 2)
        >>> round(float(power_iteration(loss, jnp.zeros(3), num_iters=60).values[0]), 4)
        8.0
    """
    check_int("num_iters", num_iters, 1)
    return _power_at(loss, params, int(num_iters), _default_key(key))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _power_at(loss, params, num_iters, key):
    matvec, flat, unravel = flat_hvp_fn(loss, params)
    v = jax.lax.fori_loop(0, num_iters, lambda _, v: _unit(matvec(v)), _unit(_start(key, flat)))
    hv = matvec(v)
    lam = jnp.vdot(v, hv)
    return Eigenpairs(lam[None], unravel_rows(unravel, v[None]), jnp.linalg.norm(hv - lam * v)[None])
