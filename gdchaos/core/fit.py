r"""Least-squares straight lines.

For points (x_i, y_i), i in the fit set (finite and selected), with means x̄, ȳ,

    slope = S_xy / S_xx,   intercept = ȳ − slope·x̄,   R² = S_xy² / (S_xx S_yy),

S_ab = Σ_i (a_i − ā)(b_i − b̄). Fewer than two points or a constant x leave the line
undefined (NaN); a constant y (S_yy ≤ 10⁻¹² Σy²) has R² = 0, the convention of the
window fits in :mod:`gdchaos.analyses.lyapunov.finite`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def line_fit(x: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(slope, intercept, r2)`` of the least-squares line y ≈ slope·x + intercept over the last axis.

    Leading axes are batched (``x`` broadcasts against ``y``). Points where x or y is not
    finite, or where ``mask`` (broadcast) is False, are left out. Jit/vmap-able.

    Example:
        >>> slope, intercept, r2 = line_fit([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0])
        >>> float(slope), float(intercept), float(r2)
        (2.0, 1.0, 1.0)
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    dtype = jnp.result_type(x.dtype, y.dtype, float)
    x, y = jnp.broadcast_arrays(x.astype(dtype), y.astype(dtype))
    use = jnp.isfinite(x) & jnp.isfinite(y)
    if mask is not None:
        use = use & jnp.broadcast_to(jnp.asarray(mask, bool), use.shape)
    w = use.astype(dtype)
    n = jnp.sum(w, axis=-1)
    xm = jnp.sum(jnp.where(use, x, 0), axis=-1) / jnp.maximum(n, 1)
    ym = jnp.sum(jnp.where(use, y, 0), axis=-1) / jnp.maximum(n, 1)
    dx = jnp.where(use, x - xm[..., None], 0)
    dy = jnp.where(use, y - ym[..., None], 0)
    sxx, sxy, syy = jnp.sum(dx * dx, axis=-1), jnp.sum(dx * dy, axis=-1), jnp.sum(dy * dy, axis=-1)
    defined = (n >= 2) & (sxx > 0)
    slope = jnp.where(defined, sxy / jnp.where(sxx > 0, sxx, 1), jnp.nan)
    varies = syy > 1e-12 * jnp.sum(jnp.where(use, y * y, 0), axis=-1)
    r2 = jnp.where(varies, sxy * sxy / jnp.where(varies & defined, sxx * syy, 1), 0.0)
    return slope, ym - slope * xm, jnp.where(defined, jnp.clip(r2, 0.0, 1.0), jnp.nan)
