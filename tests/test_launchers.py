"""Hydra launchers that really launch: a 2-job shape sweep through joblib and through submitit's local executor.

Each launcher test runs the same two jobs (``model.hidden=[10],[8]``: a shape key, so
``gdchaos.sweep`` turns it into a multirun) and compares every job's ``results.nc``
with the same jobs run one after another by Hydra's default launcher (one process,
job 0 then job 1).

The comparison is **bitwise** (every data variable and coordinate equal, NaN where
NaN). A launcher only changes which process runs a job: each job composes the same
config, runs the same compiled program on the same device count (``cpu_devices=1``
in every run) with the same seed, and XLA:CPU is deterministic for a fixed program
and device count. Float roundoff differences appear only when the device count or
the block split changes, which is not the case here.

All runs share a persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``) to save
the compile time of the launched jobs (about 5 s each on 2 cores); an executable loaded
from the cache is the one the compiler produced for the same program, so this changes
no result, and a job whose program differed (other shapes, device count or dtype) would
miss the cache and compile its own.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_SWEEP

from gdchaos.experiments import results

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install 'gdchaos[launchers]'")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'gdchaos[launchers]'")

JOBS = "model.hidden=[10],[8]"  # two shapes: two Hydra jobs, each η-vectorized
TINY = [
    "eta=0.5,5",
    *TINY_SWEEP,
    "checkpoint=false",
    "cpu_devices=1",  # same device count in every process (and two jobs share 2 cores)
]


def multirun(sweep_dir: pathlib.Path, cache: pathlib.Path, *extra: str, timeout: int = 240) -> list[pathlib.Path]:
    """Run the 2-job sweep into ``sweep_dir``; return the job directories 0 and 1."""
    cmd = [sys.executable, "-m", "gdchaos.sweep", JOBS, *TINY, f"hydra.sweep.dir={sweep_dir}", *extra]
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=sweep_dir.parent, env=env)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    return [sweep_dir / str(job) for job in range(2)]


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    """A directory of this test session, shared by its pytest-xdist workers (the one above their base temps)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="module")
def one_after_another(shared_dir):
    """The two jobs run one after another (Hydra's BasicLauncher, one process).

    Run once per test session: the first worker to take the lock runs it for all.
    """
    import fcntl

    with open(shared_dir / "launchers_reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sweep = shared_dir / "launchers_reference" / "sweep"
        if not (sweep / "1" / results.RESULTS_FILE).exists():
            sweep.parent.mkdir(exist_ok=True)
            multirun(sweep, shared_dir / "launchers_jax_cache")
    return [sweep / str(job) for job in range(2)]


def assert_same_results(job_dir: pathlib.Path, reference_dir: pathlib.Path, hidden: int) -> None:
    import yaml

    got, want = results.load(job_dir), results.load(reference_dir)
    assert yaml.safe_load(got.attrs["config"])["model"]["hidden"] == [hidden]  # job k ran the k-th shape
    assert got.attrs["config"] == want.attrs["config"]
    assert dict(got.sizes) == dict(want.sizes) == {"eta": 2, "eps": 1, "ic": 2, "member": 3, "step": 60}
    assert set(got.data_vars) == set(want.data_vars)
    for name in [*want.data_vars, *want.coords]:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)  # bitwise, NaN == NaN
    assert np.isfinite(got.distance.values).all() and (got.exponent.sel(eta=5.0).values > 0).all()


def launcher_target(job_dir: pathlib.Path) -> str:
    import yaml

    return yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["launcher"]["_target_"]


def test_joblib_launcher_runs_two_jobs_equal_to_running_them_one_after_another(tmp_path, shared_dir, one_after_another):
    jobs = multirun(tmp_path / "sweep", shared_dir / "launchers_jax_cache", "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=2")
    for job, reference, hidden in zip(jobs, one_after_another, (10, 8)):
        assert launcher_target(job).endswith("JoblibLauncher")
        assert_same_results(job, reference, hidden)


def test_submitit_local_launcher_runs_two_jobs_equal_to_running_them_one_after_another(tmp_path, shared_dir, one_after_another):
    sweep = tmp_path / "sweep"
    jobs = multirun(sweep, shared_dir / "launchers_jax_cache", "hydra/launcher=submitit_local")
    for job, reference, hidden in zip(jobs, one_after_another, (10, 8)):
        assert launcher_target(job).endswith("submitit_launcher.LocalLauncher")
        assert_same_results(job, reference, hidden)
    # each job ran in its own submitit-controlled process, which left its logs and pickled result
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2
