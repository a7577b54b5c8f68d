r"""Tangent-space Lyapunov exponents of any map (Benettin / Shimada–Nagashima).

For a map x_{t+1} = F(x_t; hyper) the tangent dynamics are δx_{t+1} = J_t δx_t with
J_t = ∂F/∂x(x_t). k orthonormal tangent vectors Q_t are pushed through J_t (one
``jax.linearize`` of the step, then ``jax.vmap`` of the linear map over the k
vectors: no N×N Jacobian is ever built) and re-orthonormalized by QR with the signs
fixed so that diag R > 0,

    J_{t+r-1} ⋯ J_t Q_t = Q_{t+r} R_t,      λ_i = lim_{T→∞} (1/T) Σ_t ln (R_t)_ii,

r = ``renorm_every``. λ_1 ≥ λ_2 ≥ … are in nats per step. This is the exact ε → 0
limit of ε-ball divergence and needs no float64 (the TPU path). k = 1 gives the
maximal exponent, k = :func:`dimension` the full spectrum.

:func:`tangent_map` turns any ``(init, step)`` pair — a gdchaos training map (GD,
SGD, momentum, Adam: the optimizer state is part of the dynamical state and its
Jacobian comes from differentiating the whole step), or a user-written
``step(x, hyper) -> (x, info)`` on any pytree — into a new ``(init, step)`` pair
whose state carries the tangent basis and the log-stretch sums.

Dynamical variables are the inexact (floating) leaves of the state, except leaves
under a ``hyperparams`` key (the learning rate that ``optax.inject_hyperparams``
stores and gdchaos overwrites every step: it has a zero Jacobian, i.e. an exponent
of −∞). Integer leaves (step counters) and PRNG keys are carried along untouched
and get no tangent.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gdchaos.core.errors import check
from gdchaos.core.tree import PyTree


class LyapunovState(NamedTuple):
    """State of a tangent (Lyapunov) map.

    Attributes:
        inner: the wrapped map's state x_t.
        basis: the k orthonormal tangent vectors, a pytree shaped like ``inner``:
            each dynamical leaf of shape ``s`` becomes an array of shape ``(k, *s)``,
            every other leaf (integers, keys, injected hyperparameters) is ``None``.
        log_stretch: ``(k,)`` Σ ln (R)_ii accumulated after the transient.
        count: ``()`` int32, steps taken.
        averaged: ``()`` int32, steps covered by ``log_stretch``.
    """

    inner: Any
    basis: Any
    log_stretch: jax.Array
    count: jax.Array
    averaged: jax.Array


class LyapunovInfo(NamedTuple):
    """Per-step output of a tangent map.

    Attributes:
        inner: the wrapped map's info.
        log_stretch: ``(k,)`` this step's ln (R)_ii: zero between renormalizations
            and during the transient; at a renormalization it covers the last
            ``renorm_every`` steps.
    """

    inner: Any
    log_stretch: jax.Array


class TangentMap(NamedTuple):
    """``init(x, key=None) -> LyapunovState``, ``step(state, hyper) -> (state, LyapunovInfo)``."""

    init: Callable
    step: Callable


class LyapunovSpectrum(NamedTuple):
    """Result of :func:`lyapunov_spectrum`.

    Attributes:
        exponents: ``(k,)`` exponents in nat/step, sorted descending.
        ftle: ``(steps, k)`` finite-time estimates after each step, Σ_{s≤t} ln R_ii / (steps
            averaged), columns in the order of ``exponents`` (``ftle[-1] == exponents``);
            NaN before the first averaged step.
    """

    exponents: jax.Array
    ftle: jax.Array


# --------------------------------------------------------------------------- state split


def _path_names(path) -> list[str]:
    return [str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", "")))) for p in path]


def default_dynamical(path: tuple, leaf: Any) -> bool:
    """Inexact leaves that are not injected optimizer hyperparameters."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        dtype = jnp.asarray(leaf).dtype
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return False
    return bool(jnp.issubdtype(dtype, jnp.inexact)) and "hyperparams" not in _path_names(path)


