"""Several processes: ``distributed=true`` with two local CPU processes (gloo collectives) on one machine.

The two processes split the η grid, each on 2 fake CPU devices, so this also runs the
sharded ensemble in the normal (one-device) test pass. Their results equal a one-process,
one-device run within the stated tolerance (test_sharding.LAYOUT_RTOL, README "Scaling
up"); process 0 alone writes the run directory; a run killed by SIGKILL resumes from the
per-process checkpoints; a finished directory is not recomputed; a coordinator that
cannot be reached is a one-line error within ``cluster.timeout``, not a hang.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from hydra import compose, initialize_config_dir

from gdchaos.experiments import results
from gdchaos.cli.app import config_dir
from gdchaos.sweep import run_sweep

from test_sharding import LAYOUT_RTOL, RESULTS_ATOL, RESULTS_RTOL

ARGS = ["eta=[0.5,1.0,5.0,8.0]", "eps=1e-8", "n_ic=2", "n_perturb=2", "steps=24", "chunk=2",
        "lyapunov.start_max=5", "lyapunov.length_min=10", "lyapunov.length_max=15", "progress=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(cache, devices: int = 2) -> dict:
    env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}  # jax warns about proxies
    return {**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            # the rerun after the kill compiles nothing again (the same executables: results unchanged)
            "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def start(rank, port, run_dir, cwd, *extra, num_processes=2, timeout=120):
    cwd.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "gdchaos.sweep", *ARGS, "distributed=true", f"cluster.coordinator=127.0.0.1:{port}",
           f"cluster.num_processes={num_processes}", f"cluster.process_id={rank}", f"cluster.timeout={timeout}",
           f"hydra.run.dir={run_dir}", *extra]
    out, err = open(cwd.parent / f"{cwd.name}.out", "w+"), open(cwd.parent / f"{cwd.name}.err", "w+")
    proc = subprocess.Popen(cmd, cwd=cwd, env=environment(cwd.parent / "xla_cache"), stdout=out, stderr=err, text=True)
    proc.logs = (out, err)
    return proc


def logs(proc) -> tuple[str, str]:
    out, err = proc.logs
    out.seek(0)
    err.seek(0)
    return out.read(), err.read()


def finish(*procs, timeout=240) -> list[tuple[str, str]]:
    for proc in procs:
        proc.wait(timeout=timeout)
    texts = [logs(proc) for proc in procs]
    for proc, (out, err) in zip(procs, texts):
        assert proc.returncode == 0, f"process exited {proc.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
    return texts


def compose_with(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("sweep", overrides=list(overrides))


def assert_results_agree(ds, reference):
    """Two runs on different layouts agree to the stated tolerance; integer and boolean fields exactly."""
    assert dict(ds.sizes) == dict(reference.sizes)
    for name in reference.coords:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)
    for name in reference.data_vars:
        a, b = ds[name].values, reference[name].values
        if b.dtype.kind == "f":
            rtol, atol = (LAYOUT_RTOL[name], 0.0) if name in LAYOUT_RTOL else (RESULTS_RTOL, RESULTS_ATOL)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_two_processes_split_the_grid_write_once_resume_after_sigkill_and_skip_a_finished_run(tmp_path):
    run_dir = tmp_path / "run"
    cwds = [tmp_path / "cwd0", tmp_path / "cwd1"]

    # 1. both processes killed (SIGKILL) once each has checkpointed a chunk of its share of the η grid
    port = free_port()
    procs = [start(rank, port, run_dir, cwds[rank]) for rank in (0, 1)]
    states = [run_dir / "checkpoint" / f"process_{rank}_of_2" / "finite" / "state.npz" for rank in (0, 1)]
    deadline = time.time() + 240
    while not all(s.exists() for s in states) and all(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.01)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait()
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2, [logs(p) for p in procs]
    assert not (run_dir / "results.nc").exists(), "the run finished before it could be killed"

    # 2. the same command again (a new coordinator port): each process resumes its own checkpoints
    port = free_port()
    (_, _), (out1, _) = finish(*[start(rank, port, run_dir, cwds[rank]) for rank in (0, 1)])
    log = (run_dir / "sweep.log").read_text()
    assert "resuming from" in log and "resuming from" in out1
    assert "process 0 of 2: η [0.5, 1.0]" in log and "process 1 of 2: η [5.0, 8.0]" in out1

    # exactly one process wrote the run directory; the other wrote nothing anywhere else either
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "figures", "results.nc", "summary.csv", "sweep.log"]
    assert "process 1 of 2" not in log
    assert "cluster.process_id=0" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert all(list(cwd.iterdir()) == [] for cwd in cwds)
    ds = results.load(run_dir)
    assert ds.attrs["process_count"] == 2 and ds.attrs["device_count"] == 4

    # 3. the results of one process on one device, within the stated tolerance
    reference = run_sweep(compose_with(*ARGS, "checkpoint=false"), tmp_path / "one")
    assert reference.attrs["device_count"] == 1
    assert_results_agree(ds, reference)
    assert np.all(ds.distance.values[..., 1:, -1] > 0)

    # 4. a finished directory: process 0 redraws the figures, nothing is recomputed or rewritten
    before = (run_dir / "results.nc").stat().st_mtime_ns
    port = free_port()
    finish(*[start(rank, port, run_dir, cwds[rank]) for rank in (0, 1)])
    assert "already holds finished results" in (run_dir / "sweep.log").read_text()
    assert (run_dir / "results.nc").stat().st_mtime_ns == before


def test_unreachable_coordinator_missing_process_and_other_config_are_one_line_errors(tmp_path):
    nobody = free_port()  # nothing listens there
    t0 = time.time()
    lonely = start(1, nobody, tmp_path / "run1", tmp_path / "cwd1", timeout=3)  # process 1: no coordinator
    alone = start(0, free_port(), tmp_path / "run0", tmp_path / "cwd0", timeout=3)  # process 0: process 1 never comes
    port = free_port()  # two processes, two configs
    mixed = [start(0, port, tmp_path / "run2", tmp_path / "cwd2"), start(1, port, tmp_path / "run2", tmp_path / "cwd3", "n_ic=3")]
    for proc in (lonely, alone, *mixed):
        proc.wait(timeout=120)
    elapsed = time.time() - t0
    other = "distributed: process(es) [1] run another config than process 0"
    for proc, expected in ((lonely, f"process 1 cannot reach the coordinator 127.0.0.1:{nobody} within 3 s"),
                           (alone, "process 0 waited 3 s (cluster.timeout)"), (mixed[0], other), (mixed[1], other)):
        out, err = logs(proc)
        assert proc.returncode == 2, (out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("gdchaos.sweep: error: distributed: "), err
        assert expected in lines[0], lines[0]
    assert elapsed < 60, elapsed  # 3 s and the start-up, not jax's 5-minute default
    assert not any((tmp_path / f"run{i}").exists() for i in range(3))  # refused before Hydra made a run directory
