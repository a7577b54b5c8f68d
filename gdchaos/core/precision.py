"""Precision policy and run provenance.

Finite-ε perturbations below the resolution of the weight dtype round away: with
N(0, 1) weights, ε = 1e-8 leaves most float32 entries unchanged (float32 spacing
near 1 is 1.2e-7). The finite-ε method therefore runs in float64 whenever ε is
below :data:`FLOAT64_EPS_THRESHOLD`. float64 must be switched on before any array
is created (``enable_float64``). TPUs have no float64; the tangent method (ε → 0,
exact, float32-safe) is the path there.
"""

from __future__ import annotations

import importlib.metadata
import platform

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from gdchaos.core.errors import PrecisionError

FLOAT64_EPS_THRESHOLD = 1e-4
"""ε below this needs float64 for the finite-ε method."""


def needs_float64(eps: ArrayLike) -> bool:
    """Whether a finite-ε perturbation of size ``eps`` (scalar or sequence) needs float64."""
    return float(np.min(np.asarray(eps, dtype=float))) < FLOAT64_EPS_THRESHOLD


def float64_enabled() -> bool:
    """Whether JAX creates float64 arrays by default (``jax_enable_x64``)."""
    return bool(jax.config.jax_enable_x64)


def enable_float64() -> None:
    """Switch JAX to float64, or raise :class:`PrecisionError` where unsupported.

    Call before creating any array: arrays made earlier stay float32.
    """
    if jax.default_backend() == "tpu":
        raise PrecisionError(
            "float64 is unavailable on TPU, and the finite-eps method at eps < "
            f"{FLOAT64_EPS_THRESHOLD:g} needs it (smaller perturbations round away in "
            "float32). Use the tangent method instead (analysis=tangent), which is exact "
            "as eps -> 0 and float32-safe, or raise eps."
        )
    jax.config.update("jax_enable_x64", True)


FLOAT64_MIN_EPS = 1e-15
"""Smallest ε for float64 parameters: ≈ 4.5 units in the last place of an O(1) weight."""


def min_resolvable_eps(dtype: DTypeLike) -> float:
    """Smallest ε the finite-ε method accepts for parameters of ``dtype``.

    :data:`FLOAT64_EPS_THRESHOLD` (1e-4) for float32, scaled by the machine epsilon for
    coarser types (float16: 8.2e-4, bfloat16: 6.6e-3); :data:`FLOAT64_MIN_EPS` for float64.

    Example:
        >>> import jax.numpy as jnp
        >>> min_resolvable_eps(jnp.float32), min_resolvable_eps(jnp.float64)
        (0.0001, 1e-15)
    """
    info = jnp.finfo(dtype)
    if info.bits >= 64:
        return FLOAT64_MIN_EPS
    return float(FLOAT64_EPS_THRESHOLD * float(info.eps) / float(jnp.finfo(jnp.float32).eps))


def precision_message(eps: float, dtype: DTypeLike, where: str) -> str:
    fix = (
        "call gdchaos.enable_float64() before creating any array and make the parameters float64 "
        "(flax: nn.Dense(..., param_dtype=jnp.float64); any pytree: jax.tree.map(lambda a: a.astype(jnp.float64), params)), "
        "raise eps, or use the tangent method (exact as eps -> 0, float32-safe)"
    )
    if jnp.finfo(dtype).bits >= 64:
        fix = "raise eps: smaller perturbations are rounding noise even in float64"
    return (
        f"eps={eps:g} is below what {jnp.dtype(dtype).name} resolves (min {min_resolvable_eps(dtype):g}){where}: "
        f"perturbations round away; {fix}."
    )


def require_precision(eps: ArrayLike, dtype: DTypeLike) -> None:
    """Raise :class:`PrecisionError` if ``dtype`` cannot resolve perturbations of size ``eps``.

    Example:
        >>> import jax.numpy as jnp
        >>> require_precision(1e-2, jnp.float32)  # fine
    """
    smallest = float(np.min(np.asarray(eps, dtype=float)))
    if smallest < min_resolvable_eps(dtype):
        raise PrecisionError(precision_message(smallest, dtype, ""))


def nan_mean(a: ArrayLike, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Mean over the non-NaN entries (diverged members are NaN); NaN, without a warning, where there are none.

    Example:
        >>> nan_mean(np.array([[1.0, np.nan], [np.nan, np.nan]]), axis=1).tolist()
        [1.0, nan]
    """
    a = np.asarray(a, dtype=float)
    n = np.sum(~np.isnan(a), axis=axis)
    return np.where(n > 0, np.nansum(a, axis=axis) / np.maximum(n, 1), np.nan)


def nan_std(a: ArrayLike, axis: int | None = None) -> np.ndarray:
    """Population standard deviation over the non-NaN entries; NaN, without a warning, where there are none."""
    a = np.asarray(a, dtype=float)
    mean = nan_mean(a, axis=axis)
    return np.sqrt(nan_mean((a - np.expand_dims(mean, axis) if axis is not None else a - mean) ** 2, axis=axis))


def default_float() -> type[jnp.floating]:
    """The floating dtype JAX creates by default right now."""
    return jnp.float64 if float64_enabled() else jnp.float32


def provenance() -> dict[str, str | int]:
    """Backend, device count, dtype and library versions, for every results file."""
    versions = {}
    for name in ("gdchaos", "jax", "jaxlib", "optax", "flax", "numpy"):
        try:
            versions[f"version_{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[f"version_{name}"] = "unknown"
    return {
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "device_kind": jax.devices()[0].device_kind,
        "dtype": jnp.dtype(default_float()).name,
        "python": platform.python_version(),
        **versions,
    }
