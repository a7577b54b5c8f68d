"""Every conf/experiment/*.yaml composes, validates and runs shrunk end to end.

TFDS datasets are replaced by ``tfds.testing.mock_data`` (offline); the converted mock
arrays go to one cache directory for the whole module, so experiments on the same
dataset convert it once. Runs are tiny: 2 η (the experiment's first and last), 2 ICs,
2 perturbations, 51 updates, a 3×3 fit-window grid, TFDS images resized to 8×8 unless the
experiment sets a size. Figures are drawn for one experiment only (tests/test_sweep_cli.py
covers them); the others check that the figure step is reached with the results.
"""

import pathlib
import re

import pytest
import yaml
from hydra import compose, initialize_config_dir

from gdchaos.cli.app import config_dir
from gdchaos.sweep import run_sweep, validate

CONF = pathlib.Path(config_dir())
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
BUILTIN_DATA = ("iris", "digits", "synthetic")
DRAW_FIGURES = "herrmann2022_digits"
SHRINK = [
    "n_ic=2",
    "n_perturb=2",
    "steps=51",
    "chunk=51",
    "lyapunov.start_max=10",
    "lyapunov.length_min=20",
    "lyapunov.length_max=40",
    "lyapunov.length_step=10",
    "lyapunov.k=2",
    "progress=false",
]


def compose_with(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("sweep", overrides=list(overrides))


def shrunk(experiment: str):
    full = compose_with(f"experiment={experiment}")
    eta = [float(full.eta[0]), float(full.eta[-1])]
    extra = [f"eta=[{eta[0]!r},{eta[1]!r}]"]
    if full.optimizer.batch_size is not None:
        extra.append("optimizer.batch_size=8")  # mock splits hold 16 records
    if full.data.name not in BUILTIN_DATA and not full.data.get("resize"):
        extra.append("data.resize=[8,8]")
    return full, compose_with(f"experiment={experiment}", *SHRINK, *extra)


@pytest.fixture(scope="module")
def mock_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds_cache")


def test_there_is_an_experiment_per_seed_setup():
    expected = {
        "danovski2024_iris", "jimenez2026_iris", "jimenez2026_mnist_tanh", "jimenez2026_mnist_sigmoid",
        "jimenez2026_mnist_relu", "jimenez2026_mnist_deep", "jimenez2026_mnist_l2_1e-3",
        "jimenez2026_mnist_l2_1e-5", "jimenez2026_mnist_cnn", "jimenez2026_cifar10",
        "edge_of_chaos_fashion", "herrmann2022_digits", "herrmann2022_fashion16",
    }
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_header_states_its_command(experiment):
    text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert re.search(rf"^#\s+python -m gdchaos\.sweep experiment={re.escape(experiment)}\s*$", text, re.M), experiment
    assert yaml.safe_load(text) is not None


def test_mnist_experiments_use_the_reference_eta_grid():
    grid = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20]
    for name in [e for e in EXPERIMENTS if e.startswith("jimenez2026_mnist") or e == "jimenez2026_cifar10"]:
        cfg = compose_with(f"experiment={name}")
        assert list(cfg.eta) == grid, name
        assert cfg.optimizer.batch_size is None and cfg.analysis == "finite", name  # full-batch GD


