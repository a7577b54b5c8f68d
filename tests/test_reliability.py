"""Long sweeps survive interruption, bad results files and blow-up; runs are reproducible."""

import itertools
import signal
import subprocess
import sys
import time
import warnings

import h5py
import jax
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from gdchaos.engine import ensemble

from gdchaos.experiments import results
from gdchaos.engine.checkpoint import Checkpoint
from gdchaos.core.errors import ConfigError
from gdchaos.analyses.lyapunov.tangent_ensemble import run_tangent
from gdchaos.cli.app import config_dir
from gdchaos.sweep import run_sweep

SHRINK = ["n_ic=2", "n_perturb=2", "lyapunov.start_max=10", "lyapunov.length_min=20",
          "lyapunov.length_max=40", "progress=false", "cpu_devices=1"]


def compose_with(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("sweep", overrides=list(overrides))


class Crash(Exception):
    pass


def crash_after(monkeypatch, n_saves):
    """Make the n-th chunk checkpoint the last one written before the 'process' dies."""
    original, calls = Checkpoint.save, []

    def save(self, index, carry, records):
        original(self, index, carry, records)
        calls.append(index)
        if len(calls) == n_saves:
            raise Crash

    monkeypatch.setattr(Checkpoint, "save", save)


def test_ensemble_resumed_after_a_crash_equals_an_uninterrupted_run(iris_task, tmp_path, monkeypatch):
    kw = dict(eta=[1.0, 20.0], eps=[1e-6], n_ic=2, n_perturb=2, steps=50, chunk=10,
              key=jax.random.key(3), observe=iris_task.observe, progress=False)
    whole = ensemble.run(iris_task.tmap, iris_task.model.init, **kw)
    with monkeypatch.context() as m:
        crash_after(m, 2)
        with pytest.raises(Crash):
            ensemble.run(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **kw)
    assert sorted(p.name for p in tmp_path.glob("records_*")) == ["records_00000.npz", "records_00001.npz"]
    resumed = ensemble.run(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **kw)
    for name in whole.records:
        np.testing.assert_array_equal(resumed.records[name], whole.records[name])
    np.testing.assert_array_equal(resumed.diverged_at, whole.diverged_at)


def test_tangent_ensemble_resumes_bitwise(iris_task, tmp_path, monkeypatch):
    kw = dict(eta=[0.5, 4.0], n_ic=2, steps=30, key=jax.random.key(1), k=2, chunk=10, progress=False)
    whole = run_tangent(iris_task.tmap, iris_task.model.init, **kw)
    with monkeypatch.context() as m:
        crash_after(m, 1)
        with pytest.raises(Crash):
            run_tangent(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **kw)
    resumed = run_tangent(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **kw)
    np.testing.assert_array_equal(resumed.exponents, whole.exponents)
    np.testing.assert_array_equal(resumed.records["log_stretch"], whole.records["log_stretch"])


def test_checkpoint_of_another_run_is_refused(iris_task, tmp_path, monkeypatch):
    kw = dict(eta=[1.0], eps=[1e-6], n_ic=2, n_perturb=1, steps=30, chunk=10, key=jax.random.key(0), progress=False)
    with monkeypatch.context() as m:
        crash_after(m, 1)
        with pytest.raises(Crash):
            ensemble.run(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **kw)
    with pytest.raises(ConfigError, match="cannot resume .*shapes"):
        ensemble.run(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **{**kw, "n_ic": 3})
    with pytest.raises(ConfigError, match="chunks do not match"):
        ensemble.run(iris_task.tmap, iris_task.model.init, checkpoint=tmp_path, **{**kw, "chunk": 15})


def test_sweep_refuses_to_resume_with_a_different_config_and_names_the_keys(tmp_path):
    base = ["eta=[1.0]", "steps=60", "chunk=20", *SHRINK]
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "config.yaml").write_text(
        __import__("omegaconf").OmegaConf.to_yaml(compose_with(*base), resolve=True)
    )
    with pytest.raises(ConfigError, match=r"steps \(was 60, now 80\)"):
        run_sweep(compose_with(*[a for a in base if not a.startswith("steps")], "steps=80"), tmp_path)


