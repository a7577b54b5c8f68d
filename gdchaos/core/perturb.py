r"""ε-box perturbations of parameters and distances between parameter pytrees.

A perturbed copy of θ is θ' = θ + δ with independent δ_i ~ U(−ε, ε) per weight
(the ε-ball of danovski2024 is this hypercube of side 2ε). Biases are left
unperturbed unless asked, as in the reference pipelines.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gdchaos.core.errors import PrecisionError
from gdchaos.core.precision import min_resolvable_eps, precision_message
from gdchaos.core.tree import PyTree, tree_l1_norm, tree_l2_norm, tree_sub


def is_bias(path: tuple) -> bool:
    """Whether a pytree key path names a bias leaf (last key ``bias``)."""
    last = path[-1] if path else None
    return getattr(last, "key", getattr(last, "name", None)) == "bias"


def require_resolvable(eps: ArrayLike, params: PyTree, include_bias: bool = True) -> None:
    """Raise :class:`PrecisionError` unless every perturbed floating leaf of ``params`` resolves ``eps``.

    Checks the dtype the parameters actually have (arrays or ``jax.ShapeDtypeStruct``, e.g.
    from ``jax.eval_shape``), not the global x64 flag: flax layers keep float32 parameters
    after :func:`gdchaos.core.precision.enable_float64` unless built with ``param_dtype=jnp.float64``. Leaves
    named ``bias`` are skipped unless ``include_bias``. A traced ``eps`` is not checked, nor
    ε = 0 (no perturbation).

    Example:
        >>> import jax.numpy as jnp
        >>> require_resolvable(1e-3, {"kernel": jnp.zeros(2, jnp.float32)})  # fine
        >>> require_resolvable(1e-8, {"kernel": jnp.zeros(2, jnp.float32)})
        Traceback (most recent call last):
        ...
        gdchaos.core.errors.PrecisionError: eps=1e-08 is below what float32 resolves (min 0.0001) in leaf 'kernel': ...
    """
    if isinstance(eps, jax.core.Tracer):
        return
    eps = np.asarray(eps, dtype=float)
    if not np.any(eps > 0):
        return  # ε = 0: no perturbation to resolve
    smallest = float(np.min(eps[eps > 0]))
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            continue
        if not include_bias and is_bias(path):
            continue
        name = jax.tree_util.keystr(path, simple=True, separator="/") if path else "params"
        if smallest < min_resolvable_eps(dtype):
            raise PrecisionError(precision_message(smallest, dtype, f" in leaf {name!r}"))


def box(key: jax.Array, params: PyTree, eps: ArrayLike, n: int, include_bias: bool = False) -> PyTree:
    """``n`` perturbed copies of ``params`` stacked after the unperturbed one.

    Returns a pytree whose leaves have a leading member axis of size ``n + 1``:
    member 0 is ``params`` itself (the reference), members 1..n are
    θ + U(−ε, ε). ``eps`` may be traced (vmap over ε is fine); the same key gives
    the same unit directions for every ε. A concrete ``eps`` too small for the dtype of
    a perturbed leaf raises :class:`~gdchaos.core.errors.PrecisionError` (:func:`require_resolvable`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> members = box(jax.random.key(0), {"kernel": jnp.zeros(3)}, 0.1, n=4)
        >>> members["kernel"].shape
        (5, 3)
    """
    require_resolvable(eps, params, include_bias)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    treedef = jax.tree.structure(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, (path, leaf) in zip(keys, leaves):
        if is_bias(path) and not include_bias:
            delta = jnp.zeros((n,) + leaf.shape, leaf.dtype)
        else:
            unit = jax.random.uniform(k, (n,) + leaf.shape, leaf.dtype, -1.0, 1.0)
            delta = jnp.asarray(eps, leaf.dtype) * unit
        out.append(jnp.concatenate([leaf[None], leaf[None] + delta], axis=0))
    return jax.tree.unflatten(treedef, out)


def l1_distance(a: PyTree, b: PyTree) -> jax.Array:
    """d(a, b) = Σ_i |a_i − b_i| over all leaves (weights and biases)."""
    return tree_l1_norm(tree_sub(a, b))


def l2_distance(a: PyTree, b: PyTree) -> jax.Array:
    """d(a, b) = (Σ_i (a_i − b_i)²)^½ over all leaves."""
    return tree_l2_norm(tree_sub(a, b))


DISTANCES: dict[str, Callable[[PyTree, PyTree], jax.Array]] = {"l1": l1_distance, "l2": l2_distance}
