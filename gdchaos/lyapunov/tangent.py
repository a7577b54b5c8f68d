r"""Tangent-space Lyapunov exponents of any map (Benettin / Shimada–Nagashima).

For a map x_{t+1} = F(x_t; hyper) the tangent dynamics are δx_{t+1} = J_t δx_t with
J_t = ∂F/∂x(x_t). k tangent vectors Q_t (orthonormal) are pushed through J_t with
``jax.linearize`` (one linearization, then a ``vmap`` of the linear map over the k
vectors: no N×N Jacobian is ever built) and re-orthonormalized by QR,
J_t Q_t = Q_{t+1} R_t. The exponents are

    λ_i = lim (1/T) Σ_t ln |(R_t)_ii|       (nat per step, λ_1 ≥ λ_2 ≥ ...),

the exact ε → 0 limit of ε-ball divergence; it needs no float64.

:func:`tangent_map` turns any ``(init, step)`` pair — a training map of gdchaos
(GD, SGD, momentum, Adam: the optimizer state is part of the dynamical state), or a
user-written ``step(x, hyper) -> (x, info)`` on any pytree — into a new pair whose
state carries the tangent basis and the log-stretch sums.

The dynamical variables are the inexact (floating) leaves of the state, except
leaves under a ``hyperparams`` key (optax ``inject_hyperparams`` learning rates,
which gdchaos overwrites every step). Integer counters and PRNG keys are carried
along without tangents.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from gdchaos.errors import check


class LyapunovState(NamedTuple):
    """State of a tangent (Lyapunov) map.

    Attributes:
        inner: the wrapped map's state x_t.
        basis: k orthonormal tangent vectors: a list (one entry per dynamical leaf of
            ``inner``) of arrays with a leading axis of size k.
        log_stretch: ``(k,)`` Σ ln|R_ii| accumulated after the transient.
        count: steps taken.
    """

    inner: Any
    basis: list
    log_stretch: jax.Array
    count: jax.Array


class LyapunovInfo(NamedTuple):
    """Per-step output: the wrapped map's info and this step's ln|R_ii| (zero between renormalizations)."""

    inner: Any
    log_stretch: jax.Array


class TangentMap(NamedTuple):
    """``init(x, key) -> LyapunovState``, ``step(state, hyper) -> (state, LyapunovInfo)``."""

    init: Callable
    step: Callable


def _path_names(path) -> list[str]:
    return [str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", "")))) for p in path]


def default_dynamical(path, leaf) -> bool:
    """Inexact leaves that are not injected optimizer hyperparameters."""
    return jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact) and "hyperparams" not in _path_names(path)


def _partition(tree, dynamical):
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    mask = [bool(dynamical(path, leaf)) for path, leaf in flat]
    leaves = [leaf for _, leaf in flat]
    return [l for l, m in zip(leaves, mask) if m], leaves, treedef, mask


def _merge(dyn, leaves, treedef, mask):
    it = iter(dyn)
    return jax.tree.unflatten(treedef, [next(it) if m else l for l, m in zip(leaves, mask)])


def dimension(x, dynamical: Callable = default_dynamical) -> int:
    """Number of dynamical scalar variables of state ``x`` (the full spectrum's size)."""
    return sum(int(jnp.size(l)) for l in _partition(x, dynamical)[0])


def _to_matrix(basis, k):
    return jnp.concatenate([b.reshape(k, -1) for b in basis], axis=1)  # (k, n)


def _from_matrix(m, like):
    out, start = [], 0
    for b in like:
        size = b[0].size
        out.append(m[:, start : start + size].reshape(b.shape).astype(b.dtype))
        start += size
    return out


def _orthonormalize(m):
    """QR of the (k, n) row basis: rows of Q orthonormal, ln|diag R| with Q's signs fixed."""
    q, r = jnp.linalg.qr(m.T)
    d = jnp.diagonal(r)
    sign = jnp.where(d < 0, -1.0, 1.0).astype(q.dtype)
    return (q * sign).T, jnp.log(jnp.abs(d))


def tangent_map(
    step: Callable,
    k: int,
    *,
    renorm_every: int = 1,
    transient: int = 0,
    dynamical: Callable = default_dynamical,
) -> TangentMap:
    """Wrap ``step(x, hyper) -> (x, info)`` into a map that also evolves k tangent vectors.

    Args:
        step: any pure map (a ``TrainingMap.step`` or a user function).
        k: number of exponents (1: maximal; the state dimension: full spectrum).
        renorm_every: QR re-orthonormalization interval (steps).
        transient: steps before log-stretches are accumulated (the basis still aligns).
        dynamical: ``dynamical(path, leaf) -> bool`` selects the variables with tangents.

    Example (the logistic map at r = 4 has λ = ln 2):
        >>> import jax, jax.numpy as jnp
        >>> logistic = lambda x, hyper: (hyper["r"] * x * (1 - x), None)
        >>> lmap = tangent_map(logistic, k=1, transient=100)
        >>> state = lmap.init(jnp.asarray(0.3141), jax.random.key(0))
        >>> state, _ = jax.lax.scan(lambda s, _: lmap.step(s, {"r": 4.0}), state, None, length=20100)
        >>> bool(abs(exponents(state, transient=100)[0] - jnp.log(2.0)) < 0.02)
        True
    """
    check(k >= 1, f"k must be >= 1; got {k}")
    check(renorm_every >= 1, f"renorm_every must be >= 1; got {renorm_every}")
    check(transient >= 0, f"transient must be >= 0; got {transient}")

    def init(x, key=None) -> LyapunovState:
        dyn = _partition(x, dynamical)[0]
        n = sum(int(l.size) for l in dyn)
        check(n > 0, "the state has no floating (dynamical) variables")
        check(k <= n, f"k={k} exceeds the number of dynamical variables ({n}); use k <= {n}")
        key = jax.random.key(0) if key is None else key
        dtype = jnp.result_type(*[l.dtype for l in dyn])
        raw = jax.random.normal(key, (k, n), dtype)
        q, _ = _orthonormalize(raw)
        like = [jnp.zeros((k,) + l.shape, l.dtype) for l in dyn]
        return LyapunovState(x, _from_matrix(q, like), jnp.zeros(k, dtype), jnp.zeros((), jnp.int32))

    def lyap_step(state: LyapunovState, hyper) -> tuple[LyapunovState, LyapunovInfo]:
        dyn, leaves, treedef, mask = _partition(state.inner, dynamical)

        def advance(d):
            new, info = step(_merge(d, leaves, treedef, mask), hyper)
            return _partition(new, dynamical)[0], (new, info)

        _, push, (new_inner, info) = jax.linearize(advance, dyn, has_aux=True)
        pushed = jax.vmap(push)(state.basis)
        m = _to_matrix(pushed, k)
        do_qr = (state.count + 1) % renorm_every == 0
        q, logs = jax.lax.cond(do_qr, _orthonormalize, lambda a: (a, jnp.zeros(k, a.dtype)), m)
        logs = jnp.where(state.count >= transient, logs, 0.0).astype(state.log_stretch.dtype)
        new_state = LyapunovState(new_inner, _from_matrix(q, state.basis), state.log_stretch + logs, state.count + 1)
        return new_state, LyapunovInfo(info, logs)

    return TangentMap(init, lyap_step)


def exponents(state: LyapunovState, transient: int = 0) -> jax.Array:
    """Lyapunov exponents (nat/step) from a tangent-map state: Σ ln|R_ii| / (steps − transient)."""
    n = jnp.maximum(state.count - transient, 1)
    return state.log_stretch / n.astype(state.log_stretch.dtype)


def lyapunov_spectrum(
    step: Callable,
    x0,
    hyper,
    steps: int,
    k: int,
    *,
    key=None,
    transient: int = 0,
    renorm_every: int = 1,
    dynamical: Callable = default_dynamical,
):
    """Top-k Lyapunov exponents of ``step`` from ``x0`` over ``steps`` steps (after ``transient``).

    Returns ``(exponents (k,), log_stretch (steps, k))``; the running finite-time
    estimate at step t is ``cumsum(log_stretch)[t] / (t + 1 − transient)``.

    Example (a linear map has exponents ln|eigenvalues|):
        >>> import jax.numpy as jnp
        >>> m = jnp.array([[2.0, 1.0], [0.0, 0.5]])
        >>> lam, _ = lyapunov_spectrum(lambda x, h: (m @ x, None), jnp.ones(2), None, 1000, k=2, transient=50)
        >>> [round(float(v), 3) for v in lam]
        [0.693, -0.693]
    """
    lmap = tangent_map(step, k, renorm_every=renorm_every, transient=transient, dynamical=dynamical)
    state = lmap.init(x0, key)
    state, info = jax.lax.scan(lambda s, _: lmap.step(s, hyper), state, None, length=steps)
    return exponents(state, transient), info.log_stretch
