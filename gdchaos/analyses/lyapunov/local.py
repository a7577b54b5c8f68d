r"""Local (one-step) Lyapunov exponents of gradient descent from the Hessian (herrmann2022).

Near θ the GD map θ ↦ θ − η∇L(θ) has the symmetric Jacobian I − ηH(θ). Along the
Hessian eigenvector v_i (eigenvalue λ_i) a perturbation is multiplied by 1 − ηλ_i in
one step, so the local exponents are

    μ_i = ln |1 − η λ_i|       (−∞ at λ_i = 1/η: that direction is annihilated).

Every eigenvalue falls in exactly one of three classes (:func:`direction_classes`), with
the flat tolerance tol = rtol·max_j|λ_j| (default rtol = N·ε of the dtype, the roundoff
of ``eigh``; :func:`zero_tolerance`):

- flat:    |λ_i| ≤ tol               (μ_i ≈ 0 within roundoff: dead units, unused inputs, symmetries);
- chaotic: λ_i < −tol or λ_i > 2/η   (μ_i > 0 strictly: a positive local exponent, herrmann2022 A.7);
- stable:  tol < λ_i ≤ 2/η           (μ_i ≤ 0; λ_i = 2/η exactly has μ_i = 0, marginal, and is stable here).

Flat takes precedence (it also wins over λ > 2/η should tol exceed 2/η). herrmann2022
(Thm A.5) calls λ_i ≤ 0 or λ_i ≥ 2/η chaotic (μ_i ≥ 0); that count is chaotic + flat
(+ the measure-zero λ_i = 2/η). A flat direction has |μ_i| ≈ η|λ_i| ≤ η·tol per step. On a digits
ReLU MLP (N = 1510) the exactly flat directions come out of ``eigh`` below ~ε·max|λ|, so
N·ε leaves a wide margin; in float32 it is 1.8e-4 there and also folds resolved small
curvature into flat (use float64, or an rtol not below ~ε, for counts).

For GD with L2 weight decay pass the regularized loss (H + λ₂ I). On a quadratic loss
½θᵀAθ the Hessian is A everywhere and μ_i are the exact (tangent) Lyapunov exponents.

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
from jax.typing import ArrayLike, DTypeLike

from gdchaos.core.errors import check
from gdchaos.core.tree import PyTree, count_params

MAX_PARAMS = 4096


class LocalExponents(NamedTuple):
    """Hessian spectrum at θ and what it implies for GD at learning rate η.

    Attributes:
        eigenvalues: ``(N,)`` Hessian eigenvalues λ_i, ascending.
        exponents: ``(N,)`` ln|1 − ηλ_i|, same order.
        n_chaotic: number of locally chaotic directions, μ_i > 0: λ_i < −tol or λ_i > 2/η.
        n_flat: number of flat directions, |λ_i| ≤ tol.
        n_positive: number of λ_i > tol.
        n_negative: number of λ_i < −tol.
        finite: the spectrum is finite. Non-finite parameters or curvature give NaN
            eigenvalues and exponents, ``finite = False`` and counts of −1, never a count.

    tol = :func:`zero_tolerance` (rtol·max|λ|), so n_positive + n_negative + n_flat = N and
    the stable directions (tol < λ_i ≤ 2/η) number N − n_chaotic − n_flat.
    """

    eigenvalues: jax.Array
    exponents: jax.Array
    n_chaotic: jax.Array
    n_flat: jax.Array
    n_positive: jax.Array
    n_negative: jax.Array
    finite: jax.Array


def _check_size(params, max_params: int) -> int:
    n = count_params(params)
    check(
        n <= max_params,
        f"the explicit Hessian of {n} parameters needs {n}×{n} entries; raise max_params "
        f"(now {max_params}) if that fits in memory, or use matrix-free curvature for large models",
    )
    return n


@functools.partial(jax.jit, static_argnums=0)
def hessian_matrix(loss: Callable, params: PyTree) -> jax.Array:
    """Explicit N×N Hessian of ``loss(params)`` over the flattened parameters (``ravel_pytree`` order).

    Compiled once per ``loss`` function (a hashable callable, static).
    """
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda v: loss(unravel(v)))(flat)


@functools.partial(jax.jit, static_argnums=0)
def _eigenvalues(loss: Callable, params) -> jax.Array:
    return jnp.linalg.eigvalsh(hessian_matrix(loss, params))


def hessian_spectrum(loss: Callable, params: PyTree, *, max_params: int = MAX_PARAMS) -> jax.Array:
    """Ascending eigenvalues of the Hessian of ``loss(params)`` (compiled once per ``loss`` function).

    Example:
        >>> import jax.numpy as jnp
        >>> hessian_spectrum(lambda p: p["a"] ** 2 + 3 * p["b"] ** 2, {"a": 1.0, "b": 2.0}).tolist()
        [2.0, 6.0]
    """
    _check_size(params, max_params)
    return _eigenvalues(loss, params)


def gd_local_exponents(eigenvalues: ArrayLike, eta: ArrayLike) -> jax.Array:
    """μ_i = ln|1 − η λ_i| for Hessian eigenvalues λ_i (broadcasts η against λ)."""
    return jnp.log(jnp.abs(1.0 - eta * jnp.asarray(eigenvalues)))


def default_rtol(n: int, dtype: DTypeLike) -> float:
    """The default relative flat tolerance: N·ε of ``dtype`` (the roundoff of ``eigh`` on N×N).

    Example:
        >>> default_rtol(1000, "float64") == 1000 * 2.0 ** -52
        True
    """
    return float(n * jnp.finfo(dtype).eps)


def check_rtol(rtol: ArrayLike | None) -> ArrayLike | None:
    """``rtol`` as a float (``None`` stays ``None``: the default N·ε); it must be finite and ≥ 0."""
    if rtol is None:
        return None
    try:
        value = float(rtol)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return rtol  # traced: no Python check
    check(np.isfinite(value) and value >= 0, f"the flat tolerance rtol must be finite and >= 0; got {rtol!r}")
    return value


def zero_tolerance(eigenvalues: ArrayLike, rtol: float | None = None) -> jax.Array:
    """Flat tolerance tol = ``rtol``·max|λ| over the last axis (kept as a length-1 axis).

    ``rtol`` defaults to N·ε of the dtype (:func:`default_rtol`, the roundoff of ``eigh``),
    so exactly flat directions (dead units, unused inputs, symmetries), which come out as
    ±roundoff, have |λ| ≤ tol. NaN if the spectrum has a NaN.

    Example:
        >>> zero_tolerance(jnp.array([-8.0, 1.0, 4.0]), rtol=0.125).tolist()
        [1.0]
    """
    lam = jnp.asarray(eigenvalues)
    rtol = default_rtol(lam.shape[-1], lam.dtype) if rtol is None else check_rtol(rtol)
    return rtol * jnp.max(jnp.abs(lam), axis=-1, keepdims=True)



def flat_tolerance(eigenvalues: ArrayLike, n: int, rtol: float | None = None) -> jax.Array:
    """Flat tolerance tol = ``rtol``·max|λ| over the last axis (dropped) for some eigenvalues of an N×N Hessian.

    As :func:`zero_tolerance`, but the default rtol = N·ε uses the number of parameters
    ``n``, not the number of eigenvalues given (a Lanczos run computes only some of them).

    Example:
        >>> float(flat_tolerance(jnp.array([-8.0, 4.0]), n=1000, rtol=0.125))
        1.0
    """
    lam = jnp.asarray(eigenvalues)
    rtol = default_rtol(n, lam.dtype) if rtol is None else rtol
    return zero_tolerance(lam, rtol)[..., 0]


class DirectionClasses(NamedTuple):
    """Boolean masks of the three classes of Hessian eigen-directions (a partition of the finite ones).

    Attributes:
        chaotic: λ < −tol or λ > 2/η (μ = ln|1 − ηλ| > 0).
        flat: |λ| ≤ tol.
        stable: tol < λ ≤ 2/η (μ ≤ 0; λ = 2/η exactly, μ = 0, is marginal and counted here).

    A NaN eigenvalue is in none of them.
    """

    chaotic: jax.Array
    flat: jax.Array
    stable: jax.Array


def is_flat(eigenvalues: ArrayLike, tol: ArrayLike) -> jax.Array:
    """|λ| ≤ ``tol`` (the edge is flat; NaN is not)."""
    return jnp.abs(jnp.asarray(eigenvalues)) <= tol


def classify(eigenvalues: ArrayLike, tol: ArrayLike, eta: ArrayLike) -> DirectionClasses:
    """:class:`DirectionClasses` of ``eigenvalues`` for a given flat tolerance ``tol`` (broadcast) and η."""
    lam = jnp.asarray(eigenvalues)
    flat = is_flat(lam, tol)
    chaotic = ~flat & ((lam < 0) | (eta * lam > 2.0))
    stable = ~flat & (lam > 0) & (eta * lam <= 2.0)
    return DirectionClasses(chaotic, flat, stable)


def direction_classes(eigenvalues: ArrayLike, eta: ArrayLike, rtol: float | None = None) -> DirectionClasses:
    """Chaotic, flat and stable masks over the last axis, tol = :func:`zero_tolerance` (``rtol``·max|λ|).

    Example (tol = 0.125·8 = 1; 2/η = 4):
        >>> c = direction_classes(jnp.array([-8.0, -1.0, 0.0, 1.0, 2.0, 4.0, 5.0]), eta=0.5, rtol=0.125)
        >>> c.chaotic.tolist(), c.flat.tolist(), c.stable.tolist()  # doctest: +NORMALIZE_WHITESPACE
        ([True, False, False, False, False, False, True], [False, True, True, True, False, False, False],
         [False, False, False, False, True, True, False])
    """
    lam = jnp.asarray(eigenvalues)
    return classify(lam, zero_tolerance(lam, rtol), eta)


def spectrum_count(mask: ArrayLike, eigenvalues: ArrayLike) -> jax.Array:
    """Σ mask over the last axis, or −1 where the spectrum has a non-finite eigenvalue (no count from NaN).

    Example:
        >>> spectrum_count(jnp.array([[True, True], [True, False]]), jnp.array([[1.0, 2.0], [jnp.nan, 1.0]])).tolist()
        [2, -1]
    """
    finite = jnp.all(jnp.isfinite(jnp.asarray(eigenvalues)), axis=-1)
    return jnp.where(finite, jnp.sum(mask, axis=-1), -1)


def chaotic_count(eigenvalues: ArrayLike, eta: ArrayLike, rtol: float | None = None) -> jax.Array:
    """Number of locally chaotic directions, μ_i > 0 (λ_i < −tol or λ_i > 2/η), over the last axis.

    Strict: flat eigenvalues (|λ_i| ≤ tol = ``rtol``·max|λ|, default rtol = N·ε, see
    :func:`flat_count`) and λ_i = 2/η exactly (μ_i = 0) are not chaotic. −1 for a
    non-finite spectrum.

    Example:
        >>> int(chaotic_count(jnp.array([-1.0, 0.0, 0.5, 2.0, 3.0]), eta=1.0))  # 0 is flat, 2 = 2/η marginal
        2
        >>> int(chaotic_count(jnp.array([jnp.nan, 0.5, 3.0]), eta=1.0))
        -1
    """
    lam = jnp.asarray(eigenvalues)
    return spectrum_count(direction_classes(lam, eta, rtol).chaotic, lam)


def flat_count(eigenvalues: ArrayLike, rtol: float | None = None) -> jax.Array:
    """Number of flat directions, |λ_i| ≤ tol = ``rtol``·max|λ| (default rtol = N·ε), over the last axis.

    −1 for a non-finite spectrum.

    Example:
        >>> int(flat_count(jnp.array([-1e-17, 0.0, 1e-17, 1.0])))  # ±roundoff of an exact 0 (float64)
        3
    """
    lam = jnp.asarray(eigenvalues)
    return spectrum_count(is_flat(lam, zero_tolerance(lam, rtol)), lam)


def _summarize(eig, eta, rtol=None) -> LocalExponents:
    tol = zero_tolerance(eig, rtol)
    classes = classify(eig, tol, eta)
    return LocalExponents(
        eigenvalues=eig,
        exponents=gd_local_exponents(eig, eta),
        n_chaotic=spectrum_count(classes.chaotic, eig),
        n_flat=spectrum_count(classes.flat, eig),
        n_positive=spectrum_count(eig > tol, eig),
        n_negative=spectrum_count(eig < -tol, eig),
        finite=jnp.all(jnp.isfinite(eig), axis=-1),
    )


def local_exponents(
    loss: Callable, params: PyTree, eta: ArrayLike, *, max_params: int = MAX_PARAMS, rtol: float | None = None
) -> LocalExponents:
    """Local GD exponents at ``params`` from the full Hessian spectrum of ``loss(params)``.

    ``rtol``: flat tolerance |λ| ≤ rtol·max|λ| (default N·ε), see :class:`LocalExponents`.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.diag(jnp.array([-1.0, 0.5, 3.0]))
        >>> le = local_exponents(lambda p: 0.5 * p @ a @ p, jnp.zeros(3), eta=1.0)
        >>> [round(float(v), 4) for v in le.exponents], int(le.n_chaotic)
        ([0.6931, -0.6931, 0.6931], 2)
    """
    return _summarize(hessian_spectrum(loss, params, max_params=max_params), eta, check_rtol(rtol))


@functools.partial(jax.jit, static_argnums=0)
def _eigenvalues_along(loss: Callable, snapshots) -> jax.Array:
    return jax.vmap(lambda p: _eigenvalues(loss, p))(snapshots)


def local_exponents_along(
    loss: Callable, snapshots: PyTree, eta: ArrayLike, *, max_params: int = MAX_PARAMS, rtol: float | None = None
) -> LocalExponents:
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
    return _summarize(_eigenvalues_along(loss, snapshots), eta, check_rtol(rtol))
