"""The shared helpers of gdchaos.core (tree, fit, files, errors) against values worked out by hand.

Each expected value below is derived in the comment beside it, not computed with the helper
or with another library routine that could share its bug.
"""

import os
import stat

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.analyses.lyapunov.finite import best_window_fit
from gdchaos.core.errors import ConfigError, check_int, check_positive
from gdchaos.core.files import atomic_write
from gdchaos.core.fit import line_fit
from gdchaos.core.perturb import l1_distance, l2_distance
from gdchaos.core.tree import (
    count_params,
    ravel_rows,
    tree_all_finite,
    tree_l1_norm,
    tree_l2_norm,
    tree_sq_norm,
    tree_sub,
    unravel_rows,
)

# kernel 2×3 (6 scalars), bias 3, a scalar leaf (1): N = 10
TREE = {"kernel": jnp.array([[1.0, -2.0, 2.0], [0.0, 0.0, 0.0]]), "bias": jnp.array([0.0, 4.0, 0.0]), "scale": jnp.array(0.0)}


def test_count_params_counts_every_scalar_and_shape_structs():
    assert count_params(TREE) == 6 + 3 + 1
    shapes = jax.eval_shape(lambda: {"w": jnp.zeros((4, 5)), "b": jnp.zeros(5)})
    assert count_params(shapes) == 20 + 5
    assert count_params({}) == 0
    # a stack of 7 trees: per row, the leading axis is not counted
    stacked = {"w": jnp.zeros((7, 4, 5)), "b": jnp.zeros((7, 5))}
    assert count_params(stacked, batch_dims=1) == 25
    assert count_params(stacked) == 7 * 25


def test_tree_norms_by_hand():
    # squares: 1 + 4 + 4 + 16 = 25; L2 = 5; L1 = 1 + 2 + 2 + 4 = 9
    assert float(tree_sq_norm(TREE)) == 25.0
    assert float(tree_l2_norm(TREE)) == 5.0
    assert float(tree_l1_norm(TREE)) == 9.0


def test_distances_are_norms_of_the_difference():
    other = jax.tree.map(jnp.zeros_like, TREE)
    other["bias"] = jnp.array([0.0, 1.0, 0.0])  # difference in bias: 3 instead of 4
    diff = tree_sub(TREE, other)
    assert diff["bias"].tolist() == [0.0, 3.0, 0.0]
    # 1 + 4 + 4 + 9 = 18 → √18; |·|: 1 + 2 + 2 + 3 = 8
    assert float(l2_distance(TREE, other)) == pytest.approx(np.sqrt(18.0), rel=1e-6)
    assert float(l1_distance(TREE, other)) == 8.0


def test_all_finite_skips_integer_leaves():
    assert bool(tree_all_finite({"w": jnp.ones(2), "count": jnp.array(3)}))
    assert not bool(tree_all_finite({"w": jnp.array([1.0, jnp.nan])}))
    assert bool(tree_all_finite({}))


def test_ravel_rows_and_unravel_rows_round_trip():
    stacked = {"a": jnp.array([[1.0], [2.0]]), "b": jnp.array([[3.0, 4.0], [5.0, 6.0]])}
    rows = ravel_rows(stacked)
    assert rows.tolist() == [[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]  # ravel_pytree order: leaves sorted by key
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], stacked))
    back = unravel_rows(unravel, rows)
    assert back["b"].tolist() == [[3.0, 4.0], [5.0, 6.0]] and back["a"].tolist() == [[1.0], [2.0]]


def test_line_fit_by_hand():
    # x = 0..3, y = 1, 2, 2, 4: x̄ = 1.5, ȳ = 2.25; dx = −1.5, −.5, .5, 1.5; dy = −1.25, −.25, −.25, 1.75
    # Sxx = 5, Sxy = 1.875 + .125 − .125 + 2.625 = 4.5, Syy = 1.5625 + .0625 + .0625 + 3.0625 = 4.75
    # slope = 0.9, intercept = 2.25 − 1.35 = 0.9, R² = 4.5² / (5 · 4.75) = 20.25 / 23.75
    slope, intercept, r2 = line_fit(np.arange(4.0), np.array([1.0, 2.0, 2.0, 4.0]))
    assert float(slope) == pytest.approx(0.9, rel=1e-6)
    assert float(intercept) == pytest.approx(0.9, rel=1e-6)
    assert float(r2) == pytest.approx(20.25 / 23.75, rel=1e-6)


def test_line_fit_mask_nonfinite_batches_and_degenerate_cases():
    # the masked-out and the NaN point do not count: the line through (0, 1), (1, 3) is y = 2x + 1
    slope, intercept, r2 = line_fit([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, np.nan, 100.0], mask=[True, True, True, False])
    assert (float(slope), float(intercept), float(r2)) == pytest.approx((2.0, 1.0, 1.0))
    # batched over rows: y = −x + 3 and a constant (R² = 0 by convention)
    slope, intercept, r2 = line_fit(np.arange(3.0), np.array([[3.0, 2.0, 1.0], [5.0, 5.0, 5.0]]))
    assert slope.tolist() == pytest.approx([-1.0, 0.0]) and intercept.tolist() == pytest.approx([3.0, 5.0])
    assert r2.tolist() == pytest.approx([1.0, 0.0])
    # one point, or all x equal: no line
    assert all(np.isnan(float(v)) for v in line_fit([1.0, 1.0], [0.0, 2.0]))
    assert all(np.isnan(float(v)) for v in line_fit([1.0], [2.0]))


def test_the_window_fit_of_finite_exponents_agrees_with_line_fit():
    # finite.py fits every window from prefix sums; on the window it chose, the plain fit must agree
    y = np.log(1e-8) + 0.3 * np.minimum(np.arange(220.0), 80) + 0.01 * np.sin(np.arange(220.0))
    fit = best_window_fit(y)
    s, n = int(fit.start), int(fit.length)
    t = np.arange(s, s + n + 1, dtype=float)
    slope, intercept, r2 = line_fit(t, y[s:s + n + 1])
    assert float(fit.slope) == pytest.approx(float(slope), rel=1e-6)
    assert float(fit.intercept) == pytest.approx(float(intercept) + float(slope) * s, rel=1e-6, abs=1e-6)
    assert float(fit.r2) == pytest.approx(float(r2), rel=1e-6)


def test_check_int_and_check_positive():
    assert check_int("k", np.int64(3), 1, 10) == 3 and isinstance(check_int("k", 3, 1), int)
    assert check_int("k", 1, 1, 10) == 1 and check_int("k", 10, 1, 10) == 10  # both bounds are allowed
    for bad, message in [(0, "k must be >= 1; got 0"), (11, "k must be <= 10"), (True, "k must be an integer"),
                         (2.0, "k must be an integer")]:
        with pytest.raises(ConfigError, match=message):
            check_int("k", bad, 1, 10)
    check_positive("eta", 1e-9)
    with pytest.raises(ConfigError, match="eta must be > 0; got -1.0"):
        check_positive("eta", -1)
    jax.jit(lambda e: check_positive("eta", e) or e)(0.0)  # traced: not checked


def test_atomic_write_replaces_whole_files_and_cleans_up(tmp_path):
    path = tmp_path / "sub" / "out.bin"  # the parent is created
    atomic_write(path, lambda f: f.write(b"first"))
    atomic_write(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"
    with pytest.raises(RuntimeError):
        atomic_write(path, lambda f: (f.write(b"torn"), (_ for _ in ()).throw(RuntimeError("killed"))))
    assert path.read_bytes() == b"second"  # the failed write left the old file
    assert os.listdir(path.parent) == ["out.bin"]  # and no temporary file
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
