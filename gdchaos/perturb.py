r"""ε-box perturbations of parameters and distances between parameter pytrees.

A perturbed copy of θ is θ' = θ + δ with independent δ_i ~ U(−ε, ε) per weight
(the ε-ball of danovski2024 is this hypercube of side 2ε). Biases are left
unperturbed unless asked, as in the reference pipelines.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def is_bias(path) -> bool:
    """Whether a pytree key path names a bias leaf (last key ``bias``)."""
    last = path[-1] if path else None
    return getattr(last, "key", getattr(last, "name", None)) == "bias"


def box(key: jax.Array, params, eps, n: int, include_bias: bool = False):
    """``n`` perturbed copies of ``params`` stacked after the unperturbed one.

    Returns a pytree whose leaves have a leading member axis of size ``n + 1``:
    member 0 is ``params`` itself (the reference), members 1..n are
    θ + U(−ε, ε). ``eps`` may be traced (vmap over ε is fine); the same key gives
    the same unit directions for every ε.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> members = box(jax.random.key(0), {"kernel": jnp.zeros(3)}, 0.1, n=4)
        >>> members["kernel"].shape
        (5, 3)
    """
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


def l1_distance(a, b) -> jax.Array:
    """d(a, b) = Σ_i |a_i − b_i| over all leaves (weights and biases)."""
    return sum(jnp.sum(jnp.abs(x - y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def l2_distance(a, b) -> jax.Array:
    """d(a, b) = (Σ_i (a_i − b_i)²)^½ over all leaves."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x - y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


DISTANCES: dict[str, Callable] = {"l1": l1_distance, "l2": l2_distance}