def test_paper_specific_settings():
    cnn = compose_with("experiment=jimenez2026_mnist_cnn")
    assert cnn.model.kind == "cnn" and list(cnn.model.channels) == [8, 16] and cnn.model.weight_std == 0.01
    assert cnn.accuracy_target == 0.8 and cnn.n_ic == 40 and cnn.steps == 2000
    assert compose_with("experiment=jimenez2026_mnist_deep").model.hidden == [32, 32]
    assert compose_with("experiment=jimenez2026_mnist_l2_1e-3").optimizer.l2 == 1e-3
    assert compose_with("experiment=jimenez2026_mnist_l2_1e-5").optimizer.l2 == 1e-5
    assert compose_with("experiment=jimenez2026_mnist_relu").model.activation == "relu"
    cifar = compose_with("experiment=jimenez2026_cifar10")
    assert cifar.data.name == "cifar10" and list(cifar.model.hidden) == [256] and cifar.accuracy_target == 0.3
    eoc = compose_with("experiment=edge_of_chaos_fashion")
    assert eoc.model.use_bias is False and eoc.model.output_bias is True and list(eoc.model.hidden) == ["input"]
    assert eoc.optimizer.batch_size == 32 and eoc.optimizer.kwargs.momentum == 0.5
    fashion16 = compose_with("experiment=herrmann2022_fashion16")
    assert list(fashion16.data.resize) == [16, 16] and fashion16.analysis == "tangent"
    assert fashion16.precision == "float32" and fashion16.model.init == "torch"
    # command-line choices still win over an experiment's defaults
    assert compose_with("experiment=jimenez2026_mnist_cnn", "data=digits").data.name == "digits"


@pytest.mark.parametrize("launcher, target", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
])
def test_launcher_configs_compose(launcher, target):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("sweep", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_shrunk(experiment, tmp_path, mock_cache, monkeypatch):
    from gdchaos.experiments import registry

    full, cfg = shrunk(experiment)
    validate(full)
    validate(cfg)
    monkeypatch.setenv("GDCHAOS_CACHE_DIR", str(mock_cache))
    drawn = []
    if experiment != DRAW_FIGURES:
        monkeypatch.setattr(registry, "save_figures", lambda ds, out, **kw: drawn.append((ds, out)))
    if cfg.data.name in BUILTIN_DATA:
        ds = run_sweep(cfg, tmp_path)
    else:
        tfds = pytest.importorskip("tensorflow_datasets")
        with tfds.testing.mock_data(num_examples=16):
            ds = run_sweep(cfg, tmp_path)
    assert (tmp_path / "results.nc").stat().st_size > 0
    assert (tmp_path / "summary.csv").stat().st_size > 0
    assert ds.sizes["eta"] == 2 and ds.sizes["ic"] == 2
    assert ds.attrs["task"].startswith(f"{cfg.data.name}/")
    if cfg.analysis in ("finite", "both"):  # the configured estimator and perturbation reach the run
        assert ds.attrs["lyapunov_estimator"] == cfg.lyapunov.estimator
        assert ds.attrs["include_bias"] == int(cfg.perturbation.include_bias)
    if cfg.model.kind == "cnn":
        assert "/cnn-8-16-relu/" in ds.attrs["task"]
    if experiment == DRAW_FIGURES:
        assert (tmp_path / "figures" / "tangent.png").stat().st_size > 0  # analysis=tangent figures
    else:
        assert len(drawn) == 1 and drawn[0][0] is ds and str(drawn[0][1]).startswith(str(tmp_path))


PAPER_EXPERIMENTS = [e for e in EXPERIMENTS if e.startswith(("jimenez2026_", "danovski2024_"))]


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_paper_experiments_follow_the_papers_text(experiment):
    """Eq. 3 (ratio from t = 0) and every trainable parameter perturbed, biases included, each said in the file."""
    cfg = compose_with(f"experiment={experiment}")
    assert cfg.lyapunov.estimator == "ratio", experiment
    assert cfg.perturbation.include_bias is True, experiment
    validate(cfg)
    own = yaml.safe_load((CONF / "experiment" / f"{experiment}.yaml").read_text())
    if "lyapunov" in own:  # the file that sets them quotes the paper next to the setting
        text = (CONF / "experiment" / f"{experiment}.yaml").read_text()
        assert re.search(r"estimator: ratio\s+# the paper's Eq\. 3", text)
        assert re.search(r"include_bias: true\s+# \"", text)


def test_the_default_keeps_the_window_fit_and_weights_only():
    cfg = compose_with()
    assert cfg.lyapunov.estimator == "window" and cfg.perturbation.include_bias is False
    assert len(PAPER_EXPERIMENTS) >= 10
