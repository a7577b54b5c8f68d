"""Lyapunov exponents of training maps.

``finite``: finite-ε network exponents from ε-ball divergence (λ_nMLE, ρ).
``tangent``: exact tangent-space exponents and spectra of any map.
``tangent_ensemble``: tangent exponents over (η, ic) grids in one program.
``local``: one-step GD exponents ln|1 − ηλ_i(H)| from the Hessian; chaotic, flat and stable directions.
``spectrum``: Kaplan–Yorke dimension and counts.
"""

from gdchaos.analyses.lyapunov.finite import (
    ESTIMATORS,
    FilterWarning,
    FiniteExponents,
    WindowFit,
    best_window_fit,
    finite_exponents,
    ratio_fit,
    saturation_times,
    summarize_exponents,
    window_grid,
)
from gdchaos.analyses.lyapunov.local import (
    DirectionClasses,
    LocalExponents,
    chaotic_count,
    direction_classes,
    flat_count,
    gd_local_exponents,
    local_exponents,
    local_exponents_along,
)
from gdchaos.analyses.lyapunov.spectrum import kaplan_yorke, n_positive
from gdchaos.analyses.lyapunov.tangent import LyapunovState, TangentMap, exponents, lyapunov_spectrum, tangent_map
from gdchaos.analyses.lyapunov.tangent_ensemble import TangentCarry, TangentResult, run_tangent, tangent_step
from gdchaos.analyses.lyapunov.local import hessian_matrix, hessian_spectrum, zero_tolerance
from gdchaos.analyses.lyapunov.tangent import LyapunovInfo, LyapunovSpectrum, default_dynamical, dimension, running_exponents

__all__ = [
    "ESTIMATORS",
    "DirectionClasses",
    "FilterWarning",
    "FiniteExponents",
    "LocalExponents",
    "LyapunovState",
    "TangentMap",
    "TangentCarry",
    "TangentResult",
    "WindowFit",
    "best_window_fit",
    "chaotic_count",
    "direction_classes",
    "exponents",
    "finite_exponents",
    "flat_count",
    "gd_local_exponents",
    "kaplan_yorke",
    "local_exponents",
    "local_exponents_along",
    "lyapunov_spectrum",
    "n_positive",
    "ratio_fit",
    "saturation_times",
    "run_tangent",
    "tangent_step",
    "summarize_exponents",
    "tangent_map",
    "window_grid",
    "LyapunovInfo",
    "LyapunovSpectrum",
    "default_dynamical",
    "dimension",
    "hessian_matrix",
    "hessian_spectrum",
    "running_exponents",
    "zero_tolerance",
]
