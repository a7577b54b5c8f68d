"""Importing and using gdchaos leaves the user's process alone.

- ``import gdchaos`` loads no matplotlib (so selects no backend), no tensorflow(-datasets)
  and none of the heavy optional stacks that JAX, optax and flax do not load themselves
  (xarray, pandas, scipy: they load on first use). Import time itself is measured in
  ``benchmarks/README.md``, not asserted here.
- Drawing figures never changes the matplotlib backend the user chose; the files the
  sweep writes (:func:`gdchaos.experiments.registry.save_figures`) are drawn without pyplot at all.
- Files are written with the user's umask, like any new file (not mkstemp's 0o600).
- The default sweep states its precision in the config and runs without a precision
  warning; ``precision=auto`` still says when it switches to float64.

Each check of import-time state runs in a fresh interpreter: the test session itself
has long since imported everything.
"""

import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import pytest
from hydra import compose, initialize_config_dir

from gdchaos.cli.app import config_dir
from gdchaos.core.files import atomic_write

HEAVY = ["matplotlib", "matplotlib.pyplot", "tensorflow", "tensorflow_datasets", "xarray", "pandas", "scipy"]


def python(code: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (outside the repository, so the installed gdchaos is imported)."""
    environ = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=timeout, env={**environ, **(env or {})}, cwd=pathlib.Path.home())
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def loaded_after(statement: str) -> set[str]:
    out = python(f"""
        import json, sys
        {statement}
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_loads_no_plotting_tfds_or_heavy_optional_stacks():
    baseline = loaded_after("import jax, optax, flax")  # whatever these load anyway is not gdchaos's cost
    extra = loaded_after("import gdchaos") - baseline
    assert not extra, f"import gdchaos loaded {sorted(extra)}; import them inside the functions that need them"


def test_lazy_submodules_and_names_still_resolve():
    out = python("""
        import sys
        import gdchaos
        assert "gdchaos.experiments.finite" not in sys.modules and "gdchaos.experiments.results" not in sys.modules
        assert not gdchaos.core.precision.float64_enabled()  # no JAX flag flipped at import
        from gdchaos import finite_sweep, kantz, results
        assert finite_sweep is gdchaos.experiments.finite.finite_sweep and kantz is gdchaos.analyses.timeseries.kantz
        assert {"results", "tangent_sweep", "figures"} <= set(dir(gdchaos))
        from gdchaos import lyapunov, curvature, maps, ensemble  # the documented module imports
        assert all(hasattr(gdchaos, name) for name in gdchaos.__all__)
        print("ok")
    """)
    assert out.stdout.strip().endswith("ok")


DRAW = """
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(0)
    ds = xr.Dataset(  # a tiny tangent-method results Dataset: tangent.png and ftle.png
        {
            "tangent_exponents": (("eta", "ic", "index"), rng.normal(size=(2, 2, 2))),
            "lambda_max_tangent": (("eta",), rng.normal(size=2)),
            "lambda_max_tangent_std": (("eta",), rng.random(2)),
            "tangent_spectrum": (("eta", "index"), rng.normal(size=(2, 2))),
            "tangent_ftle": (("eta", "ic", "step"), rng.normal(size=(2, 2, 10))),
        },
        coords={"eta": [0.5, 4.0], "ic": [0, 1], "index": [0, 1], "step": np.arange(10)},
    )
"""


@pytest.mark.parametrize("how", ["use", "env"])
def test_backend_is_untouched_by_import_and_by_drawing(how, tmp_path):
    select = "import matplotlib; matplotlib.use('svg')" if how == "use" else "import matplotlib"
    out = python(f"""
        import sys
        {select}
        import gdchaos
        import gdchaos.experiments.registry
        import gdchaos.figures.base
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        {textwrap.indent(textwrap.dedent(DRAW), " " * 8).strip()}
        paths = gdchaos.experiments.registry.save_figures(ds, {str(tmp_path / "files")!r})
        assert sorted(p.name for p in paths) == ["ftle.png", "tangent.png"], paths
        assert "matplotlib.pyplot" not in sys.modules, "save_figures loaded pyplot"
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()

        # a figure returned to the user is a pyplot figure under the user's backend
        from gdchaos.figures import diagnostics as diagnostic_plots
        fig = diagnostic_plots.plot_acf(0.9 ** np.arange(11))
        import matplotlib.pyplot as plt
        assert plt.get_fignums() == [fig.number]
        gdchaos.figures.base.write_figures({{"acf.png": fig}}, {str(tmp_path / "files")!r})
        assert plt.get_fignums() == [], "write_figures left the figure open"
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        print("ok")
    """, env={"MPLBACKEND": "svg"} if how == "env" else None)
    assert out.stdout.strip().endswith("ok")
    assert (tmp_path / "files" / "tangent.png").stat().st_size > 0
    assert (tmp_path / "files" / "acf.png").read_bytes()[:4] == b"\x89PNG"


def test_writing_figures_resolves_no_backend(tmp_path):
    """With no backend chosen, drawing the sweep's figures leaves matplotlib's choice open."""
    out = python(f"""
        import matplotlib
        import gdchaos
        import gdchaos.experiments.registry
        {textwrap.indent(textwrap.dedent(DRAW), " " * 8).strip()}
        gdchaos.experiments.registry.save_figures(ds, {str(tmp_path)!r})
        print(matplotlib.rcParams._get_backend_or_none())
    """)
    assert out.stdout.strip().splitlines()[-1] == "None"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gives_files_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = tmp_path / "results.nc"
        atomic_write(path, lambda f: f.write(b"first"))
        assert stat.S_IMODE(path.stat().st_mode) == mode
        atomic_write(path, lambda f: f.write(b"second"))  # replacing keeps the rule
        assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == b"second"
        assert [p.name for p in tmp_path.iterdir()] == ["results.nc"]  # no temporary file left behind
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- sweep precision


def precision_of(*overrides: str) -> str:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("sweep", overrides=list(overrides)).precision


def test_default_precision_is_explicit_per_method():
    assert precision_of() == "float64"  # finite-ε at the default ε = 1e-8
    assert precision_of("analysis=both") == "float64"
    assert precision_of("analysis=tangent") == "float32"  # exact ε → 0: float32 suffices, and runs on TPU
    assert precision_of("analysis=sharpness") == "float32"
    assert precision_of("analysis=tangent", "precision=float64") == "float64"  # the user's choice wins
    assert precision_of("precision=auto") == "auto"


TINY = ["eta=0.5", "n_ic=2", "n_perturb=1", "steps=60", "lyapunov.start_max=10", "lyapunov.length_min=20",
        "lyapunov.length_max=40", "progress=false", "cpu_devices=1"]


def sweep(tmp_path, *args: str) -> tuple[str, pathlib.Path]:
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "gdchaos.sweep", *TINY, *args, f"hydra.run.dir={run}"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, preexec_fn=lambda: os.umask(0o022))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr, run


def precision_warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if "WARNING" in line and ("float" in line or "eps" in line)]


def test_default_sweep_runs_in_float64_without_a_warning(tmp_path):
    from gdchaos.experiments import results

    output, run = sweep(tmp_path)
    assert precision_warnings(output) == [], output[-3000:]
    ds = results.load(run)
    assert ds.attrs["dtype"] == "float64"
    for name in ("results.nc", "summary.csv", "figures/summary.png"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name


def test_precision_auto_still_says_it_switches_to_float64(tmp_path):
    output, _ = sweep(tmp_path, "precision=auto", "eps=1e-8")
    assert any("below float32 resolution" in line for line in precision_warnings(output)), output[-3000:]
