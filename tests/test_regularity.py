"""Regular minima (chemnitz2025 Def. 3.13) against hand-derived cases; the ``python -m gdchaos.minima`` app end to end."""

import itertools
import math
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from hydra import compose, initialize_config_dir

from gdchaos.cli.app import config_dir
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.regularity import (
    algebra_span,
    batch_hessians,
    check_semigroup,
    choose_batches,
    invariant_subspace,
    minimum_regularity,
    subspace_orbit,
    transverse_jacobians,
)


def lsq(p, xb, yb):
    """½ mean (x·p − y)²: H_Ξ = (1/B) Σ_{i∈Ξ} x_i x_iᵀ."""
    return 0.5 * jnp.mean((xb @ p - yb) ** 2)


def brute_force_algebra_dim(gens, length):
    """Rank of all words of length ≤ ``length``, enumerated explicitly (no incremental span)."""
    d = gens.shape[-1]
    words = []
    for n in range(1, length + 1):
        for idx in itertools.product(range(len(gens)), repeat=n):
            w = np.eye(d)
            for i in idx:
                w = gens[i] @ w
            words.append(w.ravel() / np.linalg.norm(w))
    return int(np.linalg.matrix_rank(np.array(words), tol=1e-9))


def commutant_dim(gens):
    """dim {X : A X = X A for every generator}, from the Kronecker form (I⊗A − Aᵀ⊗I) vec X = 0."""
    d = gens.shape[-1]
    stack = np.concatenate([np.kron(np.eye(d), a) - np.kron(a.T, np.eye(d)) for a in gens])
    s = np.linalg.svd(stack, compute_uv=False)
    return int(np.sum(s <= 1e-9 * s[0])) + (d * d - len(s) if len(s) < d * d else 0)


# --------------------------------------------------------------------------- the sgd_stability example


def test_orthogonal_samples_batch_one_by_hand():
    # x = I₂, B = 1: H_Ξ = e_Ξ e_Ξᵀ, H = ½I so N = R²; A_1 = diag(1 − η, 1), A_2 = diag(1, 1 − η).
    eta = 0.5
    x, y = jnp.eye(2), jnp.zeros(2)
    r = minimum_regularity(lsq, jnp.zeros(2), x, y, eta, 1, stability_kwargs={"steps": 2000})
    back = np.einsum("Di,kij,Ej->kDE", r.basis, batch_hessians(lsq, jnp.zeros(2), x, y, 1).matrices, r.basis)
    np.testing.assert_allclose(back, [np.diag([1.0, 0.0]), np.diag([0.0, 1.0])], atol=1e-12)
    # (i): σ_min/σ_max(A_Ξ) = (1 − η)/1; Id − A_Ξ = η e_Ξ e_Ξᵀ is singular on N.
    assert r.check.a_margin == pytest.approx(1 - eta)
    assert r.check.id_minus_a_margin == pytest.approx(0.0, abs=1e-15)
    assert r.verdict.startswith("not regular: (i) fails at batch (0,): Id − A singular")
    assert not r.regular and "does not apply" in r.theorem
    # λ = ½ ln|1 − η| per step: each axis is hit half the time.
    assert r.exponent == pytest.approx(0.5 * math.log(1 - eta), abs=0.03)
    # (ii): both A_Ξ diagonal: the algebra is the diagonal matrices (dim 2 < 4), an axis is invariant.
    r2 = minimum_regularity(lsq, jnp.zeros(2), x, y, eta, 1, check_id_minus_a=False, exponent=False)
    assert r2.check.algebra_dim == 2 and r2.check.word_length == 1
    assert r2.verdict == "not regular: reducible (invariant subspace of dim 1 found)"
    w = r2.subspace[:, 0]
    assert min(abs(abs(w[0]) - 1), abs(abs(w[1]) - 1)) < 1e-12


# --------------------------------------------------------------------------- a generic least-squares problem


