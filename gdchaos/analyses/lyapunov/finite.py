r"""Finite network Lyapunov exponents from ε-ball divergence (danovski2024, jimenez-gonzalez2026).

For one initial condition with perturbed members j = 1..M at distances d_j(t) from
the reference (d_j(0): the initial ε-ball distance, before any update), let

    y(t) = ln d̄(t),   d̄(t) = M⁻¹ Σ_j d_j(t).

Two estimators of the finite network Lyapunov exponent Λ (``estimator=``):

- ``window`` (default): the least-squares slope of y over the window [s, s + L]
  (L + 1 points) with the best R², searched over s ∈ starts and L ∈ lengths
  (default s ∈ {0, 5, ..., 100}, L ∈ {30, 35, ..., 100}).
- ``ratio``: the papers' Eq. 3, Λ = (1/τ) ln(d̄(τ)/d̄(0)), a ratio from t = 0, with
  the saturation time τ the window [0, τ] "yielding the best exponential fit" (best
  R² of a line to y on [0, τ]) over the window ends τ = s + L of the same grid.

Λ is kept if R² > ``min_r2`` (0.9) and Λ > ``min_exponent`` (0.05). Then

    λ_nMLE = mean of kept Λ,  ρ = kept fraction of initial conditions,

and where no Λ is kept (ρ = 0) the cell is in the paper's λ_nMLE ≤ 0 phase (``phase``).
Units: nats per update. All windows of all series are fitted at once from prefix
sums (O(1) per window), so a sweep of thousands of series fits in milliseconds.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np

from gdchaos.core.errors import check

DEFAULT_STARTS = tuple(range(0, 101, 5))
DEFAULT_LENGTHS = tuple(range(30, 101, 5))


class WindowFit(NamedTuple):
    """Best least-squares line per series; arrays over the series' leading axes.

    Attributes:
        slope: fitted slope (Λ when the series is ln d).
        intercept: fitted value at t = start.
        r2: coefficient of determination of the best window (NaN if no window is valid).
        start: first step of the best window.
        length: steps spanned by the best window.
    """

    slope: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray
    start: np.ndarray
    length: np.ndarray


class FiniteExponents(NamedTuple):
    """Per-initial-condition finite exponents and the fit behind each.

    Attributes:
        exponent: Λ per initial condition (NaN where the series is invalid).
        r2, start, length: the best window's R², first step and span.
            For ``estimator="ratio"`` the window is [0, τ]: start 0, length the saturation time τ.
        kept: Λ passed the R² and Λ filters.
        min_r2, min_exponent: the filters' thresholds (kept: R² > min_r2 and Λ > min_exponent).
        estimator: ``"window"`` or ``"ratio"`` (see the module docstring).
    """

    exponent: np.ndarray
    r2: np.ndarray
    start: np.ndarray
    length: np.ndarray
    kept: np.ndarray
    min_r2: float = 0.9
    min_exponent: float = 0.05
    estimator: str = "window"


class FilterWarning(UserWarning):
    """The finite-exponent filters removed every initial condition."""


def explain_empty(exponents: FiniteExponents) -> str | None:
    """Why no Λ was kept anywhere, naming the filter and the largest values seen; None if some Λ was kept.

    Example:
        >>> fe = FiniteExponents(np.array([0.01, 0.03]), np.array([0.99, 0.95]), np.zeros(2), np.zeros(2),
        ...                      np.array([False, False]))
        >>> print(explain_empty(fe))  # doctest: +NORMALIZE_WHITESPACE
        no initial condition passed the finite-exponent filters: R² > 0.9 removed 0 of 2, Λ > 0.05 removed 2 of 2
        (largest Λ seen 0.03, R² 0.95); lower min_exponent (lyapunov.min_exponent) if this task's exponents are smaller:
        the defaults are tuned on Iris
    """
    if np.any(exponents.kept):
        return None
    lam, r2 = np.asarray(exponents.exponent, float), np.asarray(exponents.r2, float)
    valid = np.isfinite(lam)
    n = lam.size
    if not valid.any():
        return (f"no initial condition has a finite exponent (all {n} distance series are zero or non-finite "
                "in every fit window): check for diverged members and that eps > 0 perturbs the parameters")
    by_r2 = int(np.sum(valid & ~(r2 > exponents.min_r2)))
    by_lam = int(np.sum(valid & ~(lam > exponents.min_exponent)))
    i = int(np.nanargmax(np.where(valid, lam, -np.inf)))
    fix = ("lower min_exponent (lyapunov.min_exponent) if this task's exponents are smaller" if by_lam >= by_r2 else
           "lower min_r2 (lyapunov.min_r2) or move the fit windows if ln d(t) is not straight there")
    return (
        f"no initial condition passed the finite-exponent filters: R² > {exponents.min_r2:g} removed {by_r2} of "
        f"{n}, Λ > {exponents.min_exponent:g} removed {by_lam} of {n} (largest Λ seen {lam.flat[i]:.3g}, "
        f"R² {r2.flat[i]:.3g}); {fix}: the defaults are tuned on Iris"
    )


def window_grid(starts: Sequence[int] = DEFAULT_STARTS, lengths: Sequence[int] = DEFAULT_LENGTHS) -> tuple[np.ndarray, np.ndarray]:
    """All (start, length) pairs of the grid, flattened."""
    s, l = np.meshgrid(np.asarray(starts, int), np.asarray(lengths, int), indexing="ij")
    return s.ravel(), l.ravel()


def check_window_grid(steps: int, starts: Sequence[int] = DEFAULT_STARTS, lengths: Sequence[int] = DEFAULT_LENGTHS) -> None:
    """Raise a ConfigError unless every window of the grid fits in ``steps`` recorded points."""
    starts, lengths = list(starts), list(lengths)
    check(len(starts) > 0 and len(lengths) > 0, "the fit window grid is empty; give starts and lengths")
    check(min(starts) >= 0, f"window starts must be >= 0; got {starts}")
    check(min(lengths) >= 2, f"window lengths must be >= 2 steps; got {lengths}")
    needed = max(starts) + max(lengths) + 1
    check(
        steps >= needed,
        f"steps={steps} is shorter than the fit window grid (largest window ends at step "
        f"{needed - 1}); raise steps to >= {needed} or shrink the window grid "
        "(lyapunov.start_max, lyapunov.length_max)",
    )


def saturation_times(starts: Sequence[int] = DEFAULT_STARTS, lengths: Sequence[int] = DEFAULT_LENGTHS) -> np.ndarray:
    """Candidate saturation times τ of the ratio estimator: every window end s + L of the grid.

    The ratio estimator thus looks at the same span of updates as the window fit
    (default τ ∈ {30, 35, ..., 200}).

    Example:
        >>> saturation_times([0, 5], [20, 30]).tolist()
        [20, 25, 30, 35]
    """
    s, length = window_grid(starts, lengths)
    return np.unique(s + length)


def _window_lines(y: np.ndarray, s: np.ndarray, length: np.ndarray):
    """Least-squares line of ``y`` (time last) on every window [s, s + L]: ``(slope, intercept at s, r2)``.

    Arrays over ``y``'s leading axes × windows. A window holding a non-finite value has
    R² = −inf; a constant window has R² = 0. Sums come from prefix sums (O(1) per window).
    """
    e = s + length + 1  # exclusive end
    n = (length + 1).astype(np.float64)
    finite = np.isfinite(y)
    yz = np.where(finite, y, 0.0)
    t = np.arange(y.shape[-1], dtype=np.float64)

    def prefix(a):
        return np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, axis=-1)], axis=-1)

    def window_sum(p):
        return p[..., e] - p[..., s]

    bad = window_sum(prefix((~finite).astype(np.float64))) > 0
    sy, syy = window_sum(prefix(yz)), window_sum(prefix(yz * yz))
    sty = window_sum(prefix(yz * t))
    st = (t[e - 1] + t[s]) * n / 2.0
    stt = window_sum(prefix(t * t))
    sxx = stt - st * st / n
    sxy = sty - st * sy / n
    syy_c = syy - sy * sy / n
    slope = sxy / sxx
    intercept_at_start = (sy - slope * st) / n + slope * t[s]
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(syy_c > 1e-12 * np.maximum(syy, 1e-300), (sxy * sxy) / (sxx * syy_c), 0.0)
    r2 = np.where(bad, -np.inf, np.clip(r2, 0.0, 1.0))
    return slope, intercept_at_start, r2


def best_window_fit(y: np.ndarray, starts: Sequence[int] = DEFAULT_STARTS, lengths: Sequence[int] = DEFAULT_LENGTHS) -> WindowFit:
    """Fit a line to every window of ``y`` (time on the last axis) and keep the best R².

    Windows containing a non-finite value are skipped; a constant window has R² = 0.

    Example:
        >>> import numpy as np
        >>> t = np.arange(300.0)
        >>> fit = best_window_fit(0.3 * t - 18.0)
        >>> round(float(fit.slope), 6), round(float(fit.r2), 6)
        (0.3, 1.0)
    """
    y = np.asarray(y, dtype=np.float64)
    check_window_grid(y.shape[-1], starts, lengths)
    s, length = window_grid(starts, lengths)
    slope, intercept, r2 = _window_lines(y, s, length)
    best = np.argmax(r2, axis=-1)
    take = lambda a: np.take_along_axis(np.broadcast_to(a, r2.shape), best[..., None], axis=-1)[..., 0]
    best_r2 = take(r2)
    none = ~np.isfinite(best_r2)
    return WindowFit(
        slope=np.where(none, np.nan, take(slope)),
        intercept=np.where(none, np.nan, take(intercept)),
        r2=np.where(none, np.nan, best_r2),
        start=take(s),
        length=take(length),
    )


R2_TIE = 1e-9
"""Windows [0, τ] whose R² is within this of the best are equally good; the ratio estimator takes the longest."""


def ratio_fit(y: np.ndarray, starts: Sequence[int] = DEFAULT_STARTS, lengths: Sequence[int] = DEFAULT_LENGTHS) -> WindowFit:
    r"""Eq. 3 of danovski2024 / jimenez-gonzalez2026 on ``y`` = ln d̄(t) (time on the last axis).

    Λ = (1/τ) ln(d̄(τ)/d̄(0)) = (y(τ) − y(0))/τ, where the saturation time τ is the window
    [0, τ] "yielding the best exponential fit": the best R² of a least-squares line to y
    on [0, τ] over τ ∈ :func:`saturation_times` (ties within :data:`R2_TIE`, e.g. an exact
    exponential, go to the longest window: the exponential phase lasts until saturation).
    Returns a :class:`WindowFit` with ``slope`` = Λ (the ratio, not the fitted slope),
    ``intercept`` = y(0), ``r2`` of the chosen window, ``start`` = 0 and ``length`` = τ.
    Windows holding a non-finite value are skipped; a series with y(0) non-finite gets NaN.

    Example:
        >>> t = np.arange(300.0)
        >>> fit = ratio_fit(np.log(1e-8) + 0.3 * np.minimum(t, 70))  # saturates at t = 70
        >>> round(float(fit.slope), 12), int(fit.length), int(fit.start)
        (0.3, 70, 0)
    """
    y = np.asarray(y, dtype=np.float64)
    check_window_grid(y.shape[-1], starts, lengths)
    tau = saturation_times(starts, lengths)
    _, _, r2 = _window_lines(y, np.zeros_like(tau), tau)
    best_r2 = np.max(r2, axis=-1, keepdims=True)
    good = r2 >= best_r2 - R2_TIE
    longest = r2.shape[-1] - 1 - np.argmax(good[..., ::-1], axis=-1)
    chosen = tau[longest]
    y_tau = np.take_along_axis(y, chosen[..., None], axis=-1)[..., 0]
    none = ~np.isfinite(best_r2[..., 0])
    return WindowFit(
        slope=np.where(none, np.nan, (y_tau - y[..., 0]) / chosen),
        intercept=np.where(none, np.nan, y[..., 0]),
        r2=np.where(none, np.nan, np.take_along_axis(r2, longest[..., None], axis=-1)[..., 0]),
        start=np.zeros_like(chosen),
        length=chosen,
    )


ESTIMATORS = {"window": best_window_fit, "ratio": ratio_fit}
"""Finite-exponent estimators: ``window`` (best-R² slope over the window grid) and ``ratio`` (the papers' Eq. 3)."""


def check_estimator(estimator: object) -> str:
    """Return ``estimator`` if it names one of :data:`ESTIMATORS`, else raise a ConfigError."""
    check(isinstance(estimator, str) and estimator in ESTIMATORS,
          f"unknown finite-exponent estimator {estimator!r} (lyapunov.estimator); choose one of {sorted(ESTIMATORS)}")
    return estimator


def finite_exponents(
    distance: np.ndarray,
    starts: Sequence[int] = DEFAULT_STARTS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    min_r2: float = 0.9,
    min_exponent: float = 0.05,
    estimator: str = "window",
) -> FiniteExponents:
    """Λ per initial condition from member distances ``(..., member, step)``.

    ``distance`` holds the perturbed members only (not the reference), step 0 being
    the initial ε-ball distance. NaN members (diverged) are left out of the mean; a
    series with a zero or non-finite mean distance in every window gives Λ = NaN, never
    kept. ``estimator``: ``"window"`` (best-R² slope) or ``"ratio"`` (Eq. 3 of the papers,
    :func:`ratio_fit`); anything else is a ConfigError.

    Example:
        >>> import numpy as np
        >>> t = np.arange(300)
        >>> d = 1e-8 * np.exp(0.4 * np.minimum(t, 50))[None, None, :] * np.ones((1, 5, 1))
        >>> fe = finite_exponents(d)
        >>> round(float(fe.exponent[0]), 3), bool(fe.kept[0])
        (0.4, True)
        >>> ratio = finite_exponents(d, estimator="ratio")  # τ = 50, the knee
        >>> round(float(ratio.exponent[0]), 3), int(ratio.length[0])
        (0.4, 50)
    """
    fit_fn = ESTIMATORS[check_estimator(estimator)]
    d = np.asarray(distance, dtype=np.float64)
    check(d.ndim >= 2, f"distance must have shape (..., member, step); got {d.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        all_nan = np.all(np.isnan(d), axis=-2)
        mean = np.where(all_nan, np.nan, np.nanmean(np.where(all_nan[..., None, :], 0.0, d), axis=-2))
        y = np.log(np.where(mean > 0, mean, np.nan))
    fit = fit_fn(y, starts, lengths)
    kept = np.isfinite(fit.slope) & (fit.r2 > min_r2) & (fit.slope > min_exponent)
    return FiniteExponents(fit.slope, fit.r2, fit.start, fit.length, kept, float(min_r2), float(min_exponent), estimator)


PHASE_CHAOTIC = "chaotic"
PHASE_NONCHAOTIC = "λ≤0"
PHASE_UNDEFINED = "undefined"
"""Phases of a cell: some Λ kept (ρ > 0); none kept, the paper's λ_nMLE ≤ 0 (exploitation) phase; no valid series."""


def phase(n_kept: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """``"chaotic"`` where some Λ was kept, ``"λ≤0"`` where valid series exist but none was kept, else ``"undefined"``.

    Example:
        >>> phase(np.array([3, 0, 0]), np.array([5, 5, 0])).tolist()
        ['chaotic', 'λ≤0', 'undefined']
    """
    n_kept, n_valid = np.asarray(n_kept), np.asarray(n_valid)
    return np.where(n_kept > 0, PHASE_CHAOTIC, np.where(n_valid > 0, PHASE_NONCHAOTIC, PHASE_UNDEFINED))


def summarize_exponents(exponents: FiniteExponents, axis: int = -1, warn: bool = True) -> dict[str, np.ndarray]:
    """λ_nMLE (mean of kept Λ), its std, ρ (kept fraction), counts and the phase along ``axis``.

    Where no Λ is kept, λ_nMLE and its std are NaN (undefined) and ρ = 0: ``phase`` then
    says ``"λ≤0"``, the paper's λ_nMLE ≤ 0 phase, or ``"undefined"`` when no initial
    condition has a valid series (:func:`phase`). ``lambda_all`` is the mean Λ of every
    valid initial condition, filters ignored: ≈ 0 where distances neither grow nor
    shrink; it is what a figure shows in the λ≤0 phase. When the filters removed every
    initial condition of every cell, a :class:`FilterWarning` says which filter and the
    largest Λ it saw (:func:`explain_empty`), unless ``warn=False``.
    """
    why = explain_empty(exponents) if warn else None
    if why is not None:
        warnings.warn(why, FilterWarning, stacklevel=2)
    kept = exponents.kept
    lam = np.where(kept, exponents.exponent, np.nan)
    n_kept = kept.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_kept > 0, np.nansum(lam, axis=axis) / np.maximum(n_kept, 1), np.nan)
        sq = np.nansum((lam - np.expand_dims(mean, axis)) ** 2, axis=axis)
        std = np.where(n_kept > 0, np.sqrt(sq / np.maximum(n_kept, 1)), np.nan)
        valid = np.isfinite(exponents.exponent)
        n_valid = valid.sum(axis=axis)
        lambda_all = np.where(
            n_valid > 0, np.where(valid, exponents.exponent, 0.0).sum(axis=axis) / np.maximum(n_valid, 1), np.nan
        )
    return {
        "lambda_nmle": mean,
        "lambda_std": std,
        "rho": n_kept / kept.shape[axis],
        "n_kept": n_kept,
        "lambda_all": lambda_all,
        "phase": phase(n_kept, n_valid),
    }