class _Split(NamedTuple):
    dyn: list  # dynamical leaves, flatten order
    leaves: list  # all leaves
    treedef: Any
    mask: tuple  # True where dynamical


def _split(tree, dynamical) -> _Split:
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    mask = tuple(bool(dynamical(path, leaf)) for path, leaf in flat)
    leaves = [leaf for _, leaf in flat]
    return _Split([l for l, m in zip(leaves, mask) if m], leaves, treedef, mask)


def _merge(split: _Split, dyn) -> Any:
    """``split``'s tree with its dynamical leaves replaced by ``dyn`` (others kept, or None if ``split.leaves`` is None)."""
    it = iter(dyn)
    fill = split.leaves or [None] * len(split.mask)
    return jax.tree.unflatten(split.treedef, [next(it) if m else l for l, m in zip(fill, split.mask)])


def dimension(x: ArrayLike, dynamical: Callable = default_dynamical) -> int:
    """Number of dynamical scalar variables of state ``x`` (the size of the full spectrum).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> dimension({"w": jnp.ones((2, 3)), "step": jnp.int32(0), "key": jax.random.key(0)})
        6
    """
    return sum(int(np.size(l)) for l in _split(x, dynamical).dyn)


# --------------------------------------------------------------------------- linear algebra


def _to_matrix(vectors, k):
    return jnp.concatenate([v.reshape(k, -1) for v in vectors], axis=1)  # (k, n)


def _from_matrix(m, like):
    out, start = [], 0
    for v in like:
        size = int(np.prod(v.shape[1:], dtype=int))
        out.append(m[:, start : start + size].reshape(v.shape).astype(v.dtype))
        start += size
    return out


def _orthonormalize(m):
    """Rows of ``m`` (k, n) → orthonormal rows Q and ln (R)_ii with R's diagonal made ≥ 0."""
    if m.shape[0] == 1:
        r = jnp.sqrt(jnp.sum(jnp.abs(m) ** 2))
        return m / jnp.where(r > 0, r, 1).astype(m.dtype), jnp.log(r)[None]
    q, r = jnp.linalg.qr(m.T)
    d = jnp.diagonal(r)
    ad = jnp.abs(d)
    phase = jnp.where(ad > 0, d / jnp.where(ad > 0, ad, 1).astype(d.dtype), 1).astype(q.dtype)
    return (q * phase).T, jnp.log(ad)


# --------------------------------------------------------------------------- the transformation


