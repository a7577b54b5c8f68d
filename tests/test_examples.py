"""The scripts in examples/ run as documented."""

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_compose_api_example_runs_and_finds_chaos_at_large_eta():
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "compose_api.py")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("eta=")]
    assert len(lines) == 3
    rho_small, rho_large = float(lines[0].split("rho=")[1]), float(lines[-1].split("rho=")[1])
    assert rho_small == 0.0
    assert rho_large > 0.5


def test_colab_tpu_example_falls_back_to_cpu_and_shows_the_float64_guard(tmp_path):
    import os

    env = {**os.environ, "GDCHAOS_QUICK": "1", "GDCHAOS_OUT": str(tmp_path / "out")}
    out = subprocess.run([sys.executable, str(EXAMPLES / "colab_tpu.py")], capture_output=True,
                         text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "No TPU found" in out.stdout and "refused: eps=1e-08 is below what float32 resolves" in out.stdout
    assert (tmp_path / "out" / "tangent.png").exists()
