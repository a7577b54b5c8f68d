r"""Order–chaos phase diagram of x ↦ tanh(W x) and the path of a trained square tanh layer on it.

Following "Edge of chaos as a guiding principle for modern neural network training"
(eq. 1–9 and Appendices A, C), the hidden layer x ↦ tanh(W x) of a network whose
hidden width equals its input width is read as a dynamical system with random couplings

    W_ij = J0/N + (J/√N) z_ij,      z_ij of mean 0 and variance 1,

so that J0 = N·mean(W) and J = √N·std(W) (:func:`estimate_j0_j`).

**Mean-field boundary** (Appendix A). The fields h_i = Σ_j W_ij μ_j at the attractor
are Gaussian over i with mean J0 μ and variance J² q0, where μ = (1/N) Σ μ_i and
q0 = (1/N) Σ μ_i² (μ_i the mean of x*_i). Self-consistency gives

    μ = ∫Dz tanh(J0 μ + J √q0 z),     q0 = ∫Dz tanh²(J0 μ + J √q0 z),

(:func:`mean_field`), and the squared Jacobian norm (1/N)‖J*‖²_F → the criterion of eq. 3,

    χ(J0, J) = J² ∫Dz sech⁴(J0 μ + J √q0 z);   χ < 1 ordered, χ > 1 chaotic.

These are the Sherrington–Kirkpatrick equations at β = 1, and χ = 1 is the
de Almeida–Thouless condition: the boundary (:func:`chaos_boundary`) in the paper's
axes (J0/J, 1/J) is 1/J = 1 for J0/J ≤ 1 (μ = q0 = 0, χ = J²) and the AT line for
J0/J > 1, which falls off as 1/J ≈ (4/(3√(2π))) exp(−(J0/J)²/2) for large J0/J.
The branch followed is the ordered (paramagnetic or ferromagnetic, μ ≥ 0) one.
χ is the squared radius of the bulk spectrum of the Jacobian; the rank-one J0 mode
(the ferromagnetic instability at J0 = 1) is not part of it. The map is even in J0:
y_t = (−1)^t x_t iterates y ↦ tanh(−W y), and −W has −J0 and z ↦ −z (same law), so
J0 < −1 gives a period-2 cycle instead of a ferromagnet and the boundary mirrors the
AT line there (J0/J < −1); :func:`mean_field` and :func:`chaos_boundary` use |J0|.

Gaussian averages ∫Dz g(a + b z) use Gauss–Hermite quadrature in z while b ≤ 1. For
b > 1 the integrand is narrower than the node spacing, so the average is taken in the
field u = a + b z instead (Gauss–Legendre on [−30, 0] and [0, 30] against the Gaussian
density of u, with ∫Dz sign(a + b z) = erf(a/(√2 b)) exact); both agree to ~1e-11.

**Numerical phase diagram** (Fig. 1b). Two trajectories from x_0 ~ N(0, I) and
x_0 + 10⁻⁴ ξ are iterated with the same W; the RMS separation after many steps
vanishes in the ordered phase and saturates at O(1) in the chaotic one
(:func:`separation_heatmap`, vmapped over the (J0/J, 1/J) grid and W draws). Along
the way an exact tangent vector gives the finite-time largest Lyapunov exponent λ⊥
transverse to the uniform direction (the bulk: ½ ln χ for N → ∞), and the numerical
edge is where λ⊥ first reaches a threshold coming down from the ordered side
(:func:`locate_edge`), compared with the mean-field one column by column
(:func:`compare_edges`). The separation is a poor edge locator near χ = 1: just past
it the exponent is O((J − 1)²), so separations grow too slowly to saturate in a few
hundred steps, and at finite N the band J ≳ 1 holds tori and periodic orbits (λ ≈ 0,
separation ≈ d_0) before chaos sets in; both hold the separation edge near 1/J ≈ 0.8–0.85
for N = 50–400 and 200–1000 steps.

**Training** (Sec. III–IV). SGD with momentum α, batch B and weight decay λ,
v ← α v − η (g + 2λ w), w ← w + v, moves (J0, J) of the hidden layer; in the ordered
phase J² = A·epoch + C with A = D·η/((1 − α)B) (eq. 4–5, :func:`scale_factor`), and
the weight decay that holds the layer at J* is λ* ≈ D/(4 S J*²) (eq. 8–9, S the
training-set size; :func:`optimal_weight_decay`). :func:`track_training` records the
path; :func:`jacobian_norm` evaluates (1/√N)‖J*‖_F of eq. 1 at the attractor mean.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike
from jax.scipy.special import erf

from gdchaos.core import losses, maps
from gdchaos.core.errors import check
from gdchaos.core.fit import line_fit
from gdchaos.core.data.dataset import Dataset
from gdchaos.core.models import Model
from gdchaos.core.precision import default_float
from gdchaos.core.tree import PyTree

# --------------------------------------------------------------------------- Gaussian averages

_HERMITE_NODES = 80
_LEGENDRE_NODES = 64
_FIELD_CUTOFF = 30.0


@functools.lru_cache(maxsize=1)
def _nodes():
    z, wz = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)
    wz = wz / np.sqrt(2 * np.pi)
    x, wx = np.polynomial.legendre.leggauss(_LEGENDRE_NODES)
    half = (x + 1) / 2 * _FIELD_CUTOFF
    u = np.concatenate([half, -half])
    wu = np.concatenate([wx, wx]) * _FIELD_CUTOFF / 2
    return z, wz, u, wu


def _float(x):
    return jnp.asarray(x, default_float())


def _sech(h):
    e = jnp.exp(-2 * jnp.abs(h))
    return 2 * jnp.sqrt(e) / (1 + e)


@jax.jit
def _averages(a, b):
    """(E tanh, E tanh², E sech⁴, E[1 − sech⁴]) of a + b z, the last two without cancellation."""
    dtype = jnp.result_type(a.dtype, b.dtype)
    z, wz, u, wu = (jnp.asarray(v, dtype) for v in _nodes())
    # z-space Gauss–Hermite: the integrand is smooth on the node scale while b ≤ 1
    h = a[..., None] + b[..., None] * z
    t2, s2 = jnp.tanh(h) ** 2, _sech(h) ** 2
    in_z = jnp.stack([jnp.tanh(h) @ wz, t2 @ wz, (s2**2) @ wz, (t2 * (1 + s2)) @ wz])
    # field space u = a + b z for b > 1: the Gaussian density of u against localized sech^k
    bb = jnp.maximum(b, 1)[..., None]
    density = wu * jnp.exp(-0.5 * ((u - a[..., None]) / bb) ** 2) / (bb * jnp.sqrt(2 * jnp.pi).astype(dtype))
    su2 = _sech(u) ** 2
    sign_part = erf(a / (jnp.sqrt(2.0).astype(dtype) * jnp.maximum(b, 1)))
    s2u, s4u = jnp.sum(density * su2, -1), jnp.sum(density * su2**2, -1)
    in_u = jnp.stack([jnp.sum(density * (jnp.tanh(u) - jnp.sign(u)), -1) + sign_part, 1 - s2u, s4u, 1 - s4u])
    return jnp.where(b > 1, in_u, in_z)


def gaussian_averages(a: ArrayLike, b: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""(∫Dz tanh, ∫Dz tanh², ∫Dz sech⁴) of a + b z, z ~ N(0, 1), b ≥ 0; elementwise over a, b.

    Example:
        >>> import jax.numpy as jnp
        >>> t, t2, s4 = gaussian_averages(0.0, 0.0)
        >>> round(float(t), 9), round(float(t2), 9), round(float(s4), 9)
        (0.0, 0.0, 1.0)
        >>> t, t2, s4 = gaussian_averages(0.0, 100.0)  # ∫du sech⁴ u = 4/3, so ≈ 4/(3·100·√(2π))
        >>> round(float(s4 * 100 * (2 * jnp.pi) ** 0.5 * 3 / 4), 3)
        1.0
    """
    a, b = jnp.broadcast_arrays(_float(a), _float(b))
    out = _averages(a, b)
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------- mean-field theory


