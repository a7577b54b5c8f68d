r"""Pytree utilities shared by every layer: parameter counts, norms and flat rows.

A parameter pytree is any nesting of dicts, lists and tuples with array leaves
(:data:`PyTree`). Norms run over all leaves together, as if the tree were one flat
vector θ ∈ ℝᴺ (``ravel_pytree`` order):

    ‖θ‖₂ = (Σ_i θ_i²)^½,   ‖θ‖₁ = Σ_i |θ_i|,   N = Σ_leaves size(leaf).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

PyTree = Any
"""A pytree of arrays (e.g. model parameters); the type checker sees ``Any``."""


def count_params(tree: PyTree, batch_dims: int = 0) -> int:
    """Number of scalars in a pytree (arrays or ``jax.ShapeDtypeStruct`` leaves), per row of ``batch_dims`` leading axes.

    With ``batch_dims=1`` the leaves of a stack of K trees (leading axis K) count as one tree.

    Example:
        >>> import jax.numpy as jnp
        >>> count_params({"w": jnp.zeros((4, 3)), "b": jnp.zeros(3), "s": 1.0})
        16
        >>> count_params({"w": jnp.zeros((5, 4, 3))}, batch_dims=1)
        12
    """
    return sum(int(math.prod(np.shape(leaf)[batch_dims:])) for leaf in jax.tree.leaves(tree))


def tree_sq_norm(tree: PyTree) -> jax.Array:
    """‖θ‖₂² = Σ over all leaves of x².

    Example:
        >>> import jax.numpy as jnp
        >>> float(tree_sq_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0, 12.0]])}))
        169.0
    """
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def tree_l2_norm(tree: PyTree) -> jax.Array:
    """‖θ‖₂ = (Σ over all leaves of x²)^½.

    Example:
        >>> import jax.numpy as jnp
        >>> float(tree_l2_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0, 12.0]])}))
        13.0
    """
    return jnp.sqrt(tree_sq_norm(tree))


def tree_l1_norm(tree: PyTree) -> jax.Array:
    """‖θ‖₁ = Σ over all leaves of |x|.

    Example:
        >>> import jax.numpy as jnp
        >>> float(tree_l1_norm({"a": jnp.array([3.0]), "b": jnp.array([[-4.0, 12.0]])}))
        19.0
    """
    return sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree))


def tree_sub(a: PyTree, b: PyTree) -> PyTree:
    """a − b leaf by leaf (same structure).

    Example:
        >>> import jax.numpy as jnp
        >>> tree_sub({"w": jnp.array([3.0, 1.0])}, {"w": jnp.array([1.0, 1.0])})["w"].tolist()
        [2.0, 0.0]
    """
    return jax.tree.map(jnp.subtract, a, b)


def tree_all_finite(tree: PyTree) -> jax.Array:
    """True iff every entry of every floating leaf is finite (integer and key leaves are skipped).

    Example:
        >>> import jax.numpy as jnp
        >>> bool(tree_all_finite({"w": jnp.array([1.0, jnp.inf]), "n": jnp.array(3)}))
        False
    """
    leaves = [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])) if leaves else jnp.asarray(True)


def ravel_rows(stacked: PyTree) -> jax.Array:
    """``(K, N)`` flat rows (``ravel_pytree`` order) of a pytree (or array) whose leaves have a leading K axis.

    Example:
        >>> import jax.numpy as jnp
        >>> ravel_rows({"a": jnp.array([[1.0], [2.0]]), "b": jnp.array([[3.0, 4.0], [5.0, 6.0]])}).tolist()
        [[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]
    """
    return jax.vmap(lambda row: ravel_pytree(row)[0])(stacked)


def unravel_rows(unravel: Callable[[jax.Array], PyTree], rows: jax.Array) -> PyTree:
    """The inverse of :func:`ravel_rows`: ``unravel`` (from ``ravel_pytree``) applied to each row of ``(K, N)``.

    Example:
        >>> import jax.numpy as jnp
        >>> _, unravel = ravel_pytree({"a": jnp.zeros(1), "b": jnp.zeros(2)})
        >>> unravel_rows(unravel, jnp.array([[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]))["b"].tolist()
        [[3.0, 4.0], [5.0, 6.0]]
    """
    return jax.vmap(unravel)(rows)
