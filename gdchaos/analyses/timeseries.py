r"""Scalar time-series diagnostics of training: autocorrelation with a shuffled null, Kantz exponents.

Autocorrelation (biased estimator, as in danovski2024 Fig. 10) of x_0..x_{N−1}:

    ρ(k) = Σ_{t=0}^{N−1−k} (x_t − x̄)(x_{t+k} − x̄) / Σ_{t=0}^{N−1} (x_t − x̄)²,   k = 0..K.

Its null band comes from shuffled surrogates (random permutations of x, which keep
the marginal distribution and destroy temporal order): the central ``level``
interval of ρ(k) over the surrogates, per lag.

Kantz's method (Kantz 1994; danovski2024 Fig. 11) estimates the largest Lyapunov
exponent from one scalar series. Delay vectors y_n = (x_n, x_{n+τ}, ..., x_{n+(m−1)τ})
have present time t_n = n + (m−1)τ. For a reference n, its neighbours are the
U_n = {j : ‖y_j − y_n‖ < r, |j − n| > w} (max norm by default, Theiler window w),
and its divergence curve is

    s_n(k) = ln( |U_n|⁻¹ Σ_{j∈U_n} |x_{t_n+k} − x_{t_j+k}| ),   k = 0..K,

the log of the mean distance between the neighbours' futures ("perturbations" of the
initial point n). The global curve is S(k) = mean over references of s_n(k); in the
linear region S(k) ≈ S_0 + λ k and the slope λ estimates the largest exponent
(nats per step). Per initial point, as in danovski2024, the slope Λ_n of s_n(k) over
the fit window is tested against the null of no exponential divergence (zero
slope) with the t-test of the least-squares slope,

    t = sign(Λ) √(R² (n_k − 2) / (1 − R²)),   n_k − 2 degrees of freedom,

giving a p-value per initial point and one for S(k). The default alternative is
one-sided (Λ > 0: exponential divergence); ``alternative="two-sided"`` gives the
two-sided test. The fit window is a fixed range of k (default k = 1..6, leaving out
k = 0, where the neighbour distance is bounded by r by construction) or the
best-R² window of :func:`gdchaos.analyses.lyapunov.finite.best_window_fit`; p-values of a
best-R² window are optimistic (the window is chosen after seeing the data).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from scipy.special import stdtr

from gdchaos.core.errors import check
from gdchaos.analyses.lyapunov.finite import WindowFit, best_window_fit

ALTERNATIVES = ("greater", "two-sided", "less")
NORMS = ("max", "euclidean")


# --------------------------------------------------------------------------- ACF


def _check_lag(n: int, max_lag: int) -> None:
    check(
        isinstance(max_lag, (int, np.integer)) and 0 <= max_lag < n,
        f"max_lag must be an integer in 0..{n - 1} (the series has {n} points); got {max_lag!r}",
    )


@functools.partial(jax.jit, static_argnames=("max_lag",))
def _acf(x, max_lag: int):
    n = x.shape[-1]
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    n_fft = 1 << int(2 * n - 1).bit_length()
    f = jnp.fft.rfft(xc, n=n_fft, axis=-1)
    cov = jnp.fft.irfft(f * jnp.conj(f), n=n_fft, axis=-1)[..., : max_lag + 1]
    return cov / cov[..., :1]


def autocorrelation(x: ArrayLike, max_lag: int) -> jax.Array:
    """ρ(k), k = 0..max_lag, of the series on the last axis (leading axes are batched).

    ρ(k) = Σ_{t<N−k} (x_t − x̄)(x_{t+k} − x̄) / Σ_t (x_t − x̄)², computed with an FFT;
    ρ(0) = 1, and a constant series gives NaN.

    Returns an array of shape ``x.shape[:-1] + (max_lag + 1,)``.

    Example:
        >>> import jax.numpy as jnp
        >>> acf = autocorrelation(jnp.array([1.0, -1.0, 1.0, -1.0]), 2)
        >>> [round(float(a), 6) for a in acf]
        [1.0, -0.75, 0.5]
    """
    x = jnp.asarray(x)
    check(x.ndim >= 1, f"x must have a time axis (last); got a scalar of shape {x.shape}")
    _check_lag(x.shape[-1], max_lag)
    return _acf(x.astype(jnp.result_type(x.dtype, float)), max_lag)


class SurrogateBand(NamedTuple):
    """Central ``level`` interval of the ACF of shuffled surrogates, per lag.

    Attributes:
        lower: ``(max_lag + 1,)`` lower quantile (1 − level)/2 of ρ(k).
        upper: ``(max_lag + 1,)`` upper quantile (1 + level)/2 of ρ(k).
        surrogate_acf: ``(n_surrogates, max_lag + 1)`` ρ(k) of every surrogate.
    """

    lower: jax.Array
    upper: jax.Array
    surrogate_acf: jax.Array


def _shuffle(key, x):
    """A uniformly random permutation of x (argsort of independent random 32-bit keys)."""
    return x[jnp.argsort(jax.random.bits(key, x.shape, jnp.uint32))]


@functools.partial(jax.jit, static_argnames=("max_lag", "n_surrogates"))
def _band(x, key, level, max_lag: int, n_surrogates: int):
    shuffled = jax.vmap(_shuffle, in_axes=(0, None))(jax.random.split(key, n_surrogates), x)
    acfs = _acf(shuffled, max_lag)
    q = jnp.stack([(1.0 - level) / 2.0, (1.0 + level) / 2.0]).astype(acfs.dtype)
    lower, upper = jnp.quantile(acfs, q, axis=0)
    return SurrogateBand(lower, upper, acfs)


def surrogate_band(x: ArrayLike, max_lag: int, n_surrogates: int, key: jax.Array, level: float = 0.95) -> SurrogateBand:
    """The ``level`` band of ρ(k) under the null of no temporal order (shuffled surrogates).

    Each surrogate is a random permutation of ``x`` (1-D); surrogates are vmapped.
    A lag k with ρ(k) outside [lower(k), upper(k)] is significant at 1 − level.

    Example:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (200,))
        >>> band = surrogate_band(x, 5, 100, jax.random.key(1))
        >>> band.lower.shape, bool(band.upper[1] > 0 > band.lower[1])
        ((6,), True)
    """
    x = jnp.asarray(x)
    check(x.ndim == 1, f"x must be one series of shape (N,); got shape {x.shape} (vmap over series yourself)")
    _check_lag(x.shape[0], max_lag)
    check(n_surrogates >= 2, f"n_surrogates must be >= 2 (use hundreds for a 95% band); got {n_surrogates}")
    check(0.0 < level < 1.0, f"level must be in (0, 1), e.g. 0.95; got {level}")
    x = x.astype(jnp.result_type(x.dtype, float))
    return _band(x, key, jnp.asarray(level, x.dtype), max_lag, n_surrogates)


# ------------------------------------------------------------------ significance


def slope_p_value(slope: ArrayLike, r2: ArrayLike, n_points: ArrayLike, alternative: str = "greater") -> np.ndarray:
    r"""p-value of a least-squares slope against the null of zero slope (t-test).

    With R² of the fit over ``n_points`` points, t = sign(slope) √(R² (n − 2)/(1 − R²))
    has Student's t distribution with n − 2 degrees of freedom under the null.
    ``alternative``: ``"greater"`` (slope > 0, exponential divergence), ``"less"``
    or ``"two-sided"``. NaN slopes give NaN. Host-side (numpy), like the window fits.

    Example:
        >>> p = slope_p_value(0.5, 0.9, 10)
        >>> round(float(p), 7)
        1.43e-05
    """
    check(alternative in ALTERNATIVES, f"alternative must be one of {list(ALTERNATIVES)}; got {alternative!r}")
    slope = np.asarray(slope, np.float64)
    r2 = np.clip(np.asarray(r2, np.float64), 0.0, 1.0)
    df = np.asarray(n_points, np.float64) - 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.sign(slope) * np.sqrt(np.where(r2 < 1.0, r2 / (1.0 - r2), np.inf) * df)
    t = np.where(r2 > 0, t, 0.0)
    safe_df = np.where(df > 0, df, 1.0)
    if alternative == "greater":
        p = stdtr(safe_df, -t)
    elif alternative == "less":
        p = stdtr(safe_df, t)
    else:
        p = np.minimum(2.0 * stdtr(safe_df, -np.abs(t)), 1.0)
    return np.where(np.isfinite(slope) & np.isfinite(r2) & (df > 0), p, np.nan)


# ------------------------------------------------------------------------- Kantz


def delay_embed(x: ArrayLike, dim: int, delay: int = 1) -> jax.Array:
    """Delay vectors y_n = (x_n, x_{n+τ}, ..., x_{n+(m−1)τ}) as rows, n = 0..N−1−(m−1)τ.

    Returns shape ``(N − (dim − 1)·delay, dim)``; row n's present time is n + (dim − 1)·delay.

    Example:
        >>> import jax.numpy as jnp
        >>> delay_embed(jnp.arange(5.0), dim=2, delay=2).tolist()
        [[0.0, 2.0], [1.0, 3.0], [2.0, 4.0]]
    """
    x = jnp.asarray(x)
    check(x.ndim == 1, f"x must be one series of shape (N,); got shape {x.shape}")
    check(isinstance(dim, (int, np.integer)) and dim >= 1, f"embedding dim must be an integer >= 1; got {dim!r}")
    check(isinstance(delay, (int, np.integer)) and delay >= 1, f"delay must be an integer >= 1; got {delay!r}")
    span = (dim - 1) * delay
    check(
        span < x.shape[0],
        f"the embedding spans (dim - 1) * delay = {span} steps but the series has {x.shape[0]} points; "
        "lower dim or delay, or use a longer series",
    )
    idx = np.arange(x.shape[0] - span)[:, None] + delay * np.arange(dim)[None, :]
    return x[idx]


class KantzDivergence(NamedTuple):
    """Divergence curves of Kantz's method; R references, K = max_steps.

    Attributes:
        steps: ``(K + 1,)`` k = 0..K.
        curve: ``(K + 1,)`` S(k) = mean over references with neighbours of s_n(k).
        point_curves: ``(R, K + 1)`` s_n(k) per reference; NaN rows for references
            without enough neighbours.
        n_neighbors: ``(R,)`` |U_n|.
        times: ``(R,)`` present time t_n of each reference (index into x).
    """

    steps: jax.Array
    curve: jax.Array
    point_curves: jax.Array
    n_neighbors: jax.Array
    times: jax.Array


_STATIC = ("dim", "delay", "max_steps", "theiler", "norm", "references", "min_neighbors")


def _divergence_core(x, radius, floor, dim, delay, max_steps, theiler, norm, references, min_neighbors):
    span = (dim - 1) * delay
    emb = delay_embed(x, dim, delay)
    n_points = emb.shape[0] - max_steps  # points whose future reaches k = K
    pts = emb[:n_points]
    times = np.arange(n_points) + span
    future = x[times[:, None] + np.arange(max_steps + 1)[None, :]]  # (P, K+1)
    ref = np.asarray(references)
    diff = jnp.abs(pts[ref][:, None, :] - pts[None, :, :])  # (R, P, m)
    dist = jnp.max(diff, axis=-1) if norm == "max" else jnp.sqrt(jnp.sum(diff * diff, axis=-1))
    far_in_time = np.abs(ref[:, None] - np.arange(n_points)[None, :]) > theiler
    mask = (dist < radius) & far_in_time
    count = jnp.sum(mask, axis=1)

    def summed(f):  # f: (P,) values at one k
        return jnp.sum(jnp.where(mask, jnp.abs(f[ref][:, None] - f[None, :]), 0.0), axis=1)

    sums = jax.lax.map(summed, future.T).T  # (R, K+1)
    mean = jnp.maximum(sums / jnp.maximum(count, 1)[:, None], floor)
    ok = (count >= min_neighbors)[:, None]
    point_curves = jnp.where(ok, jnp.log(mean), jnp.nan)
    curve = jnp.nanmean(point_curves, axis=0)
    return KantzDivergence(jnp.arange(max_steps + 1), curve, point_curves, count, jnp.asarray(times[ref]))


_divergence = jax.jit(_divergence_core, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC + ("n_surrogates", "batch_size"))
def _surrogate_curves(x, key, radius, floor, n_surrogates, batch_size, **static):
    """S(k) of ``n_surrogates`` shuffled copies of x, ``batch_size`` at a time (vmapped)."""
    keys = jax.random.split(key, n_surrogates)

    def one(k):
        return _divergence_core(_shuffle(k, x), radius, floor, **static).curve

    return jax.lax.map(one, keys, batch_size=batch_size)


def _reference_indices(n_points: int, n_references: int | None) -> tuple[int, ...]:
    if n_references is None or n_references >= n_points:
        return tuple(range(n_points))
    return tuple(int(i) for i in np.unique(np.linspace(0, n_points - 1, n_references).round().astype(int)))


def _prepare(x, radius, dim, delay, max_steps, theiler, norm, n_references, min_neighbors, floor):
    """Validated series, radius, floor and the static arguments of :func:`_divergence_core`."""
    x = jnp.asarray(x)
    x = x.astype(jnp.result_type(x.dtype, float))
    check(x.ndim == 1, f"x must be one series of shape (N,); got shape {x.shape}")
    check(bool(np.all(np.isfinite(np.asarray(x)))), "x has non-finite values; cut the series to its finite part")
    check(np.isfinite(radius) and radius > 0, f"radius must be a finite number > 0 (same units as x); got {radius}")
    check(norm in NORMS, f"norm must be one of {list(NORMS)}; got {norm!r}")
    check(
        isinstance(max_steps, (int, np.integer)) and max_steps >= 1, f"max_steps must be an integer >= 1; got {max_steps!r}"
    )
    check(isinstance(theiler, (int, np.integer)) and theiler >= 0, f"theiler must be an integer >= 0; got {theiler!r}")
    check(min_neighbors >= 1, f"min_neighbors must be >= 1; got {min_neighbors}")
    delay_embed(x, dim, delay)  # checks dim, delay and the embedding span
    span = (dim - 1) * delay
    n_points = x.shape[0] - span - max_steps
    check(
        n_points >= 2,
        f"the series has {x.shape[0]} points, too short for embedding span {span} plus max_steps={max_steps}; "
        f"use a series longer than {span + max_steps + 2} points (thousands are typical) or lower dim/delay/max_steps",
    )
    if n_references is not None:
        check(n_references >= 1, f"n_references must be >= 1 or None (all points); got {n_references}")
    if floor is None:
        scale = max(float(jnp.max(jnp.abs(x))), float(jnp.finfo(x.dtype).tiny))
        floor = 100.0 * float(jnp.finfo(x.dtype).eps) * scale
    check(np.isfinite(floor) and floor > 0, f"floor must be a finite number > 0 or None; got {floor}")
    static = dict(
        dim=int(dim), delay=int(delay), max_steps=int(max_steps), theiler=int(theiler), norm=norm,
        references=_reference_indices(n_points, n_references), min_neighbors=int(min_neighbors),
    )
    return x, jnp.asarray(radius, x.dtype), jnp.asarray(floor, x.dtype), static


def kantz_divergence(
    x: ArrayLike,
    radius: float,
    *,
    dim: int = 2,
    delay: int = 1,
    max_steps: int = 15,
    theiler: int = 10,
    norm: str = "max",
    n_references: int | None = None,
    min_neighbors: int = 1,
    floor: float | None = None,
) -> KantzDivergence:
    """Kantz's divergence curves s_n(k) and S(k) of a scalar series (see the module docstring).

    Args:
        x: ``(N,)`` series.
        radius: neighbourhood radius r (same units as x; > 0).
        dim, delay: embedding dimension m and delay τ.
        max_steps: K, the largest k.
        theiler: w; points with |j − n| ≤ w are never neighbours of n.
        norm: ``"max"`` (Chebyshev, Kantz's choice) or ``"euclidean"``.
        n_references: use this many references evenly spaced in time (default: all
            points with K future steps). Neighbours are always searched among all of them.
        min_neighbors: references with fewer neighbours are left out (NaN rows).
        floor: mean distances below it count as ``floor`` (the resolution of x), so
            exactly repeating futures give a flat curve instead of ln 0. Default
            100 · machine epsilon · max|x|.

    Cost: O(R · P) memory and O(R · P · (m + K)) time for P embedded points.

    Example:
        >>> import numpy as np
        >>> x = np.empty(1000); x[0] = 0.3
        >>> for t in range(999): x[t + 1] = 4 * x[t] * (1 - x[t])
        >>> div = kantz_divergence(x, 0.005, max_steps=8)
        >>> div.curve.shape, bool(div.curve[5] - div.curve[1] > 2.0)
        ((9,), True)
    """
    x, r, fl, static = _prepare(x, radius, dim, delay, max_steps, theiler, norm, n_references, min_neighbors, floor)
    div = _divergence(x, r, fl, **static)
    n_ok = int(np.sum(np.asarray(div.n_neighbors) >= min_neighbors))
    check(
        n_ok > 0,
        f"no reference point has {min_neighbors} neighbour(s) within radius {radius:g}; increase radius "
        f"(the series has std {float(np.std(np.asarray(x))):.3g}), lower theiler, or use a longer series",
    )
    return div


class KantzResult(NamedTuple):
    """Kantz exponent of a series: global curve and fit, and per-initial-point exponents and tests.

    R references, K = max_steps, S shuffled surrogates. Exponents are in nats per step.

    Attributes:
        steps: ``(K + 1,)`` k = 0..K.
        curve: ``(K + 1,)`` S(k).
        exponent: slope λ of S(k) over the fit window (scalar).
        intercept: S at the window's first step, from the fit (scalar).
        r2: R² of that fit (scalar).
        p_value: t-test p-value of λ against zero slope (scalar). Adjacent S(k) share
            samples, so this test is optimistic; prefer ``surrogate_p_value``.
        start, length: the global fit window, k = start..start + length.
        point_curves: ``(R, K + 1)`` s_n(k).
        point_exponent: ``(R,)`` Λ_n, slope of s_n(k) over its window (NaN without neighbours).
        point_r2: ``(R,)`` R² per point.
        point_p_value: ``(R,)`` t-test p-value of Λ_n per point (danovski2024 Fig. 11).
        point_start, point_length: ``(R,)`` the window per point.
        n_neighbors: ``(R,)`` |U_n|.
        times: ``(R,)`` present time t_n of each reference.
        values: ``(R,)`` x at t_n (to plot Λ_n against the initial value, as in Fig. 11).
        significant_fraction: fraction of points with a valid fit and p < alpha (scalar).
        alpha: the significance level used for ``significant_fraction``.
        surrogate_exponents: ``(S,)`` λ of shuffled copies of x, same fit (empty if S = 0).
        surrogate_p_value: (1 + #{λ_s ≥ λ}) / (1 + #valid λ_s), the rank test of λ
            against shuffled surrogates (NaN if S = 0; two-sided with |λ| when
            ``alternative="two-sided"``, and #{λ_s ≤ λ} when ``"less"``).
    """

    steps: np.ndarray
    curve: np.ndarray
    exponent: float
    intercept: float
    r2: float
    p_value: float
    start: int
    length: int
    point_curves: np.ndarray
    point_exponent: np.ndarray
    point_r2: np.ndarray
    point_p_value: np.ndarray
    point_start: np.ndarray
    point_length: np.ndarray
    n_neighbors: np.ndarray
    times: np.ndarray
    values: np.ndarray
    significant_fraction: float
    alpha: float
    surrogate_exponents: np.ndarray
    surrogate_p_value: float


def _fit(y: np.ndarray, fit_range, starts, lengths) -> WindowFit:
    if fit_range is not None:
        return best_window_fit(y, starts=(fit_range[0],), lengths=(fit_range[1] - fit_range[0],))
    return best_window_fit(y, starts=starts, lengths=lengths)


def _rank_p_value(observed: float, null: np.ndarray, alternative: str) -> float:
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    if alternative == "greater":
        extreme = np.sum(null >= observed)
    elif alternative == "less":
        extreme = np.sum(null <= observed)
    else:
        extreme = np.sum(np.abs(null) >= abs(observed))
    return float((1 + extreme) / (1 + null.size))


def kantz(
    x: ArrayLike,
    radius: float,
    *,
    dim: int = 2,
    delay: int = 1,
    max_steps: int = 15,
    theiler: int = 10,
    norm: str = "max",
    n_references: int | None = None,
    min_neighbors: int = 1,
    floor: float | None = None,
    fit_range: tuple[int, int] | None = (1, 6),
    starts: Sequence[int] | None = None,
    lengths: Sequence[int] | None = None,
    alternative: str = "greater",
    alpha: float = 0.05,
    n_surrogates: int = 0,
    key: jax.Array | None = None,
    surrogate_batch: int = 8,
) -> KantzResult:
    r"""Largest Lyapunov exponent of a scalar series by Kantz's method, with significance tests.

    λ is the least-squares slope of S(k) over ``fit_range`` = (k₀, k₁) (inclusive,
    default k = 1..6); with ``fit_range=None``, over the best-R² window of the
    ``starts`` × ``lengths`` grid (each curve chooses its own; default starts 1..3,
    lengths 3..K − max(starts)). Per initial point n, Λ_n is the slope of s_n(k) over
    the same kind of window and ``point_p_value`` is the t-test of Λ_n against zero
    slope (no exponential divergence), as in danovski2024 Fig. 11. With
    ``n_surrogates`` > 0 (and a ``key``), λ is also ranked against the λ of shuffled
    copies of x (``surrogate_p_value``; vmapped ``surrogate_batch`` at a time). See
    :func:`kantz_divergence` for the embedding and neighbour arguments.

    Pick r a few percent of the series' spread and a window in the linear region of
    S(k) (before it saturates at the attractor size).

    Example:
        >>> import numpy as np
        >>> x = np.empty(1000); x[0] = 0.3
        >>> for t in range(999): x[t + 1] = 4 * x[t] * (1 - x[t])
        >>> res = kantz(x, 0.005, max_steps=8, fit_range=(1, 5))
        >>> bool(abs(res.exponent - np.log(2)) < 0.1), bool(res.p_value < 0.01)
        (True, True)
    """
    check(alternative in ALTERNATIVES, f"alternative must be one of {list(ALTERNATIVES)}; got {alternative!r}")
    check(0.0 < alpha < 1.0, f"alpha must be in (0, 1), e.g. 0.05; got {alpha}")
    check(n_surrogates >= 0, f"n_surrogates must be >= 0 (0 skips the surrogate test); got {n_surrogates}")
    check(n_surrogates == 0 or key is not None, "n_surrogates > 0 needs a PRNG key, e.g. key=jax.random.key(0)")
    check(surrogate_batch >= 1, f"surrogate_batch must be >= 1; got {surrogate_batch}")
    if fit_range is not None:
        check(
            len(fit_range) == 2 and 0 <= fit_range[0] and fit_range[1] - fit_range[0] >= 2 and fit_range[1] <= max_steps,
            f"fit_range must be (k0, k1) with 0 <= k0, k1 - k0 >= 2 (three points for a t-test) and "
            f"k1 <= max_steps={max_steps}; got {fit_range}",
        )
    else:
        starts = tuple(range(1, min(3, max_steps - 3) + 1)) if starts is None else tuple(starts)
        lengths = tuple(range(3, max_steps - max(starts, default=0) + 1)) if lengths is None else tuple(lengths)
        check(
            len(starts) > 0 and len(lengths) > 0 and min(starts) >= 0 and min(lengths) >= 2
            and max(starts) + max(lengths) <= max_steps,
            f"best-window grid starts={list(starts)}, lengths={list(lengths)} must be non-empty, with starts >= 0, "
            f"lengths >= 2 and start + length <= max_steps={max_steps}; shrink the grid or raise max_steps",
        )
    div = kantz_divergence(
        x, radius, dim=dim, delay=delay, max_steps=max_steps, theiler=theiler, norm=norm,
        n_references=n_references, min_neighbors=min_neighbors, floor=floor,
    )
    curve = np.asarray(div.curve, np.float64)
    points = np.asarray(div.point_curves, np.float64)
    glob = _fit(curve, fit_range, starts, lengths)
    per = _fit(points, fit_range, starts, lengths)
    p = float(slope_p_value(glob.slope, glob.r2, glob.length + 1, alternative))
    pp = np.asarray(slope_p_value(per.slope, per.r2, per.length + 1, alternative), np.float64)
    valid = np.isfinite(pp)
    frac = float(np.sum(valid & (pp < alpha)) / max(int(valid.sum()), 1))
    if n_surrogates > 0:
        xs, r, fl, static = _prepare(x, radius, dim, delay, max_steps, theiler, norm, n_references, min_neighbors, floor)
        curves = np.asarray(_surrogate_curves(xs, key, r, fl, n_surrogates, min(surrogate_batch, n_surrogates), **static))
        surrogate = np.asarray(_fit(curves, fit_range, starts, lengths).slope, np.float64)
        surrogate_p = _rank_p_value(float(glob.slope), surrogate, alternative)
    else:
        surrogate, surrogate_p = np.zeros((0,)), float("nan")
    times = np.asarray(div.times)
    return KantzResult(
        steps=np.asarray(div.steps),
        curve=curve,
        exponent=float(glob.slope),
        intercept=float(glob.intercept),
        r2=float(glob.r2),
        p_value=p,
        start=int(glob.start),
        length=int(glob.length),
        point_curves=points,
        point_exponent=np.asarray(per.slope),
        point_r2=np.asarray(per.r2),
        point_p_value=pp,
        point_start=np.asarray(per.start),
        point_length=np.asarray(per.length),
        n_neighbors=np.asarray(div.n_neighbors),
        times=times,
        values=np.asarray(x, np.float64)[times],
        significant_fraction=frac,
        alpha=alpha,
        surrogate_exponents=surrogate,
        surrogate_p_value=surrogate_p,
    )