class MeanField(NamedTuple):
    """Mean-field fixed point of x = tanh(W x) and the chaos criterion at (J0, J).

    Attributes:
        mu: μ = (1/N) Σ μ_i (≥ 0: the ferromagnetic branch is taken for J0 > 0).
        q0: q0 = (1/N) Σ μ_i².
        criterion: χ = J² ∫Dz sech⁴(J0 μ + J √q0 z) (eq. 3); χ > 1 is chaotic.
    """

    mu: jax.Array
    q0: jax.Array
    criterion: jax.Array


def _solve_one(j0, j, iterations: int, newton: int):
    """(μ, q0, χ, χ − 1) on the ordered branch; χ − 1 = J² − 1 − J² ∫Dz (1 − sech⁴) keeps its sign near J = 1."""

    def F(s):
        out = _averages(j0 * s[0], j * jnp.sqrt(jnp.maximum(s[1], 0)))
        return jnp.stack([out[0], out[1]])

    s0 = jnp.stack([jnp.where(j0 > 0, 1.0, 0.0).astype(j.dtype), jnp.ones((), j.dtype)])
    s = jax.lax.fori_loop(0, iterations, lambda _, s: F(s), s0)

    def polish(_, s):
        g = F(s) - s
        (a, b), (c, d) = jax.jacfwd(lambda v: F(v) - v)(s)
        det = a * d - b * c  # 2×2 Newton step by Cramer's rule
        new = s - jnp.stack([d * g[0] - b * g[1], a * g[1] - c * g[0]]) / det
        ok = jnp.all(jnp.isfinite(new)) & (new[1] >= 0) & (new[1] <= 1) & (jnp.abs(new[0]) <= 1)
        return jnp.where(ok, new, s)

    s = jax.lax.fori_loop(0, newton, polish, s)
    mu, q0 = s[0], jnp.clip(s[1], 0, 1)
    out = _averages(j0 * mu, j * jnp.sqrt(q0))
    return mu, q0, j**2 * out[2], (j**2 - 1) - j**2 * out[3]


@functools.partial(jax.jit, static_argnames=("iterations", "newton"))
def _mean_field(j0, j, iterations: int, newton: int):
    shape = jnp.broadcast_shapes(j0.shape, j.shape)
    j0, j = jnp.abs(jnp.broadcast_to(j0, shape)).ravel(), jnp.broadcast_to(j, shape).ravel()
    mu, q0, chi, _ = jax.vmap(_solve_one, (0, 0, None, None))(j0, j, iterations, newton)
    return mu.reshape(shape), q0.reshape(shape), chi.reshape(shape)


def mean_field(j0: ArrayLike, j: ArrayLike, *, iterations: int = 50, newton: int = 12) -> MeanField:
    r"""Solve μ = ∫Dz tanh(J0μ + J√q0 z), q0 = ∫Dz tanh²(·) and return χ = J² ∫Dz sech⁴(·).

    Plain fixed-point iteration from (μ, q0) = (1, 1) (μ = 0 if J0 = 0) picks the
    stable, ordered branch; a few Newton steps polish it. Broadcasts over ``j0``, ``j``.
    Everything is even in J0 (see the module notes): for J0 < 0 the solution is that of
    |J0|, and μ is the amplitude of the period-2 mean (−1)^t μ.

    Example (paramagnet below J = 1, ferromagnet for J0 > 1):
        >>> mf = mean_field([0.0, 0.0, 0.0, 2.0], [0.5, 0.9, 1.5, 0.5])
        >>> [round(float(v), 4) for v in mf.criterion[:2]], bool(mf.criterion[2] > 1), bool(mf.mu[3] > 0.5)
        ([0.25, 0.81], True, True)
    """
    j0, j = _float(j0), _float(j)
    check(bool(jnp.all(j >= 0)), "J must be >= 0 (it is a standard deviation scale)")
    return MeanField(*_mean_field(j0, j, int(iterations), int(newton)))