@pytest.fixture(scope="module")
def three_samples():
    x = np.random.default_rng(3).normal(size=(3, 3))
    return jnp.asarray(x), jnp.zeros(3)  # θ* = 0 fits y = x θ* = 0


def test_generic_least_squares_batch_matrices_and_full_algebra(three_samples):
    x, y = three_samples
    eta = 0.3
    bh = batch_hessians(lsq, jnp.zeros(3), x, y, 2)
    xn = np.asarray(x)
    assert bh.batches.tolist() == [[0, 1], [0, 2], [1, 2]] and bh.n_total == 3 and not bh.sampled
    q = bh.space.basis
    assert q.shape == (3, 3)  # H = (1/3) Σ x_i x_iᵀ has full rank: N = R³
    for (i, j), m in zip(bh.batches, bh.matrices):
        np.testing.assert_allclose(q @ m @ q.T, 0.5 * (np.outer(xn[i], xn[i]) + np.outer(xn[j], xn[j])), atol=1e-12)
    a = transverse_jacobians(bh.matrices, eta)
    hand = np.array([np.eye(3) - eta * 0.5 * (np.outer(xn[i], xn[i]) + np.outer(xn[j], xn[j])) for i, j in bh.batches])
    np.testing.assert_allclose(np.einsum("Di,kij,Ej->kDE", q, a, q), hand, atol=1e-12)
    # Independent routes to "the algebra is M_3": explicit words, and a trivial commutant of a *-closed set.
    assert brute_force_algebra_dim(hand, 4) == 9
    assert commutant_dim(hand) == 1
    span = algebra_span(a)
    assert span.dim == 9 and span.closed and span.dropped_max < 1e-10 < 1e-6 < span.kept_min
    # rank(ηH_Ξ) = 2 < 3 = dim N: Id − A_Ξ is singular, so (i) read literally fails; with A_Ξ only it is regular.
    r = minimum_regularity(lsq, jnp.zeros(3), x, y, eta, 2, exponent=False)
    assert r.verdict.startswith("not regular: (i) fails") and "Id − A singular" in r.verdict
    r = minimum_regularity(lsq, jnp.zeros(3), x, y, eta, 2, check_id_minus_a=False, exponent=False)
    assert r.regular and r.verdict.startswith("regular (checked: ")
    assert r.check.power_dims == ((2, 9), (6, 9), (12, 9)) and r.check.max_union == 4  # lcm(1..4) = 12 | 12


def test_explicit_random_product_matches_sgd_stability(three_samples):
    # The A_Ξ checked here are the maps whose random product sgd_stability measures: multiply them explicitly
    # (uniform batches, renormalized every step) and compare the growth rate with sgd_stability at the same (θ*, η, B).
    from gdchaos.analyses.curvature.stability import sgd_stability

    x, y = three_samples
    eta, steps = 0.6, 20000
    a = transverse_jacobians(batch_hessians(lsq, jnp.zeros(3), x, y, 2).matrices, eta)
    rng = np.random.default_rng(0)
    v, total = np.ones(3) / math.sqrt(3), 0.0
    for i in rng.integers(len(a), size=steps):
        v = a[i] @ v
        total += math.log(np.linalg.norm(v))
        v /= np.linalg.norm(v)
    est = float(sgd_stability(lsq, jnp.zeros(3), x, y, eta, 2, steps=4000).exponent)
    assert total / steps > 0.3 and est == pytest.approx(total / steps, abs=0.03)


def test_multi_output_linear_model_is_reducible():
    # f(x) = Wᵀx with q = 2 outputs: H_Ξ = I_q ⊗ (1/B) Σ x_i x_iᵀ, so every A_Ξ acts alike on each output's block:
    # N = 2 copies of span{x_i} (dim 2·3 = 6), the algebra is I_2 ⊗ M_3 (dim 9 < 36), one output's block is invariant.
    x = jnp.asarray(np.random.default_rng(7).normal(size=(3, 4)))
    y = jnp.zeros((3, 2))

    def two_outputs(w, xb, yb):
        return 0.5 * jnp.mean(jnp.sum((xb @ w - yb) ** 2, axis=-1))

    r = minimum_regularity(two_outputs, jnp.zeros((4, 2)), x, y, 0.3, 2, check_id_minus_a=False, exponent=False)
    assert r.basis.shape == (8, 6) and r.check.algebra_dim == 9
    assert r.verdict == "not regular: reducible (invariant subspace of dim 3 found)"


