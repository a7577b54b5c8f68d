"""Summaries of a Lyapunov spectrum: Kaplan–Yorke dimension, number of positive exponents."""

from __future__ import annotations

import numpy as np


def kaplan_yorke(spectrum) -> float:
    r"""Kaplan–Yorke (Lyapunov) dimension D_KY = j + (Σ_{i≤j} λ_i) / |λ_{j+1}|.

    λ sorted descending; j is the largest count with Σ_{i≤j} λ_i ≥ 0. All
    negative → 0; every partial sum non-negative → the number of exponents.

    Example:
        >>> kaplan_yorke([0.419, -1.623])  # Hénon map
        1.258...
    """
    lam = np.sort(np.asarray(spectrum, dtype=np.float64))[::-1]
    partial = np.cumsum(lam)
    nonneg = np.nonzero(partial >= 0)[0]
    if nonneg.size == 0:
        return 0.0
    j = int(nonneg[-1]) + 1
    if j == lam.size:
        return float(j)
    return j + float(partial[j - 1]) / abs(float(lam[j]))


def n_positive(spectrum, tol: float = 0.0) -> int:
    """Number of exponents above ``tol``."""
    return int(np.sum(np.asarray(spectrum) > tol))
