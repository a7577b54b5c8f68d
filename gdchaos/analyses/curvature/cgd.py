r"""Chaotic gradient descent (CGD, herrmann2022): prune chosen Hessian eigen-directions from the update.

With Hessian eigenpairs (λ_i, v_i) of the full-batch loss at θ_t and a set S of
directions to remove, the projector P = I − Σ_{i∈S} v_i v_iᵀ is applied to the
incoming update u (the gradient, when :func:`cgd` comes first in a chain):

    u ↦ P u,          so for SGD    θ_{t+1} = θ_t − η P ∇L(θ_t).

S is chosen by ``which`` (:func:`gdchaos.analyses.curvature.along.select_directions`):

- ``"chaotic"``: λ_i < −tol or λ_i > 2/η (local exponent ln|1 − ηλ_i| > 0; flat directions,
  |λ_i| ≤ tol, are not removed: their gradient component vanishes anyway, see
  :func:`gdchaos.analyses.lyapunov.local.direction_classes`);
- ``"positive"``: λ_i > 0;  ``"negative"``: λ_i < 0;

all of them, or only the k with the largest |ln|1 − ηλ_i|| (chaotic) or |λ_i|. The
Jacobian of the pruned GD map is I − η P H (P held fixed: it is not differentiated),
which has eigenvalue 1 (exponent 0) along every removed v_i and 1 − ηλ_i along the
kept ones, so no locally chaotic direction survives (herrmann2022 Theorem A.7).

The directions are recomputed from ``loss(params)`` every ``every`` updates
(``every = 1``: each update, nothing stored; otherwise the state keeps them) from the
explicit Hessian (``method="full"``, all N directions, small models) or from the k
smallest and k largest Lanczos pairs (``"lanczos"``). The state is a pytree, so the
transformation jits and vmaps over an ensemble.

Use it directly, ``optax.chain(cgd(loss, eta=η), optax.sgd(η))``, or as a gdchaos
training map with η swept through ``hyper``: :func:`cgd_optimizer` makes an optax-alias
factory for :func:`gdchaos.core.maps.from_optax`, and :func:`cgd_map` builds the map.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
import optax
from jax.flatten_util import ravel_pytree

from gdchaos.analyses.curvature.along import select_directions
from gdchaos.analyses.curvature.eigen import ascending_eigenpairs_flat, default_num_iters, resolve_method
from gdchaos.analyses.lyapunov.tangent import default_dynamical
from gdchaos.core.errors import check, check_int, check_positive
from gdchaos.core.maps import TrainingMap, from_optax
from gdchaos.core.tree import PyTree, count_params

Params = PyTree

CGD_WHICH = ("chaotic", "positive", "negative")


class CGDState(NamedTuple):
    """State of :func:`cgd`.

    Attributes:
        count: ``()`` int32, updates seen.
        cgd_vectors: ``(K, N)`` flat eigenvectors (rows, ``ravel_pytree`` order) from the last
            recomputation, or ``None`` when ``every == 1``.
        cgd_mask: ``(K,)`` bool, the rows removed from updates, or ``None`` when ``every == 1``.
    """

    count: jax.Array
    cgd_vectors: Any
    cgd_mask: Any


def _build(loss, eta, which, k, every, method, num_iters, seed, rtol) -> optax.GradientTransformation:
    def directions(params, count):
        n = count_params(params)
        params = jax.lax.stop_gradient(params)  # P is held fixed in the tangent map
        key = jax.random.fold_in(jax.random.key(seed), count)
        values, vecs, _, _ = ascending_eigenpairs_flat(loss, params, k, method=method, num_iters=num_iters, key=key)
        return vecs, select_directions(values, which, eta, k, n=n, rtol=rtol)

    def stored_size(n):
        if resolve_method(method, n) == "full":
            return n
        m = default_num_iters(n, k) if num_iters is None else num_iters
        return len(set(range(k)) | set(range(m - k, m)))

    def init(params):
        n = count_params(params)
        if k is not None:
            check_int("k", k, 1, n)
        zero = jnp.zeros((), jnp.int32)
        if every == 1:
            return CGDState(zero, None, None)
        flat, _ = ravel_pytree(params)
        size = stored_size(n)
        return CGDState(zero, jnp.zeros((size, flat.size), flat.dtype), jnp.zeros(size, bool))

    def update(updates, state, params=None):
        check(params is not None, "cgd needs the parameters: call update(updates, state, params)")
        if every == 1:
            vecs, mask = directions(params, state.count)
        else:
            vecs, mask = jax.lax.cond(
                state.count % every == 0,
                lambda: directions(params, state.count),
                lambda: (state.cgd_vectors, state.cgd_mask),
            )
        flat, unravel = ravel_pytree(updates)
        vecs = vecs.astype(flat.dtype)
        coef = jnp.where(mask, vecs @ flat, 0)
        projected = unravel(flat - vecs.T @ coef)
        count = state.count + 1
        if every == 1:
            return projected, CGDState(count, None, None)
        return projected, CGDState(count, vecs, mask)

    return optax.GradientTransformation(init, update)


def _check_options(which, k, every, method, num_iters):
    check(which in CGD_WHICH, f"which must be one of {list(CGD_WHICH)}; got {which!r}")
    if k is not None:
        check_int("k", k, 1)
    check_int("every", every, 1)
    resolve_method(method, 1)
    if method == "lanczos":
        check(k is not None, "method='lanczos' needs k (eigenpairs computed at each end of the spectrum); pass k >= 1")
    if num_iters is not None:
        check_int("num_iters", num_iters, 1)


def cgd(
    loss: Callable[[Params], jax.Array],
    *,
    eta: ArrayLike | None = None,
    which: str = "chaotic",
    k: int | None = None,
    every: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    seed: int = 0,
    rtol: float | None = None,
) -> optax.GradientTransformation:
    r"""Project updates off the Hessian eigen-directions of kind ``which`` (see the module docstring).

    Args:
        loss: ``loss(params) -> scalar``, the full-batch loss whose Hessian defines the
            directions (include any L2 term the optimizer sees).
        eta: learning rate η for ``which="chaotic"`` (the 2/η threshold and the exponent
            ranking); may be a traced array.
        which: ``"chaotic"``, ``"positive"`` or ``"negative"``.
        k: remove only the k selected directions with the largest |ln|1 − ηλ||
            (chaotic) or |λ|; ``None``: all selected. With ``method="lanczos"`` it is also
            the number of eigenpairs computed at each end of the spectrum (required).
        every: recompute the directions every ``every`` updates (in between, reuse the
            stored ones). Under ``vmap`` both branches run on every update.
        method: ``"full"`` (explicit Hessian), ``"lanczos"`` or ``"auto"`` (full up to
            :data:`~gdchaos.analyses.curvature.eigen.FULL_MAX_PARAMS` parameters).
        num_iters: Lanczos steps (default min(N, max(2k + 40, 3k))).
        seed: seed of the Lanczos start vectors (folded with the update count).
        rtol: relative zero tolerance of the eigenvalues (default N·ε).

    ``update(updates, state, params)`` needs ``params``.

    Example (H = diag(−1, 0.5, 3), η = 1: directions 0 and 2 are chaotic and removed):
        >>> import jax.numpy as jnp, optax
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([-1.0, 0.5, 3.0]) * p ** 2)
        >>> tx = optax.chain(cgd(loss, eta=1.0, which="chaotic"), optax.sgd(1.0))
        >>> params = jnp.ones(3)
        >>> updates, _ = tx.update(jnp.array([-1.0, 0.5, 3.0]), tx.init(params), params)
        >>> [round(float(u), 6) + 0.0 for u in updates]  # + 0.0 turns -0.0 into 0.0
        [0.0, -0.5, 0.0]
    """
    _check_options(which, k, every, method, num_iters)
    if which == "chaotic":
        check(eta is not None, "which='chaotic' depends on the learning rate; pass eta > 0")
        check_positive("eta", eta)
    return _build(loss, eta, which, k, every, method, num_iters, seed, rtol)


def cgd_optimizer(
    loss: Callable[[Params], jax.Array],
    *,
    which: str = "chaotic",
    k: int | None = None,
    every: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    seed: int = 0,
    rtol: float | None = None,
    base: Callable[..., optax.GradientTransformation] = optax.sgd,
) -> Callable[..., optax.GradientTransformation]:
    r"""An optax-alias-like factory ``f`` for CGD followed by the optimizer ``base``.

    ``f(learning_rate, ...) = optax.chain(cgd(loss, eta=learning_rate, ...), base(learning_rate, ...))``.

    ``f`` has the signature of ``base`` (default ``optax.sgd``), so
    ``optax.inject_hyperparams(f)`` and :func:`gdchaos.core.maps.from_optax` treat its numeric
    arguments (``learning_rate``, ``momentum``, ...) as hyperparameters settable per step
    from ``hyper``; the chaotic threshold 2/η follows the injected learning rate. The
    other arguments are those of :func:`cgd`.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from gdchaos.core.maps import from_optax
        >>> a = jnp.array([-1.0, 0.5, 3.0])
        >>> full = lambda p: 0.5 * jnp.sum(a * p ** 2)
        >>> tmap = from_optax(cgd_optimizer(full), lambda p, x, y: full(p), jnp.zeros((1, 3)), jnp.zeros(1))
        >>> state, _ = tmap.step(tmap.init(jnp.ones(3)), {"learning_rate": 1.0})
        >>> [round(float(v), 6) for v in state.params]
        [1.0, 0.5, 1.0]
    """
    _check_options(which, k, every, method, num_iters)
    signature = inspect.signature(base)
    check(
        "learning_rate" in signature.parameters,
        f"base must be an optax alias with a learning_rate argument; got {getattr(base, '__name__', base)!r}",
    )

    @functools.wraps(base)
    def factory(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        eta = bound.arguments["learning_rate"]
        check(
            not (which == "chaotic" and callable(eta)),
            "which='chaotic' needs a numeric learning_rate (the 2/η threshold); got a schedule",
        )
        pruning = _build(loss, eta, which, k, every, method, num_iters, seed, rtol)
        return optax.chain(pruning, base(*args, **kwargs))

    return factory


def cgd_map(
    loss_fn: Callable[[Params, jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    y: jax.Array,
    *,
    which: str = "chaotic",
    k: int | None = None,
    every: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    seed: int = 0,
    rtol: float | None = None,
    base: Callable[..., optax.GradientTransformation] = optax.sgd,
    batch_size: int | None = None,
    **optimizer_kwargs: Any,
) -> TrainingMap:
    r"""A training map (:func:`gdchaos.core.maps.from_optax`) whose updates are pruned by :func:`cgd`.

    The directions come from the Hessian of the full-batch data loss
    ``loss_fn(params, x, y)`` (no L2 term: for weight decay build the factory with
    :func:`cgd_optimizer` and a regularized loss). ``hyper["learning_rate"]`` sets both
    the step and the chaotic threshold. For tangent (Lyapunov) maps of a map with
    ``every > 1`` pass ``dynamical=cgd_dynamical`` to
    :func:`gdchaos.analyses.lyapunov.tangent_map`, so the stored directions are not treated as
    dynamical variables.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.array([-1.0, 0.5, 3.0])
        >>> tmap = cgd_map(lambda p, x, y: 0.5 * jnp.sum(a * p ** 2), jnp.zeros((1, 3)), jnp.zeros(1), which="negative")
        >>> state, _ = tmap.step(tmap.init(jnp.ones(3)), {"learning_rate": 0.1})
        >>> [round(float(v), 6) for v in state.params]
        [1.0, 0.95, 0.7]
    """

    def full_loss(params):
        return loss_fn(params, x, y)

    factory = cgd_optimizer(
        full_loss, which=which, k=k, every=every, method=method, num_iters=num_iters, seed=seed, rtol=rtol, base=base
    )
    return from_optax(factory, loss_fn, x, y, batch_size=batch_size, **optimizer_kwargs)


def cgd_dynamical(path: tuple, leaf: Any) -> bool:
    """``dynamical`` predicate for :func:`gdchaos.analyses.lyapunov.tangent_map`: the default, minus CGD's stored directions."""
    names = [str(getattr(p, "name", getattr(p, "key", ""))) for p in path]
    return default_dynamical(path, leaf) and "cgd_vectors" not in names