def tangent_map(
    step: Callable,
    k: int,
    *,
    renorm_every: int = 1,
    transient: int = 0,
    dynamical: Callable = default_dynamical,
) -> TangentMap:
    r"""Wrap ``step(x, hyper) -> (x, info)`` into a map that also evolves k tangent vectors.

    One step of the new map: x_{t+1} = F(x_t), V = J_t Q_t (``jax.linearize`` once,
    ``vmap`` of the linear map over the k vectors), and every ``renorm_every`` steps
    V = Q_{t+1} R (QR, diag R > 0), adding ln R_ii to ``log_stretch`` once the
    renormalization block starts at or after ``transient`` (before that the basis
    still aligns with the leading Lyapunov vectors but nothing is averaged).
    :func:`exponents` divides by the number of averaged steps.

    Args:
        step: any pure map (a ``TrainingMap.step`` or a user function); x is any pytree.
        k: number of exponents (1: maximal; :func:`dimension` of the state: full spectrum).
        renorm_every: QR interval in steps. Under ``vmap`` both branches of the
            renormalization test run, so larger intervals save time only unbatched.
        transient: steps discarded before log-stretches are averaged.
        dynamical: ``dynamical(path, leaf) -> bool`` picks the variables that get tangents
            (default :func:`default_dynamical`).

    Returns:
        A :class:`TangentMap`: ``init(x, key=None)`` draws a random orthonormal basis
        (``key`` defaults to ``jax.random.key(0)``); ``step(state, hyper)`` returns
        ``(LyapunovState, LyapunovInfo)``.

    Example (the logistic map at r = 4 has λ = ln 2):
        >>> import jax, jax.numpy as jnp
        >>> logistic = lambda x, hyper: (hyper["r"] * x * (1 - x), None)
        >>> lmap = tangent_map(logistic, k=1, transient=100)
        >>> state = lmap.init(jnp.asarray(0.3141))
        >>> state, info = jax.lax.scan(lambda s, _: lmap.step(s, {"r": 4.0}), state, None, length=20100)
        >>> info.log_stretch.shape, int(state.averaged)
        ((20100, 1), 20000)
        >>> bool(abs(exponents(state)[0] - jnp.log(2.0)) < 0.02)
        True
    """
    check(isinstance(k, (int, np.integer)) and k >= 1, f"k must be an integer >= 1; got {k!r}")
    check(renorm_every >= 1, f"renorm_every must be >= 1; got {renorm_every}")
    check(transient >= 0, f"transient must be >= 0; got {transient}")
    k, renorm_every, transient = int(k), int(renorm_every), int(transient)
    # the first renormalization block that starts at or after the transient
    first_block = -(-transient // renorm_every)

    def init(x, key=None) -> LyapunovState:
        split = _split(x, dynamical)
        n = sum(int(np.size(l)) for l in split.dyn)
        check(n > 0, "the state has no floating (dynamical) variables; give x with float leaves")
        check(k <= n, f"k={k} exceeds the number of dynamical variables ({n}); use k <= {n}")
        key = jax.random.key(0) if key is None else key
        dtype = jnp.result_type(*[jnp.asarray(l).dtype for l in split.dyn])
        q, _ = _orthonormalize(jax.random.normal(key, (k, n), dtype))
        like = [jnp.zeros((k,) + jnp.shape(l), jnp.asarray(l).dtype) for l in split.dyn]
        basis = _merge(split._replace(leaves=None), _from_matrix(q, like))
        zero = jnp.zeros((), jnp.int32)
        return LyapunovState(x, basis, jnp.zeros(k, dtype), zero, zero)

    def lyap_step(state: LyapunovState, hyper) -> tuple[LyapunovState, LyapunovInfo]:
        split = _split(state.inner, dynamical)

        def advance(dyn):
            new, info = step(_merge(split, dyn), hyper)
            new_split = _split(new, dynamical)
            check(
                new_split.treedef == split.treedef and new_split.mask == split.mask,
                "step must return a state with the same structure and dtypes as its input; "
                f"got {new_split.treedef} from {split.treedef}",
            )
            return new_split.dyn, (new, info)

        _, push, (new_inner, info) = jax.linearize(advance, split.dyn, has_aux=True)
        vectors = jax.tree.leaves(state.basis)
        pushed = jax.vmap(push)(vectors)
        m = _to_matrix(pushed, k)
        count = state.count + 1
        if renorm_every == 1:
            do_qr = jnp.asarray(True)
            q, logs = _orthonormalize(m)
        else:
            do_qr = count % renorm_every == 0
            q, logs = jax.lax.cond(do_qr, _orthonormalize, lambda a: (a, jnp.zeros(k, a.dtype)), m)
        use = do_qr & (count // renorm_every > first_block)  # block started at count − r ≥ transient
        logs = jnp.where(use, logs, 0).astype(state.log_stretch.dtype)
        new_state = LyapunovState(
            inner=new_inner,
            basis=jax.tree.unflatten(jax.tree.structure(state.basis), _from_matrix(q, vectors)),
            log_stretch=state.log_stretch + logs,
            count=count,
            averaged=state.averaged + jnp.where(use, renorm_every, 0).astype(state.averaged.dtype),
        )
        return new_state, LyapunovInfo(info, logs)

    return TangentMap(init, lyap_step)


def exponents(state: LyapunovState, transient: int | None = None) -> jax.Array:
    """Lyapunov exponents (nat/step) of a tangent-map state, in QR order: Σ ln R_ii / steps averaged.

    NaN when no step has been averaged yet. ``transient`` is not needed (the state
    counts the steps it averaged) and is accepted only for compatibility.
    """
    del transient
    n = state.averaged.astype(state.log_stretch.dtype)
    return jnp.where(n > 0, state.log_stretch / jnp.maximum(n, 1), jnp.nan)


def running_exponents(log_stretch: ArrayLike, transient: int = 0, renorm_every: int = 1, axis: int = 0) -> jax.Array | np.ndarray:
    """Finite-time exponents after each step from per-step log-stretches (``LyapunovInfo.log_stretch``).

    ``log_stretch`` has time on ``axis``; the estimate after step t is the sum so far
    divided by the steps averaged by then, r·max(⌊(t+1)/r⌋ − ⌈transient/r⌉, 0) with
    r = ``renorm_every`` (NaN while zero). Works on NumPy (host) and JAX arrays.

    Example:
        >>> import numpy as np
        >>> running_exponents(np.array([0.0, 0.0, 1.0, 3.0]), transient=2).tolist()
        [nan, nan, 1.0, 2.0]
    """
    xp = jnp if isinstance(log_stretch, jax.Array) else np
    log_stretch = xp.asarray(log_stretch)
    t = np.arange(1, log_stretch.shape[axis] + 1)
    n = renorm_every * np.maximum(t // renorm_every - (-(-transient // renorm_every)), 0)
    shape = [1] * log_stretch.ndim
    shape[axis] = -1
    n = xp.asarray(n.reshape(shape), log_stretch.dtype)
    total = xp.cumsum(log_stretch, axis=axis)
    return xp.where(n > 0, total / xp.maximum(n, 1), xp.nan)


def lyapunov_spectrum(
    step: Callable,
    x0: PyTree,
    hyper: Any,
    steps: int,
    k: int,
    *,
    transient: int = 0,
    renorm_every: int = 1,
    key: jax.Array | None = None,
    dynamical: Callable = default_dynamical,
) -> LyapunovSpectrum:
    r"""Top-k Lyapunov exponents of ``step`` from ``x0``: ``steps`` steps (``lax.scan``), the first ``transient`` discarded.

    Runs :func:`tangent_map` and returns a :class:`LyapunovSpectrum` ``(exponents,
    ftle)``: the exponents (k,) sorted descending and the finite-time estimate after
    every step (steps, k). Jit it with ``step``, ``steps``, ``k`` and the options static.

    Example (a linear map has exponents ln|eigenvalues|):
        >>> import jax, jax.numpy as jnp
        >>> m = jnp.array([[0.5, 1.0], [0.0, 2.0]])
        >>> linear = lambda x, hyper: (m @ x, None)
        >>> lam, ftle = lyapunov_spectrum(linear, jnp.ones(2), None, 1000, k=2, transient=50)
        >>> [round(float(v), 3) for v in lam], ftle.shape
        ([0.693, -0.693], (1000, 2))
        >>> fast = jax.jit(lyapunov_spectrum, static_argnums=(0, 3, 4))
        >>> [round(float(v), 3) for v in fast(linear, jnp.ones(2), None, 1000, 2).exponents]
        [0.693, -0.693]
    """
    lmap = tangent_map(step, k, renorm_every=renorm_every, transient=transient, dynamical=dynamical)

    def body(state, _):
        state, info = lmap.step(state, hyper)
        return state, info.log_stretch

    state, log_stretch = jax.lax.scan(body, lmap.init(x0, key), None, length=steps)
    ftle = running_exponents(log_stretch, transient, renorm_every, axis=0)
    lam = exponents(state)
    order = jnp.argsort(-lam)
    return LyapunovSpectrum(lam[order], ftle[:, order])
