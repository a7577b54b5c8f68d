r"""Training time τ: the first update at which a metric reaches a target.

τ = min{t : a(t) ≥ target}, e.g. test accuracy ≥ 0.9 (jimenez-gonzalez2026). ⟨τ⟩
averages over initial conditions that reach the target; those that never do are
counted separately, not averaged in.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TARGETS = {"iris": 0.9, "digits": 0.9, "mnist": 0.9, "fashion_mnist": 0.9, "cifar10": 0.3}
"""Test-accuracy targets per dataset (the papers' choices; the CNN on MNIST uses 0.8)."""


def first_passage(series: np.ndarray, target: float) -> np.ndarray:
    """First index on the last axis where ``series >= target``; −1 where never.

    Example:
        >>> first_passage(np.array([[0.1, 0.5, 0.95, 0.8], [0.1, 0.2, 0.3, 0.4]]), 0.9)
        array([ 2, -1])
    """
    hit = np.asarray(series) >= target
    return np.where(hit.any(axis=-1), hit.argmax(axis=-1), -1)


def summarize_tau(tau: np.ndarray, axis: int = -1) -> dict[str, np.ndarray]:
    """⟨τ⟩ and std over those that reached the target, and the reached count, along ``axis``."""
    reached = tau >= 0
    n = reached.sum(axis=axis)
    t = np.where(reached, tau, np.nan).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(t, axis=axis) / np.maximum(n, 1), np.nan)
        std = np.where(n > 0, np.sqrt(np.nansum((t - np.expand_dims(mean, axis)) ** 2, axis=axis) / np.maximum(n, 1)), np.nan)
    return {"tau_mean": mean, "tau_std": std, "n_reached": n}