def chaos_criterion(j0: ArrayLike, j: ArrayLike) -> jax.Array:
    """χ(J0, J) = J² ∫Dz sech⁴(J0 μ + J √q0 z) of eq. 3 (> 1: chaotic). See :func:`mean_field`.

    Example:
        >>> chi = chaos_criterion([0.0, 0.0, 0.0, 2.0], [0.5, 0.9, 1.5, 0.5])
        >>> [round(float(v), 6) for v in chi[:2]], bool(chi[2] > 1), bool(chi[3] < 1)
        ([0.25, 0.81], True, True)
    """
    return mean_field(j0, j).criterion


@functools.partial(jax.jit, static_argnames=("bisections", "iterations", "newton"))
def _boundary(ratio, j_min, j_max, bisections: int, iterations: int, newton: int):
    def g(r, j):
        return _solve_one(r * j, j, iterations, newton)[3]

    def one(r):
        r = jnp.abs(r)

        def body(_, bracket):
            lo, hi = bracket
            mid = jnp.sqrt(lo * hi)
            up = g(r, mid) > 0
            return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

        lo, hi = jax.lax.fori_loop(0, bisections, body, (j_min, j_max))
        found = (lo > j_min) & (hi < j_max)  # both ends moved: χ − 1 changed sign inside
        return jnp.where(found, 1 / jnp.sqrt(lo * hi), jnp.nan)

    return jax.vmap(one)(ratio)


def chaos_boundary(
    ratio: ArrayLike, *, j_min: float = 0.05, j_max: float = 1e4, bisections: int = 40, iterations: int = 50, newton: int = 12
) -> jax.Array:
    r"""1/J on the mean-field edge of chaos χ(J0, J) = 1 for each J0/J in ``ratio`` (the paper's Fig. 1b axes).

    Bisection in log J on [j_min, j_max] along J0 = ratio·J; NaN where χ − 1 does not
    change sign there (for J0/J ≳ 3.5 the boundary lies below 1/J = 10⁻⁴). Each χ
    evaluation runs ``iterations`` fixed-point steps and ``newton`` Newton steps of
    :func:`mean_field`; the defaults give 1/J to about 1e-3 near J0/J = 1, better elsewhere.

    The boundary is even in J0/J (for J0/J < −1 the ordered state is a period-2 cycle).

    Example (1/J = 1 for |J0/J| ≤ 1, then the de Almeida–Thouless line):
        >>> inv_j = chaos_boundary([-0.9, -0.5, 0.0, 0.5, 0.9, 1.2, 1.5, 2.0, 3.0])
        >>> [round(float(v), 3) for v in inv_j]
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.523, 0.275, 0.089, 0.006]
        >>> round(float(chaos_boundary([-1.5])[0]), 3)
        0.275
    """
    ratio = jnp.atleast_1d(_float(ratio))
    check(ratio.ndim == 1, f"ratio must be a 1-D grid of J0/J values; got shape {ratio.shape}")
    check(0 < j_min < j_max, f"need 0 < j_min < j_max; got j_min={j_min}, j_max={j_max}")
    return _boundary(ratio, _float(j_min), _float(j_max), int(bisections), int(iterations), int(newton))


# --------------------------------------------------------------------------- random couplings and the map


def random_coupling(key: jax.Array, n: int, j0: float, j: float, dtype: DTypeLike | None = None) -> jax.Array:
    """W = J0/N + (J/√N) z with z_ij ~ N(0, 1): an (n, n) coupling matrix.

    Example:
        >>> import jax
        >>> random_coupling(jax.random.key(0), 4, 0.0, 1.0).shape
        (4, 4)
    """
    check(isinstance(n, (int, np.integer)) and n >= 2, f"n must be an integer >= 2; got {n!r}")
    dtype = dtype or default_float()
    z = jax.random.normal(key, (n, n), dtype)
    return (j0 / n + j / jnp.sqrt(n) * z).astype(dtype)


