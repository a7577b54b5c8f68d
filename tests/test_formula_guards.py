"""Formula guards: each expected value comes from an independent derivation (analytic case,
brute force or hand computation), never from the code under test. Each test was checked to
fail with a planted bug in the formula it guards (named in its docstring)."""

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from gdchaos.core import maps
from gdchaos.analyses.curvature.tracking import run_sharpness
from gdchaos.core.data.dataset import Dataset
from gdchaos.analyses.edge_of_chaos import track_training
from gdchaos.experiments.both import add_window_matched_tangent
from gdchaos.core.models import Model
from gdchaos.core.perturb import box
from gdchaos.analyses.timeseries import surrogate_band

from conftest import fast_key

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- 1. window-matched tangent


def test_window_matched_tangent_averages_the_stretches_of_the_updates_inside_the_window():
    """Guards ``add_window_matched_tangent`` against a one-step shift (csum[s+n+1] − csum[s+1]).

    Convention (ensemble.py, finite.py): distances are recorded at θ_t *before* update t, so
    the finite-ε window [s, s + L] spans the points s..s+L, and the growth of ln d from point
    s to point s + L is the sum of the stretches of updates s, s+1, ..., s+L−1. The tangent
    log-stretch recorded at index t is the stretch of update t, so the window-matched exponent
    is mean(log_stretch[s : s + L]), computed here with a plain Python loop.
    """
    n_eta, n_eps, n_ic, steps = 2, 3, 2, 12
    rng = np.random.default_rng(0)
    # distinct, well-separated values: any shift of the window changes the mean
    log_stretch = rng.permutation(np.arange(n_eta * n_ic * steps, dtype=float) ** 1.5).reshape(n_eta, n_ic, steps)
    start = rng.integers(0, 5, size=(n_eta, n_eps, n_ic))
    start[0, 0, 0] = 0  # the first window, where an off-by-one at the left edge shows most
    length = rng.integers(2, 7, size=(n_eta, n_eps, n_ic))
    length[1, 2, 1] = steps - start[1, 2, 1]  # a window that ends on the last recorded step
    ds = xr.Dataset(
        {
            "tangent_log_stretch": (("eta", "ic", "step"), log_stretch),
            "window_start": (("eta", "eps", "ic"), start),
            "window_length": (("eta", "eps", "ic"), length),
        },
        coords={"eta": [0.5, 2.0], "eps": [1e-8, 1e-6, 1e-4], "ic": [0, 1], "step": np.arange(steps)},
    )
    expected = np.empty((n_eta, n_eps, n_ic))
    for i, j, c in itertools.product(range(n_eta), range(n_eps), range(n_ic)):
        s, n = int(start[i, j, c]), int(length[i, j, c])
        total = 0.0
        for t in range(s, s + n):  # updates s .. s+n−1
            total += log_stretch[i, c, t]
        expected[i, j, c] = total / n
    out = add_window_matched_tangent(ds)
    assert out.tangent_window_exponent.dims == ("eta", "eps", "ic")
    np.testing.assert_allclose(out.tangent_window_exponent.values, expected, rtol=1e-12)


# --------------------------------------------------------------------------- 2. surrogate band


def _acf_direct(x, max_lag):
    """ρ(k) = Σ_{t<N−k} (x_t − x̄)(x_{t+k} − x̄) / Σ_t (x_t − x̄)² by the textbook double sum."""
    xc = x - x.mean()
    den = np.sum(xc * xc)
    return np.array([np.sum(xc[: len(x) - k] * xc[k:]) / den for k in range(max_lag + 1)])


