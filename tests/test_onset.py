"""The onset learning-rate finder (gdchaos.analyses.onset), its figure and its CLI (python -m gdchaos.onset)."""

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.analyses import onset

Z95 = 1.959963984540054


def logistic_rho(eta, eta0=2.0, s=6.0, top=1.0):
    """ρ(η) = top / (1 + (η0/η)^s): a logistic in ln η crossing top/2 at η0."""
    return top / (1.0 + (eta0 / np.asarray(eta)) ** s)


def binomial_rho(n, seed=0, **kwargs):
    rng = np.random.default_rng(seed)

    def rho_at(etas):
        m = rng.binomial(n, logistic_rho(etas, **kwargs))
        return m / n, np.full(len(etas), n)

    return rho_at


# --------------------------------------------------------------------------- statistics


def test_wilson_interval_by_hand():
    # 3 of 10, z = 1.96: centre (0.3 + z²/20)/(1 + z²/10), half z/(1 + z²/10) √(0.021 + z²/400)
    z2 = Z95 * Z95
    centre = (0.3 + z2 / 20) / (1 + z2 / 10)
    half = Z95 / (1 + z2 / 10) * math.sqrt(0.3 * 0.7 / 10 + z2 / 400)
    lo, hi = onset.wilson_interval(3, 10)
    assert float(lo) == pytest.approx(centre - half, abs=1e-12)
    assert float(hi) == pytest.approx(centre + half, abs=1e-12)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.1078, 0.6032)  # the textbook value
    lo0, hi0 = onset.wilson_interval(0, 20)
    assert float(lo0) == 0.0 and float(hi0) == pytest.approx(z2 / (20 + z2), abs=1e-12)
    lo99, _ = onset.wilson_interval(3, 10, confidence=0.99)
    assert float(lo99) < float(lo)


def test_uniform_grid_and_interior_points():
    assert onset.uniform_grid_points(1.0, 1.1**10, 0.1) == 11
    assert onset.uniform_grid_points(0.01, 100.0, 0.1) == math.ceil(math.log(1e4) / math.log(1.1)) + 1
    pts = onset.interior_points(1.0, 81.0, 3)
    np.testing.assert_allclose(pts, [3.0, 9.0, 27.0])


def test_interpolation_in_log_eta():
    p = onset.RhoPoints(np.array([1.0, 100.0]), np.array([0.2, 0.8]), np.array([10, 10]),
                        np.zeros(2), np.ones(2), np.zeros(2, int))
    assert onset.interpolate(p, 1, 0.5) == pytest.approx(10.0)  # halfway in ln η
    assert onset.interpolate(p, 1, 0.35) == pytest.approx(10 ** 0.5)


# --------------------------------------------------------------------------- the k-section search


def test_finds_logistic_onset_within_interval_and_rtol_cheaply():
    eta0, s, n, rtol = 2.0, 6.0, 400, 0.1
    r = onset.onset_search(binomial_rho(n, seed=0, eta0=eta0, s=s), 0.01, 100.0, k=3, rtol=rtol, threshold=0.95)
    assert r.status == "ok", r.message
    lo, hi = r.eta_onset_interval
    assert lo <= eta0 <= hi
    assert abs(r.eta_onset / eta0 - 1) <= rtol
    a, b = r.onset_bracket
    assert b / a - 1 <= rtol and a <= r.eta_onset <= b
    full_true = eta0 * 19.0 ** (1 / s)  # ρ = 0.95
    assert r.interval[0] <= full_true <= r.interval[1]
    assert abs(r.eta_full / full_true - 1) <= 2 * rtol
    # cost: a uniform log grid over [0.01, 100] with neighbours 1 + rtol apart has ⌈ln(1e4)/ln 1.1⌉ + 1 = 98 points
    grid = (math.ceil(math.log(100.0 / 0.01) / math.log(1 + rtol)) + 1) * n
    assert r.grid_member_steps == grid
    assert r.member_steps_onset <= 0.2 * grid
    assert r.member_steps == 3 * n * r.rounds
    assert [t for t, _, _ in r.brackets][:2] == ["initial", "onset"]
    assert r.points.eta.size == 3 * r.rounds and np.all(np.diff(r.points.eta) >= 0)


def test_exact_rho_converges_to_rtol():
    r = onset.onset_search(lambda e: (logistic_rho(e, eta0=3.0, s=10.0), np.full(len(e), 10**6)), 0.1, 100.0,
                           k=4, rtol=0.01, threshold=0.9)
    assert r.status == "ok"
    assert r.eta_onset == pytest.approx(3.0, rel=0.01)
    assert r.eta_full == pytest.approx(3.0 * 9.0 ** 0.1, rel=0.01)


