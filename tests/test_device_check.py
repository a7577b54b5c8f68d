"""benchmarks/device_check.sh: stops at once without a GPU; its CPU dry run exercises every step.

The dry run writes into a copy of benchmarks/README.md, never the real one.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import jax
import pytest

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCH / "device_check.sh"
MARKER = "<!-- device_check.sh appends its results below -->"


def run_check(*args, timeout, **env):
    environ = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=environ)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="this machine has a GPU")
def test_without_a_gpu_it_stops_at_once_with_one_line_saying_what_to_do(tmp_path):
    out = run_check("--out", str(tmp_path / "work"), timeout=180)
    assert out.returncode == 2
    assert "device_check: error: no GPU: JAX runs on 'cpu'" in out.stderr
    assert "jax[cuda12]" in out.stderr and "--cpu-dry-run" in out.stderr
    assert not (tmp_path / "work" / "flagship_f64").exists()  # nothing ran


def test_unknown_argument_and_bad_peak_override_are_one_line_errors(tmp_path):
    out = run_check("--fast", timeout=60)
    assert out.returncode == 2 and "unknown argument '--fast'" in out.stderr
    out = run_check("--cpu-dry-run", "--out", str(tmp_path), timeout=180, GDCHAOS_GPU_PEAK="flops=1")
    assert out.returncode == 2 and "GDCHAOS_GPU_PEAK: unknown key 'flops'" in out.stderr


def test_cpu_dry_run_runs_every_step_and_appends_the_figures_to_a_readme_copy(tmp_path):
    real = BENCH / "README.md"
    before = real.read_text()
    assert MARKER in before
    copy = tmp_path / "README.md"
    shutil.copy(real, copy)
    out = run_check("--cpu-dry-run", "--readme", str(copy), "--out", str(tmp_path / "work"), timeout=600,
                    GDCHAOS_GPU_PEAK="bw=25")
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert real.read_text() == before  # the real README is untouched
    text = copy.read_text()
    head, block = text.split(MARKER)
    assert head == before.split(MARKER)[0]
    assert "### Accelerator check: CPU dry run" in block
    assert "flagship finite-ε sweep, float64: 20×1×2×6×60 (η×ε×ic×member×step) | 14,400 member-steps" in block
    assert "tangent sweep, float32, k = 2: 20×2×60" in block
    assert "throughput --quick: digits 64-64-10 tanh, float32" in block
    assert "× the sequential per-step loop" in block and "GFLOP/s (analytic count)" in block
    assert "of the peak 25 GB/s" in block and "overridden by GDCHAOS_GPU_PEAK=bw=25" in block
    assert "peak device memory" in block and "dry run, not run:" in block and "tests collected" in block
    assert "<summary>throughput.py output</summary>" in block
    for step in ("tests:", "flagship_f64:", "tangent_f32:", "throughput:", "report"):
        assert step in out.stdout, step