def estimate_j0_j(w: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """J0 = N·mean(W), J = √N·std(W) of a square (N, N) weight matrix (or a batch ``(..., N, N)``).

    Example:
        >>> import jax.numpy as jnp
        >>> j0, j = estimate_j0_j(jnp.array([[0.5, 1.5], [1.5, 0.5]]))
        >>> float(j0), round(float(j), 6)
        (2.0, 0.707107)
    """
    w = jnp.asarray(w)
    check(w.ndim >= 2 and w.shape[-1] == w.shape[-2], f"W must be square (N, N); got shape {w.shape}")
    n = w.shape[-1]
    return n * jnp.mean(w, axis=(-2, -1)), jnp.sqrt(n) * jnp.std(w, axis=(-2, -1))


@functools.partial(jax.jit, static_argnames=("steps", "average"))
def asymptotic_state(w: ArrayLike, x0: ArrayLike, steps: int = 200, average: int = 50) -> jax.Array:
    """Mean μ_i of x_t over the last ``average`` of ``steps`` iterations of x ↦ tanh(W x) from ``x0``.

    Example (ordered: the attractor is x* = 0):
        >>> import jax
        >>> w = random_coupling(jax.random.key(0), 300, 0.0, 0.5)
        >>> float(jax.numpy.abs(asymptotic_state(w, jax.numpy.ones(300))).max()) < 1e-6
        True
    """
    check(0 < average <= steps, f"need 0 < average <= steps; got average={average}, steps={steps}")

    def body(x, _):
        x = jnp.tanh(w @ x)
        return x, x

    x, _ = jax.lax.scan(body, x0, None, length=steps - average)
    _, xs = jax.lax.scan(body, x, None, length=average)
    return jnp.mean(xs, axis=0)


def jacobian_norm(w: ArrayLike, x_star: ArrayLike) -> jax.Array:
    r"""(1/√N)‖J*‖_F with J* = diag(sech²(W x*)) W the Jacobian of x ↦ tanh(W x) at x* (eq. 1, A4).

    Example (at x* = 0 it is ‖W‖_F/√N, i.e. ≈ J for J0 = 0):
        >>> import jax, jax.numpy as jnp
        >>> w = random_coupling(jax.random.key(0), 300, 0.0, 0.8)
        >>> round(float(jacobian_norm(w, jnp.zeros(300)) / jnp.sqrt(jnp.sum(w**2) / 300)), 6)
        1.0
    """
    w = jnp.asarray(w)
    gain = _sech(w @ x_star) ** 2
    return jnp.sqrt(jnp.sum((gain[:, None] * w) ** 2) / w.shape[-1])


# --------------------------------------------------------------------------- numerical phase diagram


class PhaseHeatmap(NamedTuple):
    """Separation of two nearby trajectories of x ↦ tanh(W x), and its Lyapunov exponent, on a (J0/J, 1/J) grid.

    Attributes:
        ratio: ``(n_ratio,)`` J0/J.
        inv_j: ``(n_inv_j,)`` 1/J.
        separation: ``(n_inv_j, n_ratio)`` RMS distance ‖x_t − x'_t‖/√N averaged over
            the last steps and over W draws (≈ 0 ordered, O(1) chaotic).
        growth: ``(n_inv_j, n_ratio)`` mean over draws of ln(d_final/d_0) (> 0 chaotic).
        per_draw: ``(draws, n_inv_j, n_ratio)`` the separation of each W draw.
        d0: initial RMS separation.
        lyapunov: ``(n_inv_j, n_ratio)`` median over draws of the finite-time largest
            Lyapunov exponent λ⊥ transverse to the uniform direction (< 0 ordered; ½ ln χ
            at a fixed point for N → ∞).
        lyapunov_per_draw: ``(draws, n_inv_j, n_ratio)`` λ⊥ of each W draw.
    """

    ratio: jax.Array
    inv_j: jax.Array
    separation: jax.Array
    growth: jax.Array
    per_draw: jax.Array
    d0: float
    lyapunov: jax.Array
    lyapunov_per_draw: jax.Array


def heatmap_draws(key: jax.Array, n: int, draws: int, dtype: DTypeLike) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The random draws of :func:`separation_heatmap` for ``key``: ``(z, x0, ξ, v0)``, each with a leading draw axis.

    Per draw: standardized couplings z (mean 0, variance 1 over its N² entries, so N·mean(W) = J0 and
    √N·std(W) = J exactly), start x0 ~ N(0, I), unit-variance perturbation direction ξ and tangent seed v0.
    Every cell of the heatmap uses the same draws, so a reference computation can reproduce any cell.
    """
    kz, kx, kd, kv = jax.random.split(key, 4)
    z = jax.random.normal(kz, (draws, n, n), dtype)
    z = z - jnp.mean(z, axis=(1, 2), keepdims=True)
    z = z / jnp.std(z, axis=(1, 2), keepdims=True)
    return (z, jax.random.normal(kx, (draws, n), dtype), jax.random.normal(kd, (draws, n), dtype),
            jax.random.normal(kv, (draws, n), dtype))


@functools.partial(jax.jit, static_argnames=("n", "draws", "steps", "average"))
def _heatmap(ratio, inv_j, key, perturbation, n: int, draws: int, steps: int, average: int):
    dtype = ratio.dtype
    j = jnp.broadcast_to(1 / inv_j[:, None], (inv_j.size, ratio.size))
    j0 = ratio[None, :] * j
    z, x0, dx, v0 = heatmap_draws(key, n, draws, dtype)
    dx = perturbation * dx
    tiny = jnp.finfo(dtype).tiny
    lyap_start = steps // 2  # the exponent averages the log-stretches of steps lyap_start + 1, ..., steps

    def pair(j0, j, z, x0, dx, v0):
        def body(carry, t):
            xs, d_sum, log_sum = carry
            # rows x, x', v: W x = (J0/N) Σ_j x_j + (J/√N) z x is linear, so one product gives
            # the fields of both trajectories and the tangent W v; d tanh(W x) = sech²(W x) ⊙ W dx
            fields = j0 * jnp.mean(xs, -1, keepdims=True) + (j / jnp.sqrt(n)) * (xs @ z.T)
            v = _sech(fields[0]) ** 2 * fields[2]
            v = v - jnp.mean(v)  # P: keeps v ⊥ 1, where the J0 term of W v is zero
            stretch = jnp.sqrt(jnp.sum(v**2))
            xs = jnp.concatenate([jnp.tanh(fields[:2]), (v / jnp.maximum(stretch, tiny))[None]])
            d = jnp.sqrt(jnp.mean((xs[0] - xs[1]) ** 2))
            d_sum = d_sum + jnp.where(t >= steps - average, d, 0)
            log_sum = log_sum + jnp.where(t >= lyap_start, jnp.log(jnp.maximum(stretch, tiny)), 0)
            return (xs, d_sum, log_sum), None

        u0 = v0 - jnp.mean(v0)
        xs = jnp.stack([x0, x0 + dx, u0 / jnp.sqrt(jnp.sum(u0**2))])
        zero = jnp.zeros((), dtype)
        (_, d_sum, log_sum), _ = jax.lax.scan(body, (xs, zero, zero), jnp.arange(steps))
        d0 = jnp.sqrt(jnp.mean(dx**2))
        final = d_sum / average
        return final, jnp.log(jnp.maximum(final, tiny) / d0), log_sum / (steps - lyap_start)

    grid = jax.vmap(jax.vmap(pair, (0, 0, None, None, None, None)), (0, 0, None, None, None, None))
    sep, growth, lyap = jax.vmap(grid, (None, None, 0, 0, 0, 0))(j0, j, z, x0, dx, v0)
    return sep, growth, lyap, jnp.sqrt(jnp.mean(dx**2))


def separation_heatmap(
    ratio: ArrayLike,
    inv_j: ArrayLike,
    key: jax.Array | None = None,
    *,
    n: int = 100,
    draws: int = 3,
    steps: int = 200,
    average: int = 20,
    perturbation: float = 1e-4,
) -> PhaseHeatmap:
    r"""Numerical order–chaos diagram (the heatmap of Fig. 1b) and the transverse Lyapunov exponent, vmapped.

    Each draw z is standardized (mean 0, variance 1 over its N² entries, so that
    N·mean(W) = J0 and √N·std(W) = J exactly) and shared across the grid, so draws
    differ only by J0, J. For every (J0/J, 1/J) and draw, x and x' = x + ``perturbation``·ξ
    are iterated ``steps`` times and their RMS distance is averaged over the last
    ``average`` steps. Along x a unit tangent vector v ⊥ 1 is carried exactly,
    v ← P D_t v/‖P D_t v‖ with D_t = diag(sech²(W x_t)) W the Jacobian and P = I − 11ᵀ/N;
    the finite-time exponent λ⊥ is the mean of ln‖P D_t v_t‖ over the second half of the
    steps (the first ⌊steps/2⌋ are transient). On 1⊥ the J0 part of W vanishes, so λ⊥
    is the growth rate of the bulk (the part of the Jacobian that χ describes): at a
    stable fixed point it is ln of the bulk spectral radius, ½ ln χ for N → ∞, and it
    ignores the rank-one J0 mode, whose loss of stability at J0 = 1 (ferromagnet) or
    J0 = −1 (period 2) is a bifurcation between ordered states, not chaos. A tangent
    vector annihilated in the working precision reads as ln(tiny) per step: deeply ordered.

    Example (ordered at J = 0.5, chaotic at J = 4):
        >>> import jax
        >>> h = separation_heatmap([-0.5, 0.0, 0.5, 1.5, 2.0], [0.25, 0.4, 1.0, 1.5, 2.0], jax.random.key(0),
        ...                        n=64, draws=2, steps=150, average=10)
        >>> h.separation.shape, bool(h.growth[0, 1] > 0), bool(h.growth[4, 1] < 0)  # J0 = 0: J = 4 vs J = 0.5
        ((5, 5), True, True)
        >>> bool(h.lyapunov[0, 1] > 0), bool(abs(h.lyapunov[4, 1] - jax.numpy.log(0.5)) < 0.1)  # ln J at x* = 0
        (True, True)
    """
    ratio, inv_j = jnp.atleast_1d(_float(ratio)), jnp.atleast_1d(_float(inv_j))
    check(ratio.ndim == 1 and inv_j.ndim == 1, "ratio and inv_j must be 1-D grids")
    check(bool(jnp.all(inv_j > 0)), "1/J values must be > 0 (J = ∞ is not a network)")
    check(isinstance(n, (int, np.integer)) and n >= 2, f"n must be an integer >= 2; got {n!r}")
    check(isinstance(draws, (int, np.integer)) and draws >= 1, f"draws must be an integer >= 1; got {draws!r}")
    check(isinstance(steps, (int, np.integer)) and steps >= 2, f"steps must be an integer >= 2; got {steps!r}")
    check(0 < average <= steps, f"need 0 < average <= steps; got average={average}, steps={steps}")
    check(perturbation > 0, f"perturbation must be > 0; got {perturbation}")
    key = jax.random.key(0) if key is None else key
    sep, growth, lyap, d0 = _heatmap(ratio, inv_j, key, _float(perturbation), int(n), int(draws), int(steps),
                                     int(average))
    return PhaseHeatmap(ratio, inv_j, jnp.mean(sep, 0), jnp.mean(growth, 0), sep, float(d0),
                        jnp.median(lyap, 0), lyap)


# --------------------------------------------------------------------------- the numerical edge

EDGE_STATUS = ("found", "above", "below", "nonfinite")
"""Codes of :attr:`Edge.status`: crossing found; the largest-1/J value is already at or past the threshold
(edge above the grid); no value reaches it (edge below the grid); a non-finite value before any crossing."""


class Edge(NamedTuple):
    """Where each column of an order parameter first reaches a threshold, scanning down from the largest 1/J.

    Attributes:
        inv_j: ``(n_ratio,)`` 1/J of the edge, linearly interpolated between grid cells (NaN unless found).
        status: ``(n_ratio,)`` int index into :data:`EDGE_STATUS`.
    """

    inv_j: np.ndarray
    status: np.ndarray


def locate_edge(inv_j: ArrayLike, values: ArrayLike, threshold: float = 0.0) -> Edge:
    r"""Per column, 1/J where ``values`` (< ``threshold`` in the ordered phase, large 1/J) first reaches ``threshold``.

    Scanning 1/J downward from its largest grid value, let a (at 1/J = u_a) be the last
    value below the threshold θ and b (at u_b) the first at or above it; the edge is the
    linear interpolation u* = u_a + (θ − a)(u_b − u_a)/(b − a). Only the ordered region
    connected to the largest 1/J counts: later crossings (ordered windows inside the
    chaotic phase) do not move the edge. ``values`` is ``(n_inv_j, n_ratio)``, or
    ``(n_inv_j,)`` for one column, in the order of ``inv_j`` (any order).

    Example (θ = 0 is crossed between 1/J = 1.0 (−0.1) and 0.5 (0.3): 1.0 − 0.1/0.4·0.5 = 0.875):
        >>> import numpy as np
        >>> values = np.array([[0.3, 0.2, -0.3], [-0.1, 0.1, -0.2], [-0.5, 0.2, -0.1]])  # rows: 1/J = 0.5, 1, 1.5
        >>> e = locate_edge([0.5, 1.0, 1.5], values)
        >>> e.inv_j.round(6).tolist(), [EDGE_STATUS[s] for s in e.status]
        ([0.875, nan, nan], ['found', 'above', 'below'])
    """
    u = np.asarray(inv_j, dtype=float)
    v = np.asarray(values, dtype=float)
    check(u.ndim == 1 and u.size >= 2, f"inv_j must be a 1-D grid of at least 2 values; got shape {u.shape}")
    check(np.unique(u).size == u.size and np.all(np.isfinite(u)), "inv_j values must be finite and distinct")
    v = v[:, None] if v.ndim == 1 else v
    check(v.ndim == 2 and v.shape[0] == u.size,
          f"values must be (n_inv_j, n_ratio) with n_inv_j = {u.size}; got shape {np.shape(values)}")
    check(math.isfinite(threshold), f"threshold must be finite; got {threshold}")
    order = np.argsort(-u)
    u, v = u[order], v[order]
    edge = np.full(v.shape[1], np.nan)
    status = np.full(v.shape[1], EDGE_STATUS.index("below"))
    for col in range(v.shape[1]):
        for k, value in enumerate(v[:, col]):
            if not np.isfinite(value):
                status[col] = EDGE_STATUS.index("nonfinite")
                break
            if value >= threshold:
                if k == 0:
                    status[col] = EDGE_STATUS.index("above")
                else:
                    a = v[k - 1, col]
                    edge[col] = u[k - 1] + (threshold - a) * (u[k] - u[k - 1]) / (value - a)
                    status[col] = EDGE_STATUS.index("found")
                break
    return Edge(edge, status)


class EdgeComparison(NamedTuple):
    """Distance between a numerical and the mean-field edge, column by column, and its summary.

    Attributes:
        distance: ``(n_ratio,)`` |numerical − mean field| in 1/J (NaN where either edge is missing).
        summary: for each set of columns ``s`` (``j0_le_j``: J0/J ≤ 1; ``abs_j0_lt_j``: |J0/J| < 1,
            i.e. without the columns J0 = ±J that run along the ferromagnet–spin-glass boundary;
            ``j0_gt_j``: J0/J > 1), ``max_s`` and ``mean_s`` of the finite distances (NaN if none),
            ``compared_s`` (columns with both edges) and ``missing_s`` (mean-field edge inside the
            1/J grid, no numerical edge).
    """

    distance: np.ndarray
    summary: dict


def compare_edges(ratio: ArrayLike, numerical: ArrayLike, mean_field: ArrayLike, inv_j_range: tuple[float, float]) -> EdgeComparison:
    r"""Per-column distance |u_num − u_mf| between two edges in 1/J, summarized for J0/J ≤ 1, |J0/J| < 1 and > 1.

    Example:
        >>> import numpy as np
        >>> c = compare_edges([0.0, 1.0, 1.5, 2.0], [1.05, np.nan, 0.2, 0.1], [1.0, 1.0, 0.275, 0.089], (0.04, 2.0))
        >>> c.distance.round(3).tolist()
        [0.05, nan, 0.075, 0.011]
        >>> {k: round(v, 3) for k, v in c.summary.items() if k.endswith("j0_le_j")}
        {'max_j0_le_j': 0.05, 'mean_j0_le_j': 0.05, 'compared_j0_le_j': 1, 'missing_j0_le_j': 1}
        >>> round(c.summary["mean_j0_gt_j"], 3), c.summary["missing_abs_j0_lt_j"]
        (0.043, 0)
    """
    r, num, mf = (np.asarray(a, dtype=float) for a in (ratio, numerical, mean_field))
    check(r.ndim == 1 and num.shape == r.shape and mf.shape == r.shape,
          f"ratio, numerical and mean_field must be 1-D of one length; got {r.shape}, {num.shape}, {mf.shape}")
    lo, hi = (float(x) for x in inv_j_range)
    check(lo <= hi, f"inv_j_range must be (min, max); got {inv_j_range}")
    distance = np.abs(num - mf)
    tol = 1e-9  # grid values such as linspace(-1, 2, 46)[30] = 1 ± 1 ulp count as J0/J = 1
    summary = {}
    for side, mask in (("j0_le_j", r <= 1 + tol), ("abs_j0_lt_j", np.abs(r) < 1 - tol), ("j0_gt_j", r > 1 + tol)):
        d = distance[mask & np.isfinite(distance)]
        summary[f"max_{side}"] = float(d.max()) if d.size else float("nan")
        summary[f"mean_{side}"] = float(d.mean()) if d.size else float("nan")
        summary[f"compared_{side}"] = int(d.size)
        summary[f"missing_{side}"] = int(np.sum(mask & np.isnan(num) & (mf >= lo) & (mf <= hi)))
    return EdgeComparison(distance, summary)


# --------------------------------------------------------------------------- training path


def square_tanh_net(n: int, n_classes: int, j0: float = 0.0, j: float = 0.5) -> Model:
    """Input → tanh(W x) (square N×N, no bias) → softmax logits, with W_ij = J0/N + (J/√N) z_ij at init.

    Parameters use the layout of :func:`gdchaos.core.models.mlp`: ``layer0/kernel`` (N, N)
    holds Wᵀ (h = tanh(x @ kernel)), ``layer1/kernel`` (N, C) ~ N(0, 1/N) and
    ``layer1/bias`` (C,) = 0.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = square_tanh_net(8, 3)
        >>> p = net.init(jax.random.key(0))
        >>> net.apply(p, jnp.ones((5, 8))).shape, sorted(p["layer0"])
        ((5, 3), ['kernel'])
    """
    check(n >= 2 and n_classes >= 2, f"need n >= 2 and n_classes >= 2; got n={n}, n_classes={n_classes}")
    check(j > 0, f"initial J must be > 0; got {j}")
    def init(key):
        dtype = default_float()
        k1, k2 = jax.random.split(key)
        w = random_coupling(k1, n, j0, j, dtype)
        return {
            "layer0": {"kernel": w.T},
            "layer1": {
                "kernel": jax.random.normal(k2, (n, n_classes), dtype) / jnp.sqrt(n).astype(dtype),
                "bias": jnp.zeros((n_classes,), dtype),
            },
        }

    return Model(init, _square_apply)


def _square_apply(params, x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["layer0"]["kernel"])
    return h @ params["layer1"]["kernel"] + params["layer1"]["bias"]


def hidden_matrix(params: PyTree, layer: str = "layer0") -> jax.Array:
    """W of the hidden map x ↦ tanh(W x): the transpose of ``params[layer]["kernel"]``."""
    return params[layer]["kernel"].T


class Tracking(NamedTuple):
    """The path of a trained square tanh layer, recorded at the start of every epoch and at the end.

    Attributes (all ``(epochs + 1,)``):
        epoch: 0, 1, ..., epochs.
        j0, j: J0 = N·mean(W), J = √N·std(W).
        jacobian_norm: (1/√N)‖J*‖_F at the attractor mean of x ↦ tanh(W x).
        train_loss, test_loss, test_accuracy: full-set evaluations.
        diverged: True once any update produced non-finite values.
    """

    epoch: jax.Array
    j0: jax.Array
    j: jax.Array
    jacobian_norm: jax.Array
    train_loss: jax.Array
    test_loss: jax.Array
    test_accuracy: jax.Array
    diverged: jax.Array


def track_training(
    data: Dataset,
    *,
    epochs: int = 20,
    eta: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    j0_init: float = 0.0,
    j_init: float = 0.5,
    key: jax.Array | None = None,
    model: Model | None = None,
    layer: str = "layer0",
) -> Tracking:
    r"""Train a square tanh network with SGD + momentum and record (J0, J) of its hidden layer per epoch.

    The update is :func:`gdchaos.core.maps.momentum` with ``batch_size``: v ← α v + ∇(L + λ‖θ‖²),
    θ ← θ − η v, i.e. the paper's v ← α v − η(g + 2λw) with λ = ``weight_decay``
    applied to every parameter (``hyper["l2"] = 2λ``). An epoch is ⌊S/B⌋ updates, each
    on B samples drawn without replacement. The network is :func:`square_tanh_net`
    (N = number of input features) unless ``model`` is given (any model whose
    ``params[layer]["kernel"]`` is square, e.g. ``gdchaos.core.models.mlp((N, N, C), "tanh",
    init="fan_in", weight_std=0.5, use_bias=False, output_bias=True)``).

    Args:
        data: a :class:`gdchaos.core.data.Dataset` (inputs are flattened).
        epochs, eta, momentum, batch_size, weight_decay: training parameters (E, η, α, B, λ).
        j0_init, j_init: (J0, J) of the initial hidden layer (paper: 0 and 0.5).
        key: PRNG key for the initialization and the mini-batches.

    Example:
        >>> import jax
        >>> from gdchaos.core.data import synthetic
        >>> tr = track_training(synthetic(), epochs=6, eta=0.05, momentum=0.5, batch_size=16)
        >>> tr.j.shape, bool(abs(tr.j[0] - 0.5) < 0.1), bool(tr.j[-1] > tr.j[0])
        ((7,), True, True)
    """
    check(isinstance(epochs, (int, np.integer)) and epochs >= 1, f"epochs must be an integer >= 1; got {epochs!r}")
    check(eta > 0, f"eta must be > 0; got {eta}")
    check(0 <= momentum < 1, f"momentum must be in [0, 1); got {momentum}")
    check(weight_decay >= 0, f"weight_decay must be >= 0; got {weight_decay}")
    data = data.flatten()
    dtype = default_float()
    x, y = jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train)
    xt, yt = jnp.asarray(data.x_test, dtype), jnp.asarray(data.y_test)
    s = x.shape[0]
    check(
        isinstance(batch_size, (int, np.integer)) and 1 <= batch_size <= s,
        f"batch_size must be an integer in 1..{s} (training set size); got {batch_size!r}",
    )
    model = model or square_tanh_net(data.n_features, data.n_classes, j0_init, j_init)
    key = jax.random.key(0) if key is None else key
    k_init, k_train, k_probe = jax.random.split(key, 3)
    params = model.init(k_init)
    check(
        layer in params and params[layer]["kernel"].ndim == 2 and params[layer]["kernel"].shape[0] == params[layer]["kernel"].shape[1],
        f"params[{layer!r}]['kernel'] must be a square matrix (hidden width = input width)",
    )
    hyper = {k: jnp.asarray(v, dtype) for k, v in
             {"learning_rate": eta, "momentum": momentum, "l2": 2 * weight_decay}.items()}
    probe = jax.random.normal(k_probe, (params[layer]["kernel"].shape[0],), dtype)
    return _train(params, k_train, hyper, x, y, xt, yt, probe, apply=model.apply, layer=layer, epochs=int(epochs),
                  batch_size=int(batch_size))


def _record(apply, layer, params, x, y, xt, yt, probe):
    w = hidden_matrix(params, layer)
    j0, j = estimate_j0_j(w)
    jn = jacobian_norm(w, asymptotic_state(w, probe))
    logits = apply(params, xt)
    return (j0, j, jn, losses.cross_entropy(apply(params, x), y),
            losses.cross_entropy(logits, yt), losses.accuracy(logits, yt))


@functools.partial(jax.jit, static_argnames=("apply", "layer", "epochs", "batch_size"))
def _train(params, key, hyper, x, y, xt, yt, probe, *, apply, layer, epochs, batch_size) -> Tracking:
    """One compiled program per (model, layer, epochs, batch size, data shapes); η, α, λ are arguments."""
    # β only seeds the optimizer state; hyper["momentum"] sets α at every step
    tmap = maps.momentum(maps.supervised_loss(apply, losses.cross_entropy), x, y, beta=0.5, batch_size=batch_size)
    steps_per_epoch = x.shape[0] // batch_size

    def epoch(carry, _):
        state, diverged = carry
        rec = _record(apply, layer, state.params, x, y, xt, yt, probe)
        state, info = jax.lax.scan(lambda s, _: tmap.step(s, hyper), state, None, length=steps_per_epoch)
        return (state, diverged | jnp.any(info.diverged)), (*rec, diverged)

    init = (tmap.init(params, key), jnp.asarray(False))
    (state, diverged), recs = jax.lax.scan(epoch, init, None, length=epochs)
    last = (*_record(apply, layer, state.params, x, y, xt, yt, probe), diverged)
    cols = [jnp.concatenate([r, jnp.asarray(v)[None]]) for r, v in zip(recs, last)]
    return Tracking(jnp.arange(epochs + 1), *cols)


# --------------------------------------------------------------------------- scaling relations


class Growth(NamedTuple):
    """Linear fit J² = A·epoch + C over the ordered part of a path, and what follows from it.

    Attributes:
        slope: A (per epoch).
        intercept: C.
        n_points: epochs used (J² < ``max_j2``).
        scale_factor: η/((1 − α)B).
        d: D = A/scale_factor (eq. 5).
        weight_decay: λ* ≈ D/(4 S J*²) (eq. 9).
    """

    slope: jax.Array
    intercept: jax.Array
    n_points: jax.Array
    scale_factor: float
    d: jax.Array
    weight_decay: jax.Array


def scale_factor(eta: ArrayLike, momentum: float, batch_size: int) -> ArrayLike:
    """The scale factor η/((1 − α)B) of eq. 5.

    Example:
        >>> scale_factor(0.01, 0.0, 32)
        0.0003125
    """
    check(0 <= momentum < 1, f"momentum must be in [0, 1); got {momentum}")
    check(batch_size >= 1, f"batch_size must be >= 1; got {batch_size}")
    return eta / ((1 - momentum) * batch_size)


def fit_growth(epoch: ArrayLike, j2: ArrayLike, max_j2: float = 1.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Least-squares A, C of J² = A·epoch + C over the points with J² < ``max_j2`` (the ordered phase).

    Returns ``(A, C, n_points)``; A and C are NaN with fewer than two points.

    Example:
        >>> a, c, n = fit_growth([0, 1, 2, 3, 4], [0.25, 0.45, 0.65, 0.85, 1.2])
        >>> round(float(a), 6), round(float(c), 6), int(n)
        (0.2, 0.25, 4)
    """
    t, y = _float(epoch), _float(j2)
    use = jnp.isfinite(y) & (y < max_j2)
    slope, intercept, _ = line_fit(t, y, use)
    return slope, intercept, jnp.sum(use)


def growth_constant(slope: ArrayLike, eta: ArrayLike, momentum: float, batch_size: int) -> ArrayLike:
    """D = A (1 − α) B / η, the data- and architecture-dependent constant of eq. 5.

    Example:
        >>> round(growth_constant(0.002, 0.01, 0.0, 32), 6)
        6.4
    """
    return slope / scale_factor(eta, momentum, batch_size)


def optimal_weight_decay(d: ArrayLike, n_train: int, j_star: float = 1.0) -> ArrayLike:
    """λ* ≈ D/(4 S J*²) (eq. 9): the weight decay that holds J² at J*² (the edge of chaos for J* = 1).

    Equivalently A(1 − α)B/(4ηS J*²) (eq. 8).

    Example:
        >>> optimal_weight_decay(12.0, 60000)
        5e-05
    """
    check(n_train >= 1, f"n_train must be >= 1; got {n_train}")
    check(j_star > 0, f"j_star must be > 0; got {j_star}")
    return d / (4 * n_train * j_star**2)


def analyze_growth(tracking: Tracking, eta: ArrayLike, momentum: float, batch_size: int, n_train: int, j_star: float = 1.0,
                   max_j2: float = 1.0) -> Growth:
    """Fit J² vs epoch of a :class:`Tracking` and derive the scale factor, D and λ*.

    Example:
        >>> tr = Tracking(*(jnp.asarray(v) for v in (
        ...     [0, 1, 2], [0., 0., 0.], [0.5, 0.6, 0.7], [0.5] * 3, [1.] * 3, [1.] * 3, [.5] * 3, [False] * 3)))
        >>> g = analyze_growth(tr, eta=0.01, momentum=0.0, batch_size=32, n_train=1000)
        >>> round(float(g.slope), 4), g.scale_factor, round(float(g.d), 2), round(float(g.weight_decay), 4)
        (0.12, 0.0003125, 384.0, 0.096)
    """
    slope, intercept, n = fit_growth(tracking.epoch, tracking.j**2, max_j2)
    sf = scale_factor(eta, momentum, batch_size)
    d = slope / sf
    return Growth(slope, intercept, n, sf, d, optimal_weight_decay(d, n_train, j_star))
