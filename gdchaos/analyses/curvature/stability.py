r"""Dynamical stability of minima under GD and SGD (chemnitz2025 §3.2–3.5).

**GD.** At a minimum θ* the GD map φ(θ) = θ − η∇L(θ) has Jacobian Dφ = I − ηH. Flat
directions (ker H: the tangent space of a manifold of minima) are left unchanged;
stability is decided on the normal space N(θ*) = im H, spanned by the eigenvectors
with |λ_i| > tol = rtol·max|λ| (default rtol = N·ε: the complement of the flat class of
:func:`gdchaos.analyses.lyapunov.local.direction_classes`):

    ρ = ρ(Dφ|_N) = max_{|λ_i| > tol} |1 − ηλ_i|,   stable iff ρ < 1
      ⇔ 0 < λ_i < 2/η for every non-flat λ_i,     critical η* = 2/λ_max.

(A negative non-flat eigenvalue, i.e. θ* is no minimum, gives ρ > 1.)

**SGD at an interpolating minimum** (every per-sample loss is minimal, so θ* is a fixed
point of every mini-batch map φ_B(θ) = θ − η∇L_B(θ)): linearizing, a perturbation evolves
by the random product A_{B_n} ⋯ A_{B_1}, A_B = (I − ηH_B(θ*))|_N with mini-batches drawn
uniformly without replacement. Its Lyapunov exponent (Furstenberg–Kesten),

    λ(θ*) = lim_{n→∞} (1/n) ln ‖A_{B_n} ⋯ A_{B_1}‖,

decides local stability: stable if λ < 0, unstable if λ > 0 (for regular minima,
chemnitz2025 Thm 3.14). It is estimated with :func:`gdchaos.analyses.lyapunov.lyapunov_spectrum`
on the linear map δ ↦ P_N(δ − η H_B δ) (Hessian-vector products of the mini-batch loss
at θ*, QR every step), where P_N projects on N(θ*) so that the neutral flat directions
(exponent 0) never mask a negative normal exponent. With the full batch it reduces to
ln ρ of the GD case.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jax.flatten_util import ravel_pytree

from gdchaos.analyses.curvature.eigen import ascending_eigenpairs_flat
from gdchaos.analyses.curvature.hvp import hvp
from gdchaos.analyses.lyapunov.local import MAX_PARAMS, flat_tolerance, hessian_matrix, spectrum_count
from gdchaos.analyses.lyapunov.tangent import lyapunov_spectrum
from gdchaos.core.errors import check, check_int, check_positive
from gdchaos.core.tree import PyTree, count_params

Params = PyTree


def _verdict(stable, finite) -> np.ndarray | str:
    out = np.where(np.asarray(finite), np.where(np.asarray(stable), "stable", "unstable"), "non-finite")
    return str(out) if out.ndim == 0 else out


class MinimumStability(NamedTuple):
    """GD stability of a minimum.

    Attributes:
        spectral_radius: ρ(I − ηH) over the non-flat directions (0 if there are none).
        sharpness: λ_max of the Hessian.
        critical_eta: η* = 2/λ_max (inf if λ_max ≤ 0).
        stable: ρ < 1.
        n_normal: number of non-flat eigenvalues (dimension of the normal space).
        n_negative: number of eigenvalues below −tol (> 0: a saddle, not a minimum).
        finite: the Hessian spectrum is finite. Non-finite parameters or curvature (a
            diverged run) give NaN for ρ, λ_max and η*, counts of −1, ``stable = False``
            and the verdict ``"non-finite"``: never "stable".

    ``verdict`` is ``"stable"``, ``"unstable"`` or ``"non-finite"`` (an array of them when batched).
    """

    spectral_radius: jax.Array
    sharpness: jax.Array
    critical_eta: jax.Array
    stable: jax.Array
    n_normal: jax.Array
    n_negative: jax.Array
    finite: jax.Array

    @property
    def verdict(self) -> np.ndarray | str:
        return _verdict(self.stable, self.finite)


class SGDStability(NamedTuple):
    """SGD stability of an interpolating minimum from its random-product Lyapunov exponents.

    Attributes:
        exponent: the top exponent λ(θ*) in nat/step.
        exponents: ``(k,)`` the top k exponents, descending (−inf beyond the normal dimension).
        ftle: ``(steps, k)`` finite-time estimates after each step (NaN during the transient).
        stable: λ(θ*) < 0.
        n_normal: dimension of the normal space (number of non-flat Hessian eigenvalues).
        finite: the parameters, their Hessian and the top exponent are finite (−inf, a
            perturbation annihilated, counts as finite); where not, the exponents are NaN,
            ``stable = False``, ``n_normal = −1`` and the verdict is ``"non-finite"``.

    ``verdict`` is ``"stable"``, ``"unstable"`` or ``"non-finite"``.
    """

    exponent: jax.Array
    exponents: jax.Array
    ftle: jax.Array
    stable: jax.Array
    n_normal: jax.Array
    finite: jax.Array

    @property
    def verdict(self) -> np.ndarray | str:
        return _verdict(self.stable, self.finite)


def minimum_stability(
    loss: Callable[[Params], jax.Array],
    params: Params,
    eta: ArrayLike,
    *,
    method: str = "auto",
    k: int = 1,
    num_iters: int | None = None,
    key: jax.Array | None = None,
    rtol: float | None = None,
) -> MinimumStability:
    r"""Linear GD stability of the minimum ``params`` of ``loss`` at learning rate ``eta``.

    ``method="full"`` uses all N Hessian eigenvalues. ``"lanczos"`` uses the k smallest
    and k largest Lanczos eigenvalues: the verdict and η* are exact (they depend only on
    the extremes), but ρ can miss a small positive eigenvalue's |1 − ηλ| and is then a
    lower bound. ``"auto"``: full up to
    :data:`~gdchaos.analyses.curvature.eigen.FULL_MAX_PARAMS` parameters. Jit/vmap-able over
    ``params`` and ``eta``.

    Example (H = diag(0, 1, 4): the flat direction is ignored, η* = 0.5):
        >>> import jax.numpy as jnp
        >>> loss = lambda p: 0.5 * (p[1] ** 2 + 4.0 * p[2] ** 2)
        >>> s = minimum_stability(loss, jnp.zeros(3), eta=0.4)
        >>> round(float(s.spectral_radius), 6), float(s.critical_eta), s.verdict, int(s.n_normal)
        (0.6, 0.5, 'stable', 2)
        >>> minimum_stability(loss, jnp.zeros(3), eta=0.6).verdict
        'unstable'
    """
    check_positive("eta", eta)
    values, vecs, _, _ = ascending_eigenpairs_flat(loss, params, k, method=method, num_iters=num_iters, key=key)
    return _verdicts(values, vecs.shape[1], eta, None if rtol is None else float(rtol))


@functools.partial(jax.jit, static_argnums=(1, 3))
def _verdicts(values, n, eta, rtol):
    tol = flat_tolerance(values, n, rtol)
    finite = jnp.all(jnp.isfinite(values))
    normal = jnp.abs(values) > tol
    rho = jnp.max(jnp.where(normal, jnp.abs(1.0 - eta * values), 0.0))
    lam_max = values[-1]
    nan = jnp.asarray(jnp.nan, values.dtype)
    return MinimumStability(
        spectral_radius=jnp.where(finite, rho, nan),
        sharpness=jnp.where(finite, lam_max, nan),
        critical_eta=jnp.where(finite, jnp.where(lam_max > tol, 2.0 / jnp.where(lam_max > tol, lam_max, 1.0), jnp.inf), nan),
        stable=finite & (rho < 1.0),
        n_normal=spectrum_count(normal, values),
        n_negative=spectrum_count(values < -tol, values),
        finite=finite,
    )


def sgd_stability(
    loss_fn: Callable[[Params, jax.Array, jax.Array], jax.Array],
    params: Params,
    x: jax.Array,
    y: jax.Array,
    eta: ArrayLike,
    batch_size: int,
    *,
    steps: int = 2000,
    transient: int = 100,
    k: int = 1,
    key: jax.Array | None = None,
    normal: bool = True,
    rtol: float | None = None,
    max_params: int = MAX_PARAMS,
) -> SGDStability:
    r"""Lyapunov exponent of the SGD random product I − ηH_B at the interpolating minimum ``params``.

    Args:
        loss_fn: ``loss_fn(params, xb, yb) -> scalar`` mean loss of a batch (as in
            :func:`gdchaos.core.maps.from_optax`).
        params: an interpolating minimum θ* (every sample fit exactly).
        x, y: the training set; mini-batches of ``batch_size`` distinct samples are drawn
            uniformly, as the SGD training maps do.
        eta: learning rate (may be traced: jit/vmap over η works).
        steps, transient: length of the product and the discarded start.
        k: number of exponents (1: the top one, which decides stability).
        key: PRNG key for batches and the initial tangent basis (default ``jax.random.key(0)``).
        normal: restrict to the normal space im H(θ*) (explicit full-batch Hessian,
            at most ``max_params`` parameters). ``False`` keeps all directions: the flat
            ones then add exponents 0.
        rtol: flat tolerance of the Hessian eigenvalues, |λ| ≤ rtol·max|λ| (default N·ε).

    Example (two orthogonal samples, batch 1: each direction is hit half the time, so
    λ = ½ ln|1 − η‖x‖²| per step):
        >>> import jax.numpy as jnp
        >>> x, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.zeros(2)
        >>> loss_fn = lambda p, xb, yb: 0.5 * jnp.mean((xb @ p - yb) ** 2)
        >>> s = sgd_stability(loss_fn, jnp.zeros(2), x, y, eta=0.5, batch_size=1, steps=4000)
        >>> round(float(s.exponent), 1), s.verdict  # ½ ln 0.5 ≈ −0.35
        (-0.3, 'stable')
    """
    check_positive("eta", eta)
    n_samples = int(np.shape(x)[0])
    batch_size = check_int("batch_size", batch_size, 1, None)
    check(batch_size <= n_samples, f"batch_size must be in 1..{n_samples} (training set size); got {batch_size}")
    steps = check_int("steps", steps, 1)
    transient = check_int("transient", transient, 0)
    check(transient < steps, f"transient must be < steps ({steps}); got {transient}")
    n = count_params(params)
    k = check_int("k", k, 1, n)
    if normal:
        check(
            n <= max_params,
            f"the normal-space projector needs the explicit Hessian of {n} parameters; raise max_params "
            f"(now {max_params}) if {n}×{n} fits in memory, or pass normal=False",
        )
    key = jax.random.key(0) if key is None else key
    rtol = None if rtol is None else float(rtol)
    static = (loss_fn, batch_size, steps, transient, k, normal, rtol)
    lam, ftle, n_normal, ok = _random_product(*static, params, x, y, eta, key)
    finite = ok & ~jnp.isnan(lam[0]) & (lam[0] < jnp.inf)
    lam, ftle = jnp.where(finite, lam, jnp.nan), jnp.where(finite, ftle, jnp.nan)
    return SGDStability(lam[0], lam, ftle, finite & (lam[0] < 0), jnp.where(finite, n_normal, -1), finite)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _random_product(loss_fn, batch_size, steps, transient, k, normal, rtol, params, x, y, eta, key):
    """Top-k exponents of δ ↦ P_N(δ − ηH_B δ) and whether the parameters and Hessian are finite.

    Compiled once per ``loss_fn`` and static options.
    """
    flat, unravel = ravel_pytree(params)
    n, n_samples = flat.size, x.shape[0]
    k_batch, k_basis = jax.random.split(key)
    ok = jnp.all(jnp.isfinite(flat))
    if normal:
        values, vecs = jnp.linalg.eigh(hessian_matrix(lambda p: loss_fn(p, x, y), params))
        ok = ok & jnp.all(jnp.isfinite(values))
        keep = jnp.abs(values) > flat_tolerance(values, n, rtol)
        basis = vecs.T  # rows
        n_normal = jnp.sum(keep)

        def project(v):
            return basis.T @ jnp.where(keep, basis @ v, 0)

    else:
        n_normal = jnp.asarray(n)

        def project(v):
            return v

    def step(state, hyper):
        delta, key = state
        key, sub = jax.random.split(key)
        idx = jax.random.choice(sub, n_samples, (batch_size,), replace=False)
        xb, yb = x[idx], y[idx]
        hd = ravel_pytree(hvp(lambda p: loss_fn(p, xb, yb), params, unravel(delta)))[0]
        return (project(delta - hyper["learning_rate"] * hd), key), None

    eta = jnp.asarray(eta, flat.dtype)
    lam, ftle = lyapunov_spectrum(
        step, (jnp.zeros_like(flat), k_batch), {"learning_rate": eta}, steps, k, transient=transient, key=k_basis
    )
    return lam, ftle, n_normal, ok
