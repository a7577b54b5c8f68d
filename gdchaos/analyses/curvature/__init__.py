"""Matrix-free curvature of a loss: Hessian-vector products, extreme eigenpairs, trace, spectral density.

``hvp``: forward-over-reverse Hessian-vector products.
``eigen``: Lanczos (full reorthogonalization) and power iteration; top/bottom-k eigenpairs.
``trace``: Hutchinson trace estimates.
``density``: spectral density by stochastic Lanczos quadrature.
``along``: diagnostics at a point (sharpness, chaotic and flat counts, gradient and subspace overlaps).
``tracking``: those diagnostics along training over an (η, ic) grid.
"""

from gdchaos.analyses.curvature.along import (
    CurvatureInfo,
    Subspace,
    curvature_info,
    curvature_info_along,
    direction_subspace,
    random_subspace_overlap,
    select_directions,
    sharpness,
    subspace_overlap,
)
from gdchaos.analyses.curvature.density import SpectralDensity, gaussian_density, hessian_density, slq, spectral_moment
from gdchaos.analyses.curvature.eigen import (
    FULL_MAX_PARAMS,
    Eigenpairs,
    LanczosResult,
    ascending_eigenpairs_flat,
    ascending_hessian_eigenpairs,
    bottom_hessian_eigenpairs,
    default_num_iters,
    lanczos,
    power_iteration,
    ritz_pairs,
    top_hessian_eigenpairs,
    tridiagonal,
)
from gdchaos.analyses.curvature.hvp import flat_hvp_fn, hvp, hvp_fn
from gdchaos.analyses.curvature.trace import TraceEstimate, hutchinson, hutchinson_trace
from gdchaos.analyses.curvature.tracking import SharpnessCarry, SharpnessResult, run_sharpness, sharpness_step

__all__ = [
    "FULL_MAX_PARAMS",
    "CurvatureInfo",
    "Eigenpairs",
    "LanczosResult",
    "SpectralDensity",
    "SharpnessCarry",
    "SharpnessResult",
    "Subspace",
    "TraceEstimate",
    "ascending_eigenpairs_flat",
    "ascending_hessian_eigenpairs",
    "bottom_hessian_eigenpairs",
    "curvature_info",
    "curvature_info_along",
    "default_num_iters",
    "direction_subspace",
    "flat_hvp_fn",
    "gaussian_density",
    "hessian_density",
    "hutchinson",
    "hutchinson_trace",
    "hvp",
    "hvp_fn",
    "lanczos",
    "power_iteration",
    "random_subspace_overlap",
    "run_sharpness",
    "sharpness_step",
    "ritz_pairs",
    "select_directions",
    "sharpness",
    "slq",
    "spectral_moment",
    "subspace_overlap",
    "top_hessian_eigenpairs",
    "tridiagonal",
]
