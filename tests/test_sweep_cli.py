"""The Hydra entry point: override rewriting, config composition, validation, end to end."""

import pathlib
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from conftest import TINY_SWEEP

from gdchaos.experiments import results
from gdchaos.core.errors import ConfigError
from gdchaos.cli.app import config_dir
from gdchaos.cli.overrides import expand_range, vectorize_overrides
from gdchaos.sweep import validate

CONF = pathlib.Path(config_dir())
SHRINK = TINY_SWEEP


def test_expand_range_follows_python_semantics():
    assert expand_range(0.01, 20) == [round(0.01 + i, 2) for i in range(20)]
    assert expand_range(0.01, 0.05, 0.01) == [0.01, 0.02, 0.03, 0.04]
    assert expand_range(1, 0) == []
    with pytest.raises(ConfigError):
        expand_range(0, 1, 0)


def test_vectorized_keys_become_lists_and_shape_keys_become_multirun():
    assert vectorize_overrides(["eta=range(0.01,3)"]) == ["eta=[0.01,1.01,2.01]"]
    assert vectorize_overrides(["eta=0.1,1,5", "n_ic=3"]) == ["eta=[0.1,1.0,5.0]", "n_ic=3"]
    assert vectorize_overrides(["eta=[1,2]"]) == ["eta=[1,2]"]
    assert vectorize_overrides(["data=iris,digits", "eps=1e-8,1e-6"]) == [
        "--multirun",
        "data=iris,digits",
        "eps=[1e-08,1e-06]",
    ]
    assert vectorize_overrides(["-m", "data=iris,digits"]) == ["-m", "data=iris,digits"]


def group_options():
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name != "experiment"):
        for option in sorted(group.glob("*.yaml")):
            yield f"{group.name}={option.stem}"


def experiments():
    return sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("override", list(group_options()) + [f"experiment={e}" for e in experiments()])
def test_every_config_composes_and_validates(override):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("sweep", overrides=[override])
    validate(cfg)
    assert cfg.eta and cfg.n_ic >= 1


def compose_with(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("sweep", overrides=list(overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("eps=-1e-8", "eps must be finite and > 0"),
        ("eta=[]", "eta grid is empty"),
        ("eta=[0.1,-1]", "learning rates must be finite and > 0"),
        ("n_perturb=0", "n_perturb must be an integer >= 1"),
        ("model.activation=swish", "unknown model.activation"),
        ("steps=100", "raise steps to >= 201"),
    ],
)
def test_bad_inputs_are_config_errors_that_say_the_fix(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_with(override))


def test_unknown_analysis_is_a_config_error_listing_the_options():
    from gdchaos.sweep import precheck

    with pytest.raises(ConfigError, match=r"Could not find 'analysis/magic'.*finite"):
        precheck(["analysis=magic"])


def run_cli(args, tmp_path, timeout=240):
    cmd = [sys.executable, "-m", "gdchaos.sweep", *args, f"hydra.run.dir={tmp_path}/run"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def test_end_to_end_run_writes_results_and_figures(tmp_path):
    out = run_cli(["eta=0.5,5", "eps=1e-8,1e-6", *SHRINK], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    for name in ("results.nc", "summary.csv", "figures/summary.png", "figures/distance.png",
                 "figures/loss.png", "figures/lambda_hist.png"):
        assert (run / name).stat().st_size > 0, name
    ds = results.load(run)
    assert dict(ds.sizes) == {"eta": 2, "eps": 2, "ic": 2, "member": 3, "step": 60}
    assert ds.attrs["dtype"] == "float64" and ds.attrs["backend"] == "cpu"
    assert ds.attrs["device_count"] >= 1 and "version_jax" in ds.attrs
    assert "n_ic: 2" in ds.attrs["config"]


def test_bad_input_exits_2_with_one_line_error(tmp_path):
    out = run_cli(["eps=-1e-8"], tmp_path, timeout=120)
    assert out.returncode == 2
    assert "error: eps must be finite and > 0" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_dataset_is_a_one_line_error(tmp_path):
    out = run_cli(["data.name=not_a_dataset", *SHRINK], tmp_path, timeout=120)
    assert out.returncode == 2
    assert "not_a_dataset" in out.stderr and "Traceback" not in out.stderr


def test_non_numeric_eta_is_a_config_error():
    with pytest.raises(ConfigError, match="eta values must be numbers"):
        vectorize_overrides(["eta=fast,slow"])
    with pytest.raises(ConfigError, match="eta values must be numbers"):
        validate(compose_with("eta=fast"))


@pytest.mark.parametrize("value", ["-1e-9", "nan", "abc"])
def test_bad_flat_tolerance_is_a_config_error(value):
    with pytest.raises(ConfigError, match="sharpness.flat_rtol must be null"):
        validate(compose_with("analysis=sharpness", f"sharpness.flat_rtol={value}"))


def test_unknown_experiment_is_an_error_not_the_default_run():
    from gdchaos.sweep import precheck

    with pytest.raises(ConfigError, match="unknown experiment 'jimenez2026_irs'; choose one of .*'jimenez2026_iris'"):
        precheck(["experiment=jimenez2026_irs"])
    assert precheck(["experiment=jimenez2026_iris"]).lyapunov.estimator == "ratio"


def test_an_unknown_name_inside_an_experiment_list_is_named():
    from gdchaos.cli.app import check_optional_groups

    check_optional_groups(["experiment=jimenez2026_iris,danovski2024_iris"])
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        check_optional_groups(["experiment=jimenez2026_iris,nope"])
