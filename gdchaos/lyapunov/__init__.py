"""Lyapunov exponents of training maps: finite-ε network exponents (``finite``)."""

from gdchaos.lyapunov.finite import (
    FiniteExponents,
    WindowFit,
    best_window_fit,
    finite_exponents,
    summarize,
    window_grid,
)

__all__ = [
    "FiniteExponents",
    "WindowFit",
    "best_window_fit",
    "finite_exponents",
    "summarize",
    "window_grid",
]
