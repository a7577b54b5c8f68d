r"""Perturbations along chosen directions, and the perturbation-strategies experiment (herrmann2022).

A member is θ + δ with δ = ε d/‖d‖ for a direction d: a Hessian eigenvector (top or
bottom of the spectrum), a Lyapunov vector of a tangent basis (most expanding or most
contracting), a random combination inside a subspace (e.g. the chaotic one), or an
isotropic random direction. ‖·‖ is L2 (‖δ‖₂ = ε) or L1 (Σ|δ_i| = ε).

:func:`strategy_distances` runs a training map from θ (the reference) and from every
θ + δ and records the distance d(t) of each member to the reference at every step: one
``lax.scan`` over time, ``vmap`` over strategies and members, only O(strategies ×
members × steps) numbers kept. For GD on a quadratic, a perturbation along the
eigenvector v_i gives exactly d(t) = ε |1 − ηλ_i|^t.

herrmann2022's five strategies (:func:`lyapunov_strategies`) order the expected
divergence: maximal chaotic (top Lyapunov vector) > chaotic (random in the span of
the vectors with positive exponent) > random > non-chaotic (random in the rest) >
maximal non-chaotic (bottom Lyapunov vector).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jax.flatten_util import ravel_pytree

from gdchaos.analyses.curvature.eigen import bottom_hessian_eigenpairs, top_hessian_eigenpairs
from gdchaos.core.errors import check, check_int
from gdchaos.core.maps import TrainingMap
from gdchaos.core.perturb import DISTANCES, require_resolvable
from gdchaos.core.tree import PyTree, ravel_rows, tree_l1_norm, tree_l2_norm, unravel_rows

Params = PyTree

NORMS = ("l2", "l1")
STRATEGIES = ("max_chaotic", "chaotic", "random", "nonchaotic", "max_nonchaotic")


def _check_norm(norm: str) -> None:
    check(norm in NORMS, f"norm must be one of {list(NORMS)}; got {norm!r}")


def tree_norm(tree: PyTree, norm: str = "l2") -> jax.Array:
    """‖tree‖ over all leaves: ``"l2"`` (√Σx²) or ``"l1"`` (Σ|x|)."""
    _check_norm(norm)
    return _tree_norm(tree, norm)


_TREE_NORMS = {"l2": tree_l2_norm, "l1": tree_l1_norm}


@functools.partial(jax.jit, static_argnums=1)
def _tree_norm(tree, norm):
    return _TREE_NORMS[norm](tree)


def scale_to_norm(direction: Params, eps: ArrayLike, norm: str = "l2") -> Params:
    """ε d / ‖d‖ for one direction pytree (a zero direction stays zero).

    Example:
        >>> import jax.numpy as jnp
        >>> scale_to_norm({"w": jnp.array([3.0, -1.0])}, 2.0, norm="l1")["w"].tolist()
        [1.5, -0.5]
    """
    _check_norm(norm)
    return _scale(direction, eps, norm)


@functools.partial(jax.jit, static_argnums=2)
def _scale(direction, eps, norm):
    size = _tree_norm(direction, norm)
    scale = jnp.where(size > 0, eps / jnp.where(size > 0, size, 1), 0)
    return jax.tree.map(lambda d: (scale * d).astype(d.dtype), direction)


def perturb_along(params: Params, directions: Params, eps: ArrayLike, *, norm: str = "l2") -> Params:
    """Members θ + ε d_i/‖d_i‖, one per row of ``directions`` (pytree shaped like ``params`` with a leading axis).

    Returns a pytree with the same leading axis. ``eps`` may be traced; a concrete ``eps``
    too small for the parameters' dtype raises :class:`~gdchaos.core.errors.PrecisionError`.

    Example:
        >>> import jax.numpy as jnp
        >>> members = perturb_along(jnp.zeros(2), jnp.array([[2.0, 0.0], [1.0, 1.0]]), 0.1)
        >>> [[round(float(v), 4) for v in row] for row in members]
        [[0.1, 0.0], [0.0707, 0.0707]]
    """
    _check_norm(norm)
    require_resolvable(eps, params)
    return _perturb(params, directions, eps, norm)


@functools.partial(jax.jit, static_argnums=3)
def _perturb(params, directions, eps, norm):
    def one(d):
        return jax.tree.map(lambda p, s: p + s, params, _scale(d, eps, norm))

    return jax.vmap(one)(directions)


def random_directions(key: jax.Array, params: Params, k: int) -> Params:
    """k isotropic Gaussian directions shaped like ``params`` (leading axis k; scale them with :func:`perturb_along`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> random_directions(jax.random.key(0), {"w": jnp.zeros((2, 3))}, 4)["w"].shape
        (4, 2, 3)
    """
    return _random_directions(key, params, check_int("k", k, 1))


@functools.partial(jax.jit, static_argnums=2)
def _random_directions(key, params, k):
    flat, unravel = ravel_pytree(params)
    return jax.vmap(unravel)(jax.random.normal(key, (k, flat.size), flat.dtype))


def hessian_directions(
    loss: Callable[[Params], jax.Array],
    params: Params,
    k: int = 1,
    *,
    which: str = "top",
    num_iters: int | None = None,
    key: jax.Array | None = None,
) -> Params:
    """The k top (largest λ first) or bottom (smallest first) Hessian eigenvectors by Lanczos, leading axis k.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 5.0, 2.0]) * p ** 2)
        >>> d = hessian_directions(loss, jnp.zeros(3), 1, num_iters=3)
        >>> [round(abs(float(v)), 4) for v in d[0]]
        [0.0, 1.0, 0.0]
    """
    check(which in ("top", "bottom"), f"which must be 'top' or 'bottom'; got {which!r}")
    eigenpairs = top_hessian_eigenpairs if which == "top" else bottom_hessian_eigenpairs
    return eigenpairs(loss, params, k, num_iters=num_iters, key=key).vectors


def _params_part(basis):
    """The parameter part of a tangent basis (accepts a LyapunovState, a TrainState-shaped basis or params)."""
    basis = basis.basis if hasattr(basis, "basis") and hasattr(basis, "log_stretch") else basis
    return basis.params if hasattr(basis, "params") else basis


def lyapunov_directions(basis: Any, k: int = 1, *, which: str = "top") -> Params:
    r"""Rows of a tangent basis: the first k (``"top"``, most expanding first) or the last k (``"bottom"``).

    ``"bottom"`` returns the most contracting vector first.

    ``basis``: the tangent vectors of a :func:`gdchaos.analyses.lyapunov.tangent_map` state
    (``lstate`` or ``lstate.basis``; for a training map its ``params`` part is taken), rows in QR order,
    i.e. by descending exponent once converged. ``"bottom"`` is meaningful for a full
    basis (k = dimension).

    Example:
        >>> import jax.numpy as jnp
        >>> basis = jnp.eye(3)
        >>> lyapunov_directions(basis, 2, which="bottom").tolist()
        [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    check(which in ("top", "bottom"), f"which must be 'top' or 'bottom'; got {which!r}")
    basis = _params_part(basis)
    rows = jax.tree.leaves(basis)[0].shape[0]
    k = check_int("k", k, 1, rows, "the number of basis vectors")
    idx = np.arange(k) if which == "top" else np.arange(rows - 1, rows - 1 - k, -1)
    return jax.tree.map(lambda b: b[idx], basis)


def subspace_directions(key: jax.Array, vectors: Params, mask: ArrayLike, k: int) -> Params:
    r"""k random directions in the span of the rows of ``vectors`` selected by ``mask``: Σ_i c_i v_i, c_i ~ N(0, 1).

    Zero if no row is selected. Use the rows of a Lyapunov basis with positive exponents
    for the chaotic subspace, or a :class:`gdchaos.analyses.curvature.Subspace` (``vectors``, ``mask``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> d = subspace_directions(jax.random.key(0), jnp.eye(3), jnp.array([True, False, True]), 2)
        >>> d.shape, d[:, 1].tolist()
        ((2, 3), [0.0, 0.0])
    """
    return _subspace_directions(key, _params_part(vectors), mask, check_int("k", k, 1))


@functools.partial(jax.jit, static_argnums=3)
def _subspace_directions(key, vectors, mask, k):
    rows = ravel_rows(vectors)
    _, unravel = ravel_pytree(jax.tree.map(lambda v: v[0], vectors))
    coef = jax.random.normal(key, (k, rows.shape[0]), rows.dtype) * jnp.asarray(mask, rows.dtype)
    return unravel_rows(unravel, coef @ rows)


def lyapunov_strategies(
    key: jax.Array, basis: Any, exponents: ArrayLike, members: int = 2, *, params_like: Params | None = None
) -> dict[str, Params]:
    r"""herrmann2022's five perturbation strategies from a (full) tangent basis and its exponents.

    Returns ``{strategy: directions}`` with ``members`` directions each (leading axis):
    ``max_chaotic`` (the top Lyapunov vector, alternating sign ±), ``chaotic`` (random in
    the span of the vectors with exponent > 0), ``random`` (isotropic), ``nonchaotic``
    (random in the span of those with exponent ≤ 0), ``max_nonchaotic`` (the bottom
    vector, ±). Rows of ``basis`` must be in the order of ``exponents``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = lyapunov_strategies(jax.random.key(0), jnp.eye(3), jnp.array([0.5, -0.1, -1.0]), members=2)
        >>> (s["max_chaotic"] + 0.0).tolist(), s["nonchaotic"][:, 0].tolist()  # + 0.0: no -0.0
        ([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]], [0.0, 0.0])
    """
    members = check_int("members", members, 1)
    basis = _params_part(basis)
    lam = jnp.asarray(exponents)
    rows = jax.tree.leaves(basis)[0].shape[0]
    check(lam.shape == (rows,), f"exponents must have one entry per basis row ({rows}); got shape {lam.shape}")
    sign = jnp.where(jnp.arange(members) % 2 == 0, 1.0, -1.0)

    def signed(row):
        return jax.tree.map(lambda b: sign.reshape((-1,) + (1,) * (b.ndim - 1)).astype(b.dtype) * b[row][None], basis)

    k_chaos, k_rand, k_non = jax.random.split(key, 3)
    like = jax.tree.map(lambda b: b[0], basis) if params_like is None else params_like
    return {
        "max_chaotic": signed(0),
        "chaotic": subspace_directions(k_chaos, basis, lam > 0, members),
        "random": random_directions(k_rand, like, members),
        "nonchaotic": subspace_directions(k_non, basis, lam <= 0, members),
        "max_nonchaotic": signed(rows - 1),
    }


def strategy_distances(
    tmap: TrainingMap,
    params: Params,
    directions: Mapping[str, Params],
    eps: ArrayLike,
    hyper: dict,
    steps: int,
    *,
    norm: str = "l2",
    distance: str = "l2",
    key: jax.Array | None = None,
) -> dict[str, jax.Array]:
    r"""Distance curves d(t) = ‖θ_t(θ + δ) − θ_t(θ)‖ of each perturbation strategy, t = 0..steps.

    Args:
        tmap: any training map (``init(params, key)``, ``step(state, hyper)``; states
            have ``.params``).
        params: the reference initial parameters θ.
        directions: ``{strategy: pytree with a leading member axis}``; every strategy has
            the same number of members M.
        eps: perturbation size ‖δ‖ (``norm``: ``"l2"`` or ``"l1"``).
        hyper: the step hyperparameters (e.g. ``{"learning_rate": 1.0}``).
        steps: number of updates.
        distance: ``"l2"`` or ``"l1"`` (:data:`gdchaos.core.perturb.DISTANCES`).
        key: the state key shared by the reference and every member (same mini-batches
            for SGD); default ``jax.random.key(0)``.

    Returns:
        ``{strategy: (M, steps + 1) array}``; column 0 is ε (in ``norm`` = ``distance``).

    Example (GD on ½ Σ a_i θ_i², perturbations along the axes: d(t) = ε|1 − ηa_i|^t):
        >>> import jax.numpy as jnp
        >>> from gdchaos.core.maps import gd
        >>> a = jnp.array([0.5, 3.0])
        >>> tmap = gd(lambda p, x, y: 0.5 * jnp.sum(a * p ** 2), jnp.zeros((1, 2)), jnp.zeros(1))
        >>> d = strategy_distances(tmap, jnp.ones(2), {"axes": jnp.eye(2)}, 0.1, {"learning_rate": 0.5}, 3)
        >>> [[round(float(v) / 0.1, 4) for v in row] for row in d["axes"]]
        [[1.0, 0.75, 0.5625, 0.4219], [1.0, 0.5, 0.25, 0.125]]
    """
    _check_norm(norm)
    require_resolvable(eps, params)
    check(distance in DISTANCES, f"distance must be one of {sorted(DISTANCES)}; got {distance!r}")
    steps = check_int("steps", steps, 1)
    check(len(directions) > 0, "directions is empty; give at least one {name: directions} entry")
    names = list(directions)
    counts = {name: jax.tree.leaves(directions[name])[0].shape[0] for name in names}
    check(
        len(set(counts.values())) == 1,
        f"every strategy needs the same number of members; got {counts} (pad or subsample to one M)",
    )
    key = jax.random.key(0) if key is None else key
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[directions[name] for name in names])
    d = jnp.moveaxis(_run_strategies(tmap, steps, norm, distance, params, stacked, eps, hyper, key), 0, -1)
    return {name: d[i] for i, name in enumerate(names)}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _run_strategies(tmap, steps, norm, distance, params, stacked, eps, hyper, key):
    """(steps + 1, S, M) distances; compiled once per training map and static options."""
    dist = DISTANCES[distance]
    members = jax.vmap(lambda d: perturb_along(params, d, eps, norm=norm))(stacked)  # (S, M, ...)

    def grid(f, in_axes=0):  # over strategies, then members
        return jax.vmap(jax.vmap(f, in_axes=in_axes), in_axes=in_axes)

    init = grid(lambda p: tmap.init(p, key))
    step = grid(lambda s: tmap.step(s, hyper)[0])
    measure = grid(lambda s, ref: dist(s.params, ref.params), in_axes=(0, None))
    ref0, states0 = tmap.init(params, key), init(members)

    def body(carry, _):
        ref, states = carry
        ref, states = tmap.step(ref, hyper)[0], step(states)
        return (ref, states), measure(states, ref)

    _, d = jax.lax.scan(body, (ref0, states0), None, length=steps)
    return jnp.concatenate([measure(states0, ref0)[None], d], axis=0)
