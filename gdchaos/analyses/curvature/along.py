r"""Curvature diagnostics along training: sharpness, chaotic counts, gradient overlaps, subspace overlaps.

At parameters θ and learning rate η, with Hessian eigenpairs (λ_i, v_i) and gradient g:

- sharpness: λ_max (compare with the GD stability limit 2/η, the edge of stability);
- counts (:func:`gdchaos.analyses.lyapunov.local.direction_classes`), with the flat tolerance
  tol = rtol·max|λ| (default rtol = N·ε, the roundoff of ``eigh``): flat |λ_i| ≤ tol,
  locally chaotic λ_i < −tol or λ_i > 2/η (a positive local exponent ln|1 − ηλ_i| > 0,
  herrmann2022 A.7; λ_i = 2/η exactly, exponent 0, is not chaotic), positive λ_i > tol
  and negative λ_i < −tol;
- gradient overlaps |cos(g, v_i)| = |gᵀv_i| / ‖g‖ with the top and bottom eigenvectors;
- the overlap of two subspaces V, W (orthonormal bases as rows; herrmann2022 A.11),

      overlap(V, W) = ‖V Wᵀ‖_F² / min(dim V, dim W) ∈ [0, 1],

  1 when one contains the other, 0 when orthogonal. Two independent uniformly random
  subspaces of ℝᴺ have E ‖V Wᵀ‖_F² = dim V · dim W / N, so the random baseline is
  max(dim V, dim W) / N.

Small models use the full spectrum (explicit Hessian, exact counts); large ones use
the k smallest and k largest Lanczos pairs, over which the counts are taken (lower
bounds, exact when fewer than k eigenvalues lie beyond each threshold).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jax.flatten_util import ravel_pytree

from gdchaos.analyses.curvature.eigen import ascending_eigenpairs_flat, resolve_method, top_hessian_eigenpairs
from gdchaos.analyses.lyapunov.local import check_rtol, classify, flat_tolerance, gd_local_exponents, is_flat, spectrum_count
from gdchaos.core.errors import check, check_int, check_positive
from gdchaos.core.tree import PyTree, count_params, ravel_rows, unravel_rows

Params = PyTree

WHICH = ("chaotic", "nonchaotic", "stable", "flat", "positive", "negative")
ETA_KINDS = ("chaotic", "nonchaotic", "stable")  # kinds that depend on the 2/η threshold


class CurvatureInfo(NamedTuple):
    """Curvature at θ for GD at learning rate η.

    Attributes:
        top: ``(k,)`` largest Hessian eigenvalues, descending (``top[0]`` is the sharpness).
        bottom: ``(k,)`` smallest eigenvalues, ascending.
        n_positive: number of λ_i > tol.
        n_negative: number of λ_i < −tol.
        n_chaotic: number of locally chaotic λ_i: λ_i < −tol or λ_i > 2/η (exponent > 0).
        n_flat: number of flat λ_i: |λ_i| ≤ tol.
        overlap_top: ``(k,)`` |cos(∇L, v_i)| for the eigenvectors of ``top``.
        overlap_bottom: ``(k,)`` the same for ``bottom``.
        mean_overlap_positive: mean |cos(∇L, v_i)| over eigenvectors with λ_i > 0 (NaN if none).
        mean_overlap_negative: the same over λ_i < 0.
        grad_norm: ‖∇L‖₂.
        finite: the eigenvalues are finite; where not (NaN or inf parameters or curvature),
            every count is −1 and the eigenvalues NaN, never a count taken from NaN.

    tol = rtol·max|λ| (default rtol = N·ε). Counts and means run over all N eigenpairs
    (``method="full"``: n_positive + n_negative + n_flat = N) or over the 2k computed
    extreme ones (``"lanczos"``: lower bounds). Overlaps are NaN where ∇L = 0.
    """

    top: jax.Array
    bottom: jax.Array
    n_positive: jax.Array
    n_negative: jax.Array
    n_chaotic: jax.Array
    n_flat: jax.Array
    overlap_top: jax.Array
    overlap_bottom: jax.Array
    mean_overlap_positive: jax.Array
    mean_overlap_negative: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


class Subspace(NamedTuple):
    """A subspace given by some rows of an orthonormal basis.

    Attributes:
        vectors: pytree shaped like the parameters with a leading K axis (orthonormal rows).
        mask: ``(K,)`` bool, the rows that span the subspace; its dimension is ``mask.sum()``.
    """

    vectors: Any
    mask: jax.Array


def select_directions(
    eigenvalues: ArrayLike,
    which: str,
    eta: ArrayLike | None = None,
    k: int | None = None,
    *,
    n: int | None = None,
    rtol: float | None = None,
) -> jax.Array:
    r"""Boolean mask of the Hessian eigenvalues of kind ``which``, optionally only the k strongest.

    With tol = ``rtol``·max|λ| (default rtol = n·ε, the roundoff of ``eigh``, with n the
    number of parameters, by default the number of eigenvalues given), ``which`` is
    ``"chaotic"`` (λ < −tol or λ > 2/η: ln|1 − ηλ| > 0), ``"flat"`` (|λ| ≤ tol),
    ``"stable"`` (tol < λ ≤ 2/η), ``"nonchaotic"`` (flat or stable, the complement of
    chaotic: herrmann2022's V_non-chaotic), ``"positive"`` (λ > tol) or ``"negative"``
    (λ < −tol). With ``k``, only the k selected with the largest |ln|1 − ηλ|| (chaotic,
    nonchaotic, stable) or |λ| (flat, positive, negative) stay selected.

    Example:
        >>> import jax.numpy as jnp
        >>> lam = jnp.array([-1.0, 0.5, 1.0, 4.0])
        >>> select_directions(lam, "chaotic", eta=1.0).tolist()
        [True, False, False, True]
        >>> select_directions(lam, "chaotic", eta=1.0, k=1).tolist()  # ln|1 - 4| > ln|1 + 1|
        [False, False, False, True]
        >>> select_directions(jnp.array([0.0, 1.0, 2.0]), "stable", eta=1.0).tolist()  # 0 is flat; 2 = 2/η
        [False, True, True]
    """
    check(which in WHICH, f"which must be one of {list(WHICH)}; got {which!r}")
    lam = jnp.asarray(eigenvalues)
    if which in ETA_KINDS:
        check(eta is not None, f"which={which!r} depends on the learning rate; pass eta > 0")
        check_positive("eta", eta)
    if k is not None:
        k = check_int("k", k, 1, lam.shape[-1], "the number of eigenvalues")
    n = lam.shape[-1] if n is None else int(n)
    return _select(lam, which, eta, k, n, check_rtol(rtol))


@functools.partial(jax.jit, static_argnums=(1, 3, 4, 5))
def _select(lam, which, eta, k, n, rtol):
    tol = flat_tolerance(lam, n, rtol)
    if which in ETA_KINDS:
        classes = classify(lam, tol, eta)
        mask = {"chaotic": classes.chaotic, "stable": classes.stable,
                "nonchaotic": classes.flat | classes.stable}[which]
        score = jnp.abs(gd_local_exponents(lam, eta))
    else:
        mask = {"flat": is_flat(lam, tol), "positive": lam > tol, "negative": lam < -tol}[which]
        score = jnp.abs(lam)
    if k is None:
        return mask
    score = jnp.where(mask, score, -jnp.inf)
    order = jnp.argsort(-score, stable=True)
    rank = jnp.empty_like(order).at[order].set(jnp.arange(lam.shape[-1]))
    return mask & (rank < k)


def sharpness(
    loss: Callable[[Params], jax.Array],
    params: Params,
    *,
    k: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    key: jax.Array | None = None,
) -> jax.Array:
    """The k largest Hessian eigenvalues of ``loss(params)``, descending (``[0]`` is the sharpness λ_max).

    ``method``: ``"full"`` (explicit Hessian, small models), ``"lanczos"``
    (``num_iters`` HVPs from ``key``) or ``"auto"`` (full up to
    :data:`~gdchaos.analyses.curvature.eigen.FULL_MAX_PARAMS` parameters).

    Example:
        >>> import jax.numpy as jnp
        >>> sharpness(lambda p: 0.5 * jnp.sum(jnp.array([1.0, 4.0, 2.0]) * p ** 2), jnp.zeros(3), k=2).tolist()
        [4.0, 2.0]
    """
    n = count_params(params)
    k = check_int("k", k, 1, n)
    if resolve_method(method, n) == "full":
        return _top_values(ascending_eigenpairs_flat(loss, params, method="full")[0], k)
    return top_hessian_eigenpairs(loss, params, k, num_iters=num_iters, key=key).values


@functools.partial(jax.jit, static_argnums=1)
def _top_values(values, k):
    return values[::-1][:k]


def curvature_info(
    loss: Callable[[Params], jax.Array],
    params: Params,
    eta: ArrayLike,
    *,
    k: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    key: jax.Array | None = None,
    rtol: float | None = None,
) -> CurvatureInfo:
    r"""Sharpness, eigenvalue counts and gradient overlaps at ``params`` (see :class:`CurvatureInfo`).

    ``rtol``: flat tolerance |λ| ≤ rtol·max|λ| (default N·ε). Jit/vmap-able over
    ``params`` and ``eta`` (``k``, ``method``, ``num_iters``, ``rtol`` static).

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.array([-1.0, 0.5, 1.0, 3.0])
        >>> info = curvature_info(lambda p: 0.5 * jnp.sum(a * p ** 2), jnp.ones(4), eta=1.0, k=2)
        >>> info.top.tolist(), int(info.n_chaotic), int(info.n_negative)
        ([3.0, 1.0], 2, 1)
    """
    n = count_params(params)
    k = check_int("k", k, 1, n)
    check_positive("eta", eta)
    values, vecs, _, _ = ascending_eigenpairs_flat(loss, params, k, method=method, num_iters=num_iters, key=key)
    return _info(values, vecs, _flat_grad(loss, params), eta, k, check_rtol(rtol))


@functools.partial(jax.jit, static_argnums=0)
def _flat_grad(loss, params):
    return ravel_pytree(jax.grad(loss)(params))[0]


@functools.partial(jax.jit, static_argnums=(4, 5))
def _info(values, vecs, g, eta, k, rtol):
    n, m = vecs.shape[1], values.shape[0]
    tol = flat_tolerance(values, n, rtol)
    positive, negative = values > tol, values < -tol
    classes = classify(values, tol, eta)
    gnorm = jnp.linalg.norm(g)
    cos = jnp.abs(vecs @ g) / jnp.where(gnorm > 0, gnorm, jnp.nan)

    def mean_over(mask):
        count = jnp.sum(mask)
        return jnp.where(count > 0, jnp.sum(jnp.where(mask, cos, 0)) / jnp.maximum(count, 1), jnp.nan)

    top_idx = np.arange(m - 1, m - 1 - k, -1)
    return CurvatureInfo(
        top=values[top_idx],
        bottom=values[:k],
        n_positive=spectrum_count(positive, values),
        n_negative=spectrum_count(negative, values),
        n_chaotic=spectrum_count(classes.chaotic, values),
        n_flat=spectrum_count(classes.flat, values),
        overlap_top=cos[top_idx],
        overlap_bottom=cos[:k],
        mean_overlap_positive=mean_over(positive),
        mean_overlap_negative=mean_over(negative),
        grad_norm=gnorm,
        finite=jnp.all(jnp.isfinite(values)),
    )


def curvature_info_along(loss: Callable[[Params], jax.Array], snapshots: Params, eta: ArrayLike, **kwargs: Any) -> CurvatureInfo:
    """:func:`curvature_info` at each of a stack of parameter snapshots (leading axis = time), vmapped.

    ``eta`` is one learning rate for all snapshots or a ``(T,)`` array, one per snapshot.
    Every field gains the leading axis, e.g. ``top`` is ``(T, k)``.

    Example:
        >>> import jax.numpy as jnp
        >>> info = curvature_info_along(lambda p: jnp.sum(p ** 4), jnp.array([[0.1, 0.2], [0.5, 1.0]]), eta=0.5)
        >>> info.n_chaotic.tolist()  # Hessian diag(12 p²): 12 > 2/η = 4 only at the second snapshot
        [0, 1]
    """
    eta_axis = 0 if jnp.ndim(eta) == 1 else None
    return jax.vmap(lambda p, e: curvature_info(loss, p, e, **kwargs), in_axes=(0, eta_axis))(snapshots, eta)


def direction_subspace(
    loss: Callable[[Params], jax.Array],
    params: Params,
    which: str = "chaotic",
    eta: ArrayLike | None = None,
    *,
    k: int | None = None,
    method: str = "full",
    num_iters: int | None = None,
    key: jax.Array | None = None,
    rtol: float | None = None,
) -> Subspace:
    r"""The span of the Hessian eigenvectors of kind ``which`` (e.g. the locally chaotic subspace V_chaotic(t)).

    ``which`` and ``k`` as in :func:`select_directions`. With ``method="full"`` the basis
    is all N eigenvectors and the subspace is exact; with ``"lanczos"`` (``k`` required) it
    is spanned by the selected ones among the 2k extreme Ritz vectors.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([-1.0, 0.5, 3.0]) * p ** 2)
        >>> sub = direction_subspace(loss, jnp.zeros(3), "chaotic", eta=1.0)
        >>> sub.mask.tolist(), sub.vectors.shape
        ([True, False, True], (3, 3))
    """
    check(which in WHICH, f"which must be one of {list(WHICH)}; got {which!r}")
    if which in ETA_KINDS:
        check(eta is not None, f"which={which!r} depends on the learning rate; pass eta > 0")
        check_positive("eta", eta)
    n = count_params(params)
    lanczos = resolve_method(method, n) == "lanczos"
    k_select = None if lanczos or k is None else check_int("k", k, 1, n)
    values, vecs, _, unravel = ascending_eigenpairs_flat(loss, params, k, method=method, num_iters=num_iters, key=key)
    mask = _select(values, which, eta, k_select, n, check_rtol(rtol))
    return Subspace(unravel_rows(unravel, vecs), mask)


def subspace_overlap(
    v: PyTree | Subspace, w: PyTree | Subspace, mask_v: ArrayLike | None = None, mask_w: ArrayLike | None = None
) -> jax.Array:
    r"""overlap(V, W) = ‖V Wᵀ‖_F² / min(dim V, dim W) (herrmann2022 A.11); NaN if either is empty.

    ``v``, ``w``: orthonormal bases as rows, pytrees (or arrays) with a leading axis;
    ``mask_v``/``mask_w`` pick the rows that belong to each subspace (default all), so
    subspaces of varying dimension fit in fixed shapes under jit/vmap. A :class:`Subspace`
    may be passed for ``v`` or ``w`` (its mask is used).

    Example:
        >>> import jax.numpy as jnp
        >>> e = jnp.eye(4)
        >>> float(subspace_overlap(e[:2], e[:3])), float(subspace_overlap(e[:2], e[2:]))
        (1.0, 0.0)
    """
    if isinstance(v, Subspace):
        v, mask_v = v.vectors, v.mask if mask_v is None else mask_v
    if isinstance(w, Subspace):
        w, mask_w = w.vectors, w.mask if mask_w is None else mask_w
    n_v, n_w = count_params(v, batch_dims=1), count_params(w, batch_dims=1)
    check(n_v == n_w, f"v and w must live in the same space; got dimensions {n_v} and {n_w}")
    return _overlap(v, w, mask_v, mask_w)


@jax.jit
def _overlap(v, w, mask_v, mask_w):
    a, b = ravel_rows(v), ravel_rows(w)
    mv = jnp.ones(a.shape[0], bool) if mask_v is None else jnp.asarray(mask_v, bool)
    mw = jnp.ones(b.shape[0], bool) if mask_w is None else jnp.asarray(mask_w, bool)
    a = jnp.where(mv[:, None], a, 0)
    b = jnp.where(mw[:, None], b, 0)
    d_min = jnp.minimum(jnp.sum(mv), jnp.sum(mw))
    total = jnp.sum((a @ b.T) ** 2)
    return jnp.where(d_min > 0, total / jnp.maximum(d_min, 1), jnp.nan)


def random_subspace_overlap(dim: int, d_v: ArrayLike, d_w: ArrayLike) -> jax.Array:
    r"""Expected :func:`subspace_overlap` of independent uniformly random subspaces: max(d_v, d_w) / dim.

    E tr(P_V P_W) = tr(P_V · (d_w/N) I) = d_v d_w / N; dividing by min(d_v, d_w) gives the
    baseline of herrmann2022 eq. (65) for one pair of dimensions (NaN if either is 0).

    Example:
        >>> round(float(random_subspace_overlap(100, 10, 20)), 6)
        0.2
    """
    d_v, d_w = jnp.asarray(d_v), jnp.asarray(d_w)
    d_min = jnp.minimum(d_v, d_w)
    return jnp.where(d_min > 0, jnp.maximum(d_v, d_w) / dim, jnp.nan)