def test_no_recompilation_across_rounds():
    traces = []

    @jax.jit
    def measure(etas, key):
        traces.append(1)  # runs once per trace
        p = 1.0 / (1.0 + (2.0 / etas) ** 6)
        hits = jax.random.uniform(key, (etas.shape[0], 200)) < p[:, None]
        return jnp.mean(hits, axis=1)

    calls = []

    def rho_at(etas):
        calls.append(len(etas))
        rho = measure(jnp.asarray(etas), jax.random.fold_in(jax.random.key(0), len(calls)))
        return np.asarray(rho), np.full(len(etas), 200)

    r = onset.onset_search(rho_at, 0.01, 100.0, k=3, rtol=0.1)
    assert r.rounds >= 4 and set(calls) == {3}
    assert len(traces) == 1


def test_threshold_never_reached_is_a_status_not_a_number():
    r = onset.onset_search(binomial_rho(400, top=0.8), 0.01, 100.0, k=3, rtol=0.1, threshold=0.95)
    assert r.status == "threshold_not_reached"
    assert r.eta_full is None and r.interval is None
    assert r.eta_onset is not None  # ρ = 0.4 at η0, ½ at a larger η: still located
    assert "\n" not in r.message and "rho(eta) =" in r.message


def test_no_onset_and_onset_below_bracket():
    r = onset.onset_search(lambda e: (np.zeros(len(e)), np.full(len(e), 50)), 0.01, 100.0)
    assert r.status == "no_onset" and r.eta_onset is None and r.eta_full is None
    r = onset.onset_search(lambda e: (np.ones(len(e)), np.full(len(e), 50)), 0.01, 100.0)
    assert r.status == "onset_below_bracket" and r.eta_onset is None
    assert r.rounds == 1


def test_non_monotone_rho_fails_honestly():
    # a bump: ρ rises above ½ near η = 2 and falls back to 0 at η_max
    bump = lambda e: (np.exp(-np.log(np.asarray(e) / 2.0) ** 2 / 2.0), np.full(len(e), 100))
    r = onset.onset_search(bump, 0.01, 100.0, k=3)
    assert r.status == "not_monotone" and r.eta_onset is None and r.eta_full is None
    assert "\n" not in r.message and "rho(eta) =" in r.message
    # up, down clearly below ½, up again: no single crossing between η_onset and η_full
    zigzag = lambda e: (np.where(np.asarray(e) < 1.0, 0.0, np.where(np.asarray(e) < 5.0, 0.7, np.where(np.asarray(e) < 10.0, 0.1, 1.0))),
                        np.full(len(e), 100))
    r = onset.onset_search(zigzag, 0.1, 100.0, k=5, threshold=0.95)
    assert r.status == "not_monotone"


def test_bad_arguments_are_config_errors():
    from gdchaos.core.errors import ConfigError

    with pytest.raises(ConfigError, match="k must be"):
        onset.onset_search(lambda e: (e * 0, e * 0 + 1), 0.1, 1.0, k=1)
    with pytest.raises(ConfigError, match="eta_min < eta_max"):
        onset.onset_search(lambda e: (e * 0, e * 0 + 1), 1.0, 0.1)


# --------------------------------------------------------------------------- the double-well toy map


def double_well_lyapunov(etas, w0=0.1, transient=3000, keep=3000):
    """λ(η) of w ↦ w − η(w³ − w) by plain numpy iteration: f'(w) = 1 − η(3w² − 1)."""
    w = np.full(np.shape(etas), w0)
    s = np.zeros(np.shape(etas))
    for t in range(transient + keep):
        if t >= transient:
            s += np.log(np.abs(1 - etas * (3 * w * w - 1)))
        w = w - etas * (w**3 - w)
    return s / keep


def test_double_well_onset_of_chaos():
    from gdchaos.analyses import toymaps

    grid = np.arange(1.25, 1.36, 2e-4)
    reference = float(grid[np.argmax(double_well_lyapunov(grid) > 0)])  # first chaotic η on a fine grid
    feigenbaum = (math.sqrt(5) - 1) + (math.sqrt(5) - 2) / (4.669201609 - 1)  # η₂ + (η₂ − η₁)/(δ − 1)
    assert reference == pytest.approx(feigenbaum, rel=0.01)

    def rho_at(etas):
        o = toymaps.orbit_diagram("double_well", np.asarray(etas), n_init=16, transient=3000, keep=3000, key=jax.random.key(3))
        positive = np.asarray(o.exponent) > 0
        return positive.mean(axis=1), np.full(len(etas), 16)

    r = onset.onset_search(rho_at, 1.1, 1.6, k=3, rtol=0.002, threshold=0.95, cost_per_eta=16 * 6000)
    assert r.status == "ok", r.message
    assert r.eta_onset == pytest.approx(reference, rel=0.005)
    lo, hi = r.eta_onset_interval  # the finite-time onset is fuzzy on the scale of rtol: windows, slow convergence
    assert lo <= reference * 1.002 and reference <= hi * 1.002
    assert r.member_steps == r.rounds * 3 * 16 * 6000