def test_surrogate_band_is_the_central_95_percent_of_true_shuffled_acfs():
    """Guards ``surrogate_band`` against a 90 % band (quantiles 0.05/0.95) where 95 % is documented.

    Every returned surrogate ACF is first checked, by brute force over all 7! permutations of
    x, to be the ACF of a permutation of x. Then the band must be the 2.5 % and 97.5 %
    sample quantiles (NumPy's linear interpolation, computed here) of those surrogate values.
    """
    x = np.array([0.3, -1.2, 2.5, 0.1, -0.7, 1.9, -2.2])
    max_lag, n_surr = 3, 400
    band = surrogate_band(jnp.asarray(x), max_lag, n_surr, fast_key(7))  # default level: 95 %
    surr = np.asarray(band.surrogate_acf)
    assert surr.shape == (n_surr, max_lag + 1)
    all_acfs = np.array([_acf_direct(x[list(p)], max_lag) for p in itertools.permutations(range(len(x)))])
    nearest = np.min(np.max(np.abs(surr[:, None, :] - all_acfs[None, :, :]), axis=-1), axis=1)
    assert np.all(nearest < 1e-10), "every surrogate ACF is the ACF of a permutation of x"
    assert len(np.unique(surr[:, 1].round(10))) > 50  # many distinct values: the quantiles differ by level
    lower, upper = np.quantile(surr, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(band.lower, lower, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(band.upper, upper, rtol=1e-10, atol=1e-12)
    # at most 2.5 % of the surrogates lie on each side (ties only shrink the tails)
    for k in range(1, max_lag + 1):
        assert np.mean(surr[:, k] < band.lower[k]) <= 0.025 + 1e-12
        assert np.mean(surr[:, k] > band.upper[k]) <= 0.025 + 1e-12


# --------------------------------------------------------------------------- 3. L2 term of run_sharpness


def test_run_sharpness_adds_half_lambda_theta_squared():
    """Guards ``run_sharpness``'s objective against λ‖θ‖² in place of ½λ‖θ‖².

    Analytic case: L(θ) = ½ Σ a_i θ_i² with a = (1, 3) and hyper l2 = λ. The objective
    L + ½λ‖θ‖² has Hessian diag(a + λ): top = 3 + λ, bottom = 1 + λ (a + 2λ with the bug).
    From θ_0 = (1, 2), GD multiplies θ_i by (1 − η(a_i + λ)) per update; the recorded loss is
    the objective ½ Σ (a_i + λ) θ_i², evaluated here by hand.
    """
    a, lam, eta, every = np.array([1.0, 3.0]), 0.25, 0.1, 3
    loss_fn = lambda p, x, y: 0.5 * jnp.sum(jnp.asarray(a) * p["w"] ** 2)
    tmap = maps.gd(loss_fn, jnp.zeros((1, 1)), jnp.zeros(1))
    theta0 = np.array([1.0, 2.0])
    init = lambda key: {"w": jnp.asarray(theta0)}
    res = run_sharpness(tmap, init, lambda p: loss_fn(p, None, None), eta=[eta], n_ic=1, steps=2 * every,
                        every=every, key=jax.random.key(0), k=1, method="full", hyper={"l2": lam}, progress=False)
    np.testing.assert_allclose(res.records["top"][..., 0], 3.0 + lam, rtol=1e-12)
    np.testing.assert_allclose(res.records["bottom"][..., 0], 1.0 + lam, rtol=1e-12)
    expected_loss = []
    for t in (0, every):
        theta = theta0 * (1 - eta * (a + lam)) ** t
        expected_loss.append(0.5 * np.sum((a + lam) * theta**2))
    np.testing.assert_allclose(res.records["loss"][0, 0], expected_loss, rtol=1e-12)


# --------------------------------------------------------------------------- 4. weight decay of track_training


def test_track_training_weight_decay_is_the_papers_2_lambda():
    """Guards ``track_training`` against ``hyper["l2"] = λ`` where the paper's update needs 2λ.

    The paper (Sec. III) writes SGD with momentum and weight decay λ as
    v ← α v − η (g + 2λ w), w ← w + v. With a model whose output ignores its parameters the
    data gradient g is 0, so every entry of W follows w_t = c_t w_0 with the scalar recursion
    below (hand-derived, v_0 = 0). Then J0 = N·mean(W) and J = √N·std(W) scale as c_t and |c_t|.
    One update per epoch (B = S).
    """
    n, n_classes, epochs = 3, 2, 4
    eta, alpha, wd = 0.1, 0.5, 0.5
    w0 = np.array([[0.9, -0.4, 0.2], [0.3, 1.1, -0.6], [-0.5, 0.7, 0.4]])

    def init(key):
        return {"layer0": {"kernel": jnp.asarray(w0.T)}}

    def apply(params, x):  # logits that do not depend on the parameters: g = 0
        return jnp.zeros((x.shape[0], n_classes), x.dtype)

    x = np.random.default_rng(0).normal(size=(4, n))
    y = np.array([0, 1, 0, 1])
    data = Dataset(x, y, x, y, n_classes, "toy")
    tr = track_training(data, epochs=epochs, eta=eta, momentum=alpha, batch_size=4, weight_decay=wd,
                        model=Model(init, apply))

    c, v, scale = 1.0, 0.0, [1.0]
    for _ in range(epochs):
        v = alpha * v - eta * (0.0 + 2 * wd * c)
        c = c + v
        scale.append(c)
    scale = np.array(scale)
    assert abs(scale[1] - (1 - 2 * eta * wd)) < 1e-15  # first update: w ← (1 − 2ηλ) w
    j0_0, j_0 = n * w0.mean(), np.sqrt(n) * w0.std()
    np.testing.assert_allclose(tr.j0, j0_0 * scale, rtol=1e-10)
    np.testing.assert_allclose(tr.j, j_0 * np.abs(scale), rtol=1e-10)
    np.testing.assert_allclose(tr.train_loss, np.log(n_classes), rtol=1e-12)
    assert not bool(tr.diverged[-1])


# --------------------------------------------------------------------------- 5. the ε-box


def test_box_draws_uniform_minus_eps_to_eps():
    """Guards ``perturb.box`` against U(0, ε) in place of U(−ε, ε).

    U(−ε, ε) has mean 0, variance ε²/3 and Var(δ²) = ε⁴/5 − ε⁴/9 = 4ε⁴/45; with N draws the
    sample mean and the sample second moment lie within 6 standard errors. Its extremes
    approach ±ε: P(all N draws > −0.99ε) = 0.995^N, negligible for N = 60 000.
    """
    eps, n = 1e-3, 30
    rng = np.random.default_rng(1)
    params = {"layer0": {"kernel": jnp.asarray(rng.normal(size=(40, 50))), "bias": jnp.asarray(rng.normal(size=50))}}
    members = box(fast_key(3), params, eps, n)
    kernel, bias = np.asarray(members["layer0"]["kernel"]), np.asarray(members["layer0"]["bias"])
    assert kernel.shape == (n + 1, 40, 50) and bias.shape == (n + 1, 50)
    np.testing.assert_array_equal(kernel[0], params["layer0"]["kernel"])  # member 0 is the reference
    np.testing.assert_array_equal(bias, np.broadcast_to(params["layer0"]["bias"], bias.shape))  # biases untouched
    delta = (kernel[1:] - np.asarray(params["layer0"]["kernel"])).ravel()
    count = delta.size
    assert np.all(np.abs(delta) <= eps * (1 + 1e-9))
    assert delta.min() < -0.99 * eps and delta.max() > 0.99 * eps
    assert abs(delta.mean()) < 6 * eps / np.sqrt(3 * count)
    assert abs(np.mean(delta**2) - eps**2 / 3) < 6 * np.sqrt(4 * eps**4 / 45 / count)
    assert abs(np.mean(delta < 0) - 0.5) < 6 * 0.5 / np.sqrt(count)

    with_bias = box(fast_key(3), params, eps, n, include_bias=True)
    db = np.asarray(with_bias["layer0"]["bias"][1:] - params["layer0"]["bias"]).ravel()
    assert np.all(np.abs(db) <= eps * (1 + 1e-9)) and db.min() < -0.9 * eps and db.max() > 0.9 * eps
    np.testing.assert_array_equal(with_bias["layer0"]["bias"][0], params["layer0"]["bias"])


# --------------------------------------------------------------------------- 8. enable_float64


def test_enable_float64_switches_new_arrays_to_float64():
    """``enable_float64`` flips JAX's global default; run in a fresh process (this one has x64 on)."""
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        from gdchaos.core.precision import enable_float64, float64_enabled
        before = jnp.ones(3)
        assert not float64_enabled(), "x64 already on"
        assert before.dtype == jnp.float32, before.dtype
        assert jnp.asarray(1.5).dtype == jnp.float32
        enable_float64()
        assert float64_enabled()
        after = jnp.ones(3)
        assert after.dtype == jnp.float64, after.dtype
        assert jnp.asarray(1.5).dtype == jnp.float64
        assert jax.random.normal(jax.random.key(0), (2,)).dtype == jnp.float64
        assert before.dtype == jnp.float32  # arrays made earlier stay float32
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")