def test_finished_run_directory_is_reloaded_not_recomputed(tmp_path, monkeypatch):
    cfg = compose_with("eta=[1.0]", "steps=60", "chunk=30", *SHRINK)
    first = run_sweep(cfg, tmp_path)
    assert not (tmp_path / "checkpoint").exists(), "checkpoints are removed once results are written"
    monkeypatch.setattr("gdchaos.experiments.finite.finite_sweep", lambda *a, **k: pytest.fail("recomputed"))
    again = run_sweep(cfg, tmp_path)
    np.testing.assert_array_equal(again.distance.values, first.distance.values)


def test_sigkill_mid_sweep_then_resume_gives_the_uninterrupted_results(tmp_path):
    args = ["eta=[1.0,8.0]", "eps=1e-8", "steps=1500", "chunk=5", *SHRINK]
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gdchaos.sweep", *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = run_dir / "checkpoint" / "finite" / "state.npz"
    deadline = time.time() + 180
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (run_dir / "results.nc").exists(), "the run finished before it could be killed"
    assert 0 < len(list(state.parent.glob("records_*.npz"))) < 300

    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming from" in (run_dir / "sweep.log").read_text()
    resumed = results.load(run_dir)
    assert resumed.attrs["dtype"] == "float64"  # the finite method's default precision

    reference = run_sweep(compose_with(*args, "checkpoint=false"), tmp_path / "whole")
    for name in ("distance", "loss", "accuracy", "exponent", "diverged_at"):
        np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)


def test_same_seed_is_bitwise_reproducible_and_first_ics_do_not_depend_on_n_ic(iris_task):
    def run(n_ic, n_perturb=2, eta=(1.0,)):
        return ensemble.run(iris_task.tmap, iris_task.model.init, eta=list(eta), eps=[1e-6], n_ic=n_ic,
                            n_perturb=n_perturb, steps=5, key=jax.random.key(7), progress=False)

    a, b = run(3), run(3)
    for name in a.records:
        np.testing.assert_array_equal(a.records[name], b.records[name])
    # the same draws (other batch shapes may round differently in the last bit)
    more_ics, more_members, more_eta = run(5), run(3, n_perturb=4), run(3, eta=(0.5, 1.0))
    same = lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-13, atol=0)
    same(more_ics.records["loss"][:, :, :3], a.records["loss"])
    same(more_members.records["loss"][..., :3, :], a.records["loss"])
    same(more_eta.records["loss"][1:], a.records["loss"])
    assert not np.array_equal(run(3).records["loss"], ensemble.run(
        iris_task.tmap, iris_task.model.init, eta=[1.0], eps=[1e-6], n_ic=3, n_perturb=2, steps=5,
        key=jax.random.key(8), progress=False).records["loss"])