def test_algebra_rank_decision_is_scale_invariant(three_samples):
    x, _ = three_samples
    xn = np.asarray(x)
    hand = np.array([np.eye(3) - 0.15 * (np.outer(xn[i], xn[i]) + np.outer(xn[j], xn[j])) for i, j in [(0, 1), (0, 2)]])
    for scale in (1e-9, 1.0, 1e9):
        assert algebra_span(scale * hand).dim == 9


def test_sampled_batches_make_i_partial():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(5, 5)))
    batches, total, sampled = choose_batches(5, 2, max_batches=4, seed=1)
    assert total == math.comb(5, 2) == 10 and sampled and len({tuple(b) for b in batches.tolist()}) == 4
    r = minimum_regularity(lsq, jnp.zeros(5), x, jnp.zeros(5), 0.2, 2, max_batches=4, check_id_minus_a=False, exponent=False)
    assert r.sampled and r.n_batches_total == 10 and not r.regular
    assert r.verdict.startswith("inconclusive: (ii) holds") and "(i) was checked on 4 sampled of 10 batches only" in r.verdict


def test_not_an_interpolating_minimum_is_inconclusive():
    # per-sample losses ½ pᵀ S_i p with S_1 = [[0, 1], [1, 1]], S_2 = [[0, −1], [−1, 1]]: H = diag(0, 1), N = span e₂,
    # but H_1 e₂ = (1, 1) leaves N: relative leak |(1, 0)| / |(1, 1)| = 1/√2.
    s = jnp.array([[[0.0, 1.0], [1.0, 1.0]], [[0.0, -1.0], [-1.0, 1.0]]])

    def quad(p, xb, yb):
        return 0.5 * jnp.mean(jnp.einsum("bij,i,j->b", xb, p, p))

    bh = batch_hessians(quad, jnp.zeros(2), s, jnp.zeros(2), 1)
    np.testing.assert_allclose(bh.leak, [1 / math.sqrt(2)] * 2, rtol=1e-12)
    r = minimum_regularity(quad, jnp.zeros(2), s, jnp.zeros(2), 0.5, 1, exponent=False, hessians=bh)
    assert r.verdict.startswith("inconclusive: N(θ*) is not invariant") and not r.regular


# --------------------------------------------------------------------------- hand-built semigroups


def test_shared_invariant_line():
    # Upper triangular: e₁ is invariant. span{I, A, B} in (a11, a12, a22): det[(1,0,1), (2,1,3), (3,1,5)] = 1 ≠ 0,
    # so the algebra is all upper-triangular matrices, dim 3. Id − A, Id − B have eigenvalues −1, −2 and −2, −4.
    g = np.array([[[2.0, 1.0], [0.0, 3.0]], [[3.0, 1.0], [0.0, 5.0]]])
    span = algebra_span(g)
    assert span.dim == 3 == brute_force_algebra_dim(g, 3)
    assert span.word_length == 2  # span{A, B} has dim 2; the products of length 2 bring in I
    w = invariant_subspace(g)
    assert w.shape == (2, 1) and abs(abs(w[0, 0]) - 1) < 1e-12
    c = check_semigroup(g)
    assert c.verdict == "not regular: reducible (invariant subspace of dim 1 found)" and c.orbit == 1


