r"""Summaries of a Lyapunov spectrum: Kaplan–Yorke dimension and number of positive exponents.

With λ_1 ≥ λ_2 ≥ … ≥ λ_N and partial sums S_j = Σ_{i≤j} λ_i, the Kaplan–Yorke
(Lyapunov) dimension is

    D_KY = j + S_j / |λ_{j+1}|,    j = the largest index with S_j ≥ 0,

with D_KY = 0 when λ_1 < 0 and D_KY = N when S_N ≥ 0 (volumes do not contract). From
a top-k spectrum (k < N) a result of k only says D_KY ≥ k.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def kaplan_yorke(spectrum: ArrayLike) -> float | np.ndarray:
    r"""Kaplan–Yorke dimension of a spectrum (last axis; any order, NaN in → NaN out).

    Returns a float for a 1-D spectrum, else an array over the leading axes (e.g.
    ``(n_eta, n_ic)`` from ``(n_eta, n_ic, k)`` exponents).

    Example:
        >>> round(kaplan_yorke([0.419, -1.623]), 4)  # Hénon map: 1 + 0.419/1.623
        1.2582
        >>> kaplan_yorke([[-0.1, -0.5], [0.5, 0.1]]).tolist()  # all negative; all partial sums ≥ 0
        [0.0, 2.0]
    """
    lam = -np.sort(-np.asarray(spectrum, dtype=np.float64), axis=-1)
    if lam.shape[-1] == 0:
        raise ValueError("kaplan_yorke needs at least one exponent; got an empty spectrum")
    n = lam.shape[-1]
    partial = np.cumsum(lam, axis=-1)
    nonneg = partial >= 0
    # j = number of leading partial sums ≥ 0 up to the last such one (partial sums are concave in j)
    j = np.where(nonneg.any(axis=-1), n - np.argmax(nonneg[..., ::-1], axis=-1), 0)
    s_j = np.take_along_axis(partial, np.clip(j - 1, 0, n - 1)[..., None], axis=-1)[..., 0]
    next_lam = np.take_along_axis(lam, np.clip(j, 0, n - 1)[..., None], axis=-1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(j == 0, 0.0, np.where(j == n, float(n), j + s_j / np.abs(next_lam)))
    d = np.where(np.isnan(lam).any(axis=-1), np.nan, d)
    return float(d) if d.ndim == 0 else d


def n_positive(spectrum: ArrayLike, tol: float = 0.0) -> int | np.ndarray:
    """Number of exponents above ``tol`` over the last axis (an int for a 1-D spectrum).

    Example:
        >>> n_positive([0.3, 0.0, -0.2])
        1
    """
    count = np.sum(np.asarray(spectrum) > tol, axis=-1)
    return int(count) if np.ndim(count) == 0 else count