def test_exploding_members_are_flagged_counted_and_never_warn(tmp_path):
    # cross-entropy (log-softmax) stays finite at any η on Iris; MSE through tanh blows up at η ≥ 50
    # η = 300 blows up at step 44 here, inside the fit windows (they end at steps 20..50)
    cfg = compose_with("eta=[20.0,50.0,100.0,300.0]", "loss=mse", "model.activation=tanh", "n_ic=4",
                       "steps=60", "chunk=30", "eps=1e-6", *SHRINK)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ds = run_sweep(cfg, tmp_path)
    assert int(ds.n_diverged.sel(eta=100.0).sum()) > 0
    dead = ds.diverged.values
    at = ds.diverged_at.values
    assert np.all((at >= 0) == dead)
    np.testing.assert_array_equal(ds.n_diverged.values, dead.sum(axis=(-2, -1)))
    assert np.isnan(ds.loss.values[dead]).any(axis=-1).all(), "records after divergence are NaN"
    # records are taken at θ_t before update t: finite before the diverging update, NaN after it
    steps = ds.sizes["step"]
    for idx in np.ndindex(at.shape):
        end = at[idx] if at[idx] >= 0 else steps
        for name in ("loss", "accuracy", "distance"):
            rec = ds[name].values[idx]
            assert np.all(np.isfinite(rec[:end])), (name, idx)
            assert np.all(np.isnan(rec[end + 1:])), (name, idx)
    # Λ by hand: y = ln(mean over the finite perturbed members' distances), least squares over
    # every window [s, s + L] of the (shrunk) grid without a NaN, best R²; λ means skip nothing finite
    starts, lengths = range(0, 11, 5), range(20, 41, 5)
    dist = ds.distance.values[..., 1:, :]  # perturbed members only
    alive = np.isfinite(dist)
    count = alive.sum(axis=-2)
    mean = np.where(count > 0, np.where(alive, dist, 0.0).sum(axis=-2) / np.maximum(count, 1), np.nan)
    y = np.log(mean)
    lam = np.full(dead.shape[:-1], np.nan)

    def fit(series, s_, n_):  # (R², slope) over the points s_..s_+n_, None if one is not finite
        t = np.arange(s_, s_ + n_ + 1)
        if not np.all(np.isfinite(series[t])):
            return None
        return np.corrcoef(t, series[t])[0, 1] ** 2, np.polyfit(t, series[t], 1)[0]

    for idx in np.ndindex(lam.shape):
        best = max(f for f in (fit(y[idx], s_, n_) for s_, n_ in itertools.product(starts, lengths)) if f)
        # R² ≈ 1 for clean exponential growth, so near-ties may pick another window: check the one picked
        chosen = fit(y[idx], int(ds.window_start.values[idx]), int(ds.window_length.values[idx]))
        assert chosen is not None, "the chosen window holds no NaN"
        np.testing.assert_allclose(ds.r2.values[idx], chosen[0], rtol=1e-9)
        assert chosen[0] >= best[0] - 1e-9
        lam[idx] = chosen[1]
    assert (at[dead] < 50).any(), "some group dies inside the window grid, so NaN windows are skipped"
    np.testing.assert_allclose(ds.exponent.values, lam, rtol=1e-8)
    np.testing.assert_allclose(ds.lambda_all.values, lam.mean(axis=-1), rtol=1e-8)
    kept = (ds.r2.values > 0.9) & (lam > 0.05)
    np.testing.assert_array_equal(ds.kept.values, kept)
    np.testing.assert_allclose(ds.lambda_nmle.values, np.nanmean(np.where(kept, lam, np.nan), axis=-1), rtol=1e-8)
    assert (tmp_path / "figures" / "summary.png").stat().st_size > 0


def test_results_files_carry_a_format_version_and_bad_files_are_refused(tmp_path):
    cfg = compose_with("eta=[1.0]", "steps=60", "chunk=60", *SHRINK)
    run_sweep(cfg, tmp_path / "run")
    ds = results.load(tmp_path / "run")
    assert ds.attrs["format"] == results.FORMAT and ds.attrs["format_version"] == results.FORMAT_VERSION

    data = (tmp_path / "run" / "results.nc").read_bytes()
    (tmp_path / "truncated.nc").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable results file"):
        results.load(tmp_path / "truncated.nc")
    with h5py.File(tmp_path / "foreign.nc", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a gdchaos results file"):
        results.load(tmp_path / "foreign.nc")
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "nothing_here")


def test_ic_slices_give_the_whole_run(iris_task):
    kw = dict(eta=[1.0, 5.0], eps=[1e-6], n_ic=5, n_perturb=2, steps=20, key=jax.random.key(4),
              observe=iris_task.observe, progress=False)
    whole = ensemble.run(iris_task.tmap, iris_task.model.init, **kw)
    sliced = ensemble.run(iris_task.tmap, iris_task.model.init, ic_slice=2, **kw)  # 2 + 2 + 1
    for name in whole.records:
        np.testing.assert_allclose(sliced.records[name], whole.records[name], rtol=1e-8, atol=1e-12, err_msg=name)  # roundoff only
    np.testing.assert_array_equal(sliced.diverged_at, whole.diverged_at)
