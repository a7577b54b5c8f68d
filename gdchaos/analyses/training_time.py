r"""Training time τ: the first update at which a metric reaches a target.

τ = min{t : a(t) ≥ target}, e.g. test accuracy ≥ 0.9 (jimenez-gonzalez2026), with a(t)
recorded at θ_t for t = 0..T−1 (T updates run). The paper's ⟨τ⟩ averages "over all
different MLP initializations": an initial condition that never reaches the target enters
censored at T (its τ is at least T, so ⟨τ⟩ is then a lower bound). The mean over those
that reached it, the earlier definition, is kept as ``tau_mean_reached``.
"""

from __future__ import annotations

import numpy as np

from gdchaos.core.errors import check

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


def _mean_std(t: np.ndarray, n: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of the finite entries of ``t`` along ``axis``; NaN where ``n`` = 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(t, axis=axis) / np.maximum(n, 1), np.nan)
        var = np.nansum((t - np.expand_dims(mean, axis)) ** 2, axis=axis) / np.maximum(n, 1)
    return mean, np.where(n > 0, np.sqrt(var), np.nan)


def summarize_tau(tau: np.ndarray, steps: int, axis: int = -1) -> dict[str, np.ndarray]:
    r"""⟨τ⟩ over all initial conditions (never-reached censored at ``steps``) and over those that reached it.

    With τ_i = −1 for an IC that never reached the target within the T = ``steps``
    updates run:

        tau_mean = n⁻¹ Σ_i min(τ_i, T)   with τ_i := T where never reached (a lower bound if any is),
        tau_mean_reached = mean of τ_i over the ICs with τ_i ≥ 0 (NaN if none),

    each with its population std, plus ``n_reached`` and ``n_censored`` along ``axis``.

    Example:
        >>> s = summarize_tau(np.array([2, -1, 4]), steps=10)
        >>> float(s["tau_mean"]), float(s["tau_mean_reached"]), int(s["n_censored"])
        (5.333333333333333, 3.0, 1)
    """
    tau = np.asarray(tau)
    check(isinstance(steps, (int, np.integer)) and steps >= 1, f"steps must be an integer >= 1; got {steps!r}")
    check(tau.size == 0 or int(tau.max()) < steps,
          f"a training time τ = {int(tau.max())} is not below steps={steps}: τ counts updates 0..steps−1")
    reached = tau >= 0
    n_reached = reached.sum(axis=axis)
    n_all = np.full_like(n_reached, tau.shape[axis])
    mean_reached, std_reached = _mean_std(np.where(reached, tau, np.nan).astype(np.float64), n_reached, axis)
    mean, std = _mean_std(np.where(reached, tau, steps).astype(np.float64), n_all, axis)
    return {
        "tau_mean": mean,
        "tau_std": std,
        "tau_mean_reached": mean_reached,
        "tau_std_reached": std_reached,
        "n_reached": n_reached,
        "n_censored": n_all - n_reached,
    }