def test_permuted_lines_are_caught_by_squares_not_by_length_two_products():
    # P = 3·swap, D = diag(2, ½): span{I, D, P, PD} = M₂ (irreducible), but P and D map the two axes onto each other.
    # Every word is diagonal or anti-diagonal, so every square is diagonal: T₂ ⊂ diagonal matrices (dim 2).
    p, dg = np.array([[0.0, 3.0], [3.0, 0.0]]), np.diag([2.0, 0.5])
    g = np.array([p, dg])
    span = algebra_span(g)
    assert span.dim == 4 and span.word_length == 2
    # The products of length 2 (P², PD, DP, D²) still generate M₂: that test cannot see the permutation.
    assert algebra_span(np.array([a @ b for a in g for b in g])).dim == 4
    c = check_semigroup(g)
    assert c.algebra_dim == 4 and dict(c.power_dims)[2] == 2 and c.orbit == 2
    assert c.verdict == ("not regular: not strongly irreducible (the generators permute 2 subspaces of dim 1, "
                         "found with the 2nd powers)")
    assert len(subspace_orbit(g, np.array([[1.0], [0.0]]))) == 2
    assert subspace_orbit(g, np.array([[1.0], [1.0]]) / math.sqrt(2), max_size=5) is None  # (1, 1) spreads out


def test_rotations_real_versus_complex():
    # Rotation by 90°: reducible over C (eigenvectors (1, ±i)) but not over R; R maps e₁ → e₂ → −e₁: {e₁, e₂} invariant.
    quarter = np.array([[[0.0, -1.0], [1.0, 0.0]]])
    c = check_semigroup(quarter)
    assert c.algebra_dim == 2 and c.orbit == 2 and c.verdict.startswith("not regular: not strongly irreducible")
    # Rotation by 1 rad: every orbit of lines is infinite, nothing real is invariant: only reducible over C.
    t = 1.0
    generic = np.array([[[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]])
    c = check_semigroup(generic)
    assert c.algebra_dim == 2 and c.subspace is None
    assert c.verdict.startswith("inconclusive: the algebra has dim 2 < d² = 4 (reducible over C)")


def test_invertibility_margins_are_relative():
    # diag(4, 2), diag(3, 1): σ_min/σ_max = 1/2, 1/3; Id − A = diag(−3, −1), diag(−2, 0): the second is singular.
    g = np.array([np.diag([4.0, 2.0]), np.diag([3.0, 1.0])])
    c = check_semigroup(g)
    assert (c.a_margin, c.a_worst, c.id_minus_a_margin, c.id_minus_a_worst) == (pytest.approx(1 / 3), 1, 0.0, 1)
    tiny = check_semigroup(1e-10 * g, check_id_minus_a=False)  # A/σ_max scale-free: still invertible
    assert tiny.a_margin == pytest.approx(1 / 3) and not tiny.verdict.startswith("not regular: (i)")


def test_singular_generator_fails_i():
    g = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.2], [0.2, 0.7]]])
    c = check_semigroup(g, labels=["first", "second"])
    assert c.verdict.startswith("not regular: (i) fails at generator first: A singular") and c.a_margin == 0.0


# --------------------------------------------------------------------------- non-finite input