# --------------------------------------------------------------------------- LR range test


def quadratic_map(curvature):
    from gdchaos.core.maps import gd

    return gd(lambda p, x, y: 0.5 * curvature * jnp.sum(p**2), jnp.zeros(1), jnp.zeros(1))


def test_smoothing_and_stop_rule_by_hand():
    beta = 0.9
    loss = np.array([2.0, 1.0, 4.0])
    a0 = 0.1 * 2.0
    a1 = 0.9 * a0 + 0.1 * 1.0
    a2 = 0.9 * a1 + 0.1 * 4.0
    expected = [a0 / (1 - 0.9), a1 / (1 - 0.9**2), a2 / (1 - 0.9**3)]
    np.testing.assert_allclose(onset.smooth_losses(loss, beta), expected, rtol=1e-12)
    assert onset.stop_index(np.array([3.0, 1.0, 3.9, 4.1, 0.5])).tolist() == 3
    assert onset.stop_index(np.array([3.0, 1.0, 4.0, np.nan])).tolist() == 3


def test_range_test_on_a_quadratic_matches_the_closed_form():
    lam, eta_min, eta_max, num_it = 4.0, 0.01, 10.0, 80
    w0_key = jax.random.key(5)
    rt = onset.lr_range_test(quadratic_map(lam), lambda k: jax.random.normal(k, (3,)), eta_min=eta_min, eta_max=eta_max,
                             num_it=num_it, n_ic=2, key=w0_key, beta=0.0)
    # closed form: L_t = L_0 Π_{s<t} (1 − η_s λ)², η_t = η_min (η_max/η_min)^{t/(num_it−1)}
    eta = eta_min * (eta_max / eta_min) ** (np.arange(num_it) / (num_it - 1))
    np.testing.assert_allclose(rt.eta, eta, rtol=1e-12)
    factors = np.concatenate([[1.0], np.cumprod((1 - eta[:-1] * lam) ** 2)])
    for i in range(2):
        loss = rt.loss[i, 0] * factors
        np.testing.assert_allclose(rt.loss[i, : rt.stop[i] + 1], loss[: rt.stop[i] + 1], rtol=1e-6)
        best = np.minimum.accumulate(loss)
        stop = int(np.argmax(loss > 4 * best))
        assert rt.stop[i] == stop
        assert eta[stop] > 2 / lam  # GD on the quadratic diverges only above η = 2/λ
        lo, hi = num_it // 10, stop + 1 - 5
        grads = np.diff(loss[lo:hi]) / np.diff(np.log(eta[lo:hi]))
        assert rt.suggestions[i] == pytest.approx(eta[lo + int(np.argmin(grads))], rel=1e-12)
    assert rt.member_steps == 2 * num_it and rt.member_steps_to_stop == int(np.sum(rt.stop + 1))
    smoothed = onset.lr_range_test(quadratic_map(lam), lambda k: jax.random.normal(k, (3,)), eta_min=eta_min, eta_max=eta_max,
                                   num_it=num_it, n_ic=4, key=w0_key)
    assert smoothed.suggestion < 2 / lam and np.all(smoothed.suggestions < 2 / lam)  # a stable η
    # a quartic V = w²/2 + w⁴/4: the curvature depends on |w₀|, so the ICs' suggestions differ
    from gdchaos.core.maps import gd

    quartic = gd(lambda p, x, y: jnp.sum(0.5 * p**2 + 0.25 * p**4), jnp.zeros(1), jnp.zeros(1))
    spread = onset.lr_range_test(quartic, lambda k: 3 * jax.random.normal(k, (1,)), eta_min=1e-3, eta_max=10.0, num_it=100,
                                 n_ic=4, key=w0_key)
    assert np.unique(spread.suggestions).size > 1
    assert spread.spread == pytest.approx(np.std(np.log10(spread.suggestions)))
    assert spread.suggestion == pytest.approx(10 ** np.mean(np.log10(spread.suggestions)))  # geometric mean


def test_minimum_rule():
    eta = 0.01 * 2.0 ** np.arange(8)
    smoothed = np.array([5.0, 4.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert onset.suggest(eta, smoothed, 7, "minimum", num_it=8, skip_end=0) == pytest.approx(0.008)


def test_validate_tau_on_a_quadratic_toy_task():
    from gdchaos.core.models import Model
    from gdchaos.engine.ensemble import draw
    from gdchaos.experiments.task import Task

    loss = lambda p, x, y: 0.5 * jnp.sum(p**2)
    init = lambda k: jax.random.normal(k, (2,))
    task = Task(dataset=None, model=Model(init, lambda p, x: p), tmap=quadratic_map(1.0),
                observe=lambda p: {"accuracy": 1.0 / (1.0 + jnp.sum(p**2))}, loss_fn=loss, accuracy_target=0.99,
                hyper={}, name="toy")
    etas, n_ic, steps = [0.1, 0.5, 0.02], 6, 40
    v = onset.validate_tau(task, etas, n_ic=n_ic, steps=steps, seed=4)
    # |w_t|² = (1 − η)^{2t} |w_0|²; accuracy ≥ 0.99 ⇔ |w_t|² ≤ 1/0.99 − 1
    w0 = np.asarray(draw(jax.random.key(4), init, n_ic)[0])
    r2 = np.sum(w0**2, axis=1)
    t = np.arange(steps)
    for i, eta in enumerate(etas):
        hit = (1 - eta) ** (2 * t[None, :]) * r2[:, None] <= 1 / 0.99 - 1
        tau = np.where(hit.any(1), hit.argmax(1), -1)
        np.testing.assert_array_equal(v.tau[i], tau)
        censored = np.where(tau >= 0, tau, steps)
        assert v.tau_mean[i] == pytest.approx(censored.mean())
        assert v.tau_sem[i] == pytest.approx(censored.std() / math.sqrt(n_ic))
        assert v.n_censored[i] == np.sum(tau < 0)
    assert v.n_censored[2] > 0 and v.n_censored[1] == 0


# --------------------------------------------------------------------------- figure and CLI


def test_figure_is_drawn_without_pyplot(tmp_path):
    from gdchaos.figures.onset import onset_figure, save_figure
    from gdchaos.figures.base import for_files

    r = onset.onset_search(binomial_rho(100), 0.01, 100.0)
    rt = onset.lr_range_test(quadratic_map(4.0), lambda k: jax.random.normal(k, (3,)), eta_min=0.01, eta_max=10.0, num_it=40, n_ic=2)
    with for_files():
        fig = onset_figure(r, rt)
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    assert save_figure(r, rt, tmp_path).exists()


def _cli(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "gdchaos.onset", f"hydra.run.dir={tmp_path}", *args],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_cli_end_to_end(tmp_path):
    import pandas as pd
    import xarray as xr

    tiny = ["n_ic=3", "n_perturb=1", "steps=52", "lyapunov.start_max=10", "lyapunov.length_min=20", "lyapunov.length_max=40",
            "eta_min=0.05", "eta_max=20", "rtol=1.0", "max_rounds=2", "range_test.enabled=false", "validate.enabled=false"]
    proc = _cli(tiny, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("results.nc", "summary.csv", "onset.png"):
        assert (tmp_path / name).exists(), name
    table = pd.read_csv(tmp_path / "summary.csv")
    assert list(table.method) == ["onset", "full"]
    with xr.open_dataset(tmp_path / "results.nc", engine="h5netcdf") as ds:
        assert ds.attrs["status"] in onset.STATUSES
        assert ds.sizes["point"] == 3 * ds.attrs["rounds"]
        assert ds.attrs["member_steps"] == 3 * 3 * 2 * 52 * ds.attrs["rounds"]
        assert ds.attrs["dtype"] == "float64" and "rho_ci_low" in ds and "bracket_low" in ds


def test_cli_failure_prints_one_line_with_the_curve(tmp_path):
    tiny = ["n_ic=2", "n_perturb=1", "steps=52", "lyapunov.start_max=10", "lyapunov.length_min=20", "lyapunov.length_max=40",
            "eta_min=0.0001", "eta_max=0.001", "max_rounds=1", "range_test.enabled=false", "validate.enabled=false"]
    proc = _cli(tiny, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("[")]  # [..] are log records
    assert len(printed) == 1 and printed[0].startswith("no_onset:") and "rho(eta) = 0.0001:0.00" in printed[0]
    assert (tmp_path / "results.nc").exists() and (tmp_path / "onset.png").exists()


@pytest.mark.parametrize("arg, key", [("k=1", "k must be"), ("no_such_key=1", "no_such_key")])
def test_cli_bad_key_is_one_line_exit_2(tmp_path, arg, key):
    proc = _cli([arg], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdchaos.onset: error:") and key in lines[0]