def test_nan_input_is_non_finite_never_a_pass():
    g = np.array([[[np.nan, 0.0], [0.0, 1.0]]])
    c = check_semigroup(g)
    assert c.verdict == "non-finite" and not c.regular and not c.finite
    x = jnp.eye(2)
    r = minimum_regularity(lsq, jnp.array([jnp.nan, 0.0]), x, jnp.zeros(2), 0.5, 1, stability_kwargs={"steps": 50, "transient": 5})
    assert r.verdict == "non-finite" and not r.regular and math.isnan(r.exponent)
    assert "non-finite" in r.theorem


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check_semigroup(np.ones((2, 3))), "generators must have shape"),
        (lambda: check_semigroup(np.eye(2)[None], powers=(1,)), "powers must be integers >= 2"),
        (lambda: choose_batches(3, 4), "batch_size must be an integer in 1..3"),
        (lambda: minimum_regularity(lsq, jnp.zeros(2), jnp.eye(2), jnp.zeros(2), -0.5, 1, exponent=False), "eta must be"),
        (lambda: batch_hessians(lsq, jnp.zeros(2), jnp.eye(2), jnp.zeros(2), 1, max_normal_dim=1), "max_normal_dim"),
    ],
)
def test_bad_arguments_raise_config_errors(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# --------------------------------------------------------------------------- the app

QUIET = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
TINY = ["eta=[0.5,1.5]", "batch_sizes=[2]", "stability.steps=300", "stability.transient=50", "empirical.n_perturb=2",
        "empirical.steps=300", "regularity.powers=[2]"]


def run_app(monkeypatch, argv):
    from gdchaos.minima import main

    monkeypatch.setattr(sys, "argv", ["gdchaos.minima"])
    main([*argv, *QUIET])


def test_empirical_return_by_hand():
    # x = I₂, θ* = 0, B = 1: each step multiplies one coordinate by 1 − η. η = 0.5 contracts (returns);
    # η = 2.5 multiplies by −1.5 (leaves).
    from gdchaos.experiments.minima import Empirical, return_fraction

    settings = Empirical(n_perturb=3, radius=1e-6, steps=200, decrease=1e-2, escape=1e-2)
    frac = return_fraction(lsq, jnp.zeros(2), jnp.eye(2), jnp.zeros(2), 1, [0.5, 2.5], settings, seed=0)
    assert np.asarray(frac).tolist() == [1.0, 0.0]


def test_config_composes_and_validates():
    from gdchaos.minima import validate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("minima")
    assert validate(cfg)[0] == 0.25 and cfg.loss == "mse" and cfg.data.name == "synthetic" and cfg.model.hidden == [8]


def test_cli_writes_results_summary_and_figure(tmp_path, monkeypatch, capsys):
    run_app(monkeypatch, [*TINY, f"hydra.run.dir={tmp_path}"])
    out = capsys.readouterr().out
    for name in ("minima.nc", "minima.csv", "minima.png"):
        assert (tmp_path / name).stat().st_size > 0, name
        assert str(tmp_path / name) in out
    with xr.open_dataset(tmp_path / "minima.nc", engine="h5netcdf") as ds:
        assert dict(ds.sizes) == {"batch_size": 1, "eta": 2, "power": 1}
        assert ds.attrs["dtype"] == "float64" and "version_jax" in ds.attrs and ds.attrs["fit_residual"] <= 1e-12
        assert ds.attrs["n_normal"] == 12  # q·n = 2·6 at a generic interpolating minimum
        np.testing.assert_allclose(ds.eta_over_critical.values, [0.5, 1.5])
        # GD at η = 1.5·2/λ_max: ρ = |1 − 3| = 2.
        assert float(ds.gd_exponent[1]) == pytest.approx(math.log(2.0), rel=1e-9)
        assert float(ds.gd_exponent[0]) < 0
        verdict = str(ds.verdict.values[0, 0])
        assert verdict.startswith(("regular", "not regular", "inconclusive"))
        assert bool(ds.regular.values[0, 0]) == verdict.startswith("regular")
        assert 0.0 <= float(ds.return_fraction[0, 0]) <= 1.0
        assert float(ds.return_fraction[0, 1]) == 0.0 and float(ds.exponent[0, 1]) > 0  # beyond the GD limit
    lines = (tmp_path / "minima.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("batch_size,eta,eta_over_critical,exponent")


@pytest.mark.parametrize(
    "override, message",
    [
        ("loss=cross_entropy", "loss must be mse"),
        ("batch_sizes=[6]", "batch_sizes must be < the 6 training samples"),
        ("model.hidden=[2]", "an interpolating manifold needs more parameters"),
        ("eta_units=fraction", "eta_units must be critical or absolute"),
        ("eta=[0.5,-1]", "learning rates must be finite and > 0"),
        ("stability.transient=5000", "stability.transient must be <"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, override, message):
    with pytest.raises(SystemExit) as exit_info:
        run_app(monkeypatch, [override, f"hydra.run.dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gdchaos.minima: error: ") and message in err and "\n" not in err
