"""gdchaos: training of neural networks as a dynamical system, in JAX.

Training maps are pure ``(init, step)`` pairs; ensembles over learning rate η,
perturbation size ε, initial conditions and perturbed members run as one vmapped,
scanned program; finite network Lyapunov exponents, ρ and training times come out
as labelled arrays. Around them: tangent-space Lyapunov spectra, Hessian curvature
and the edge of stability, toy gradient maps, loss time-series tests, weight-level
diagnostics and the edge-of-chaos phase diagram.

The package is layered; each folder depends only on the ones above it in this list:

* ``core``: training maps, models, losses, data, perturbations, precision, tree utilities;
* ``engine``: the vmapped ensemble program, device placement, checkpoints;
* ``analyses``: Lyapunov exponents, curvature and stability, and the other measurements;
* ``figures``: every figure;
* ``experiments``: tasks, the analysis and optimizer registries, results Datasets;
* ``cli``: Hydra plumbing for the apps ``gdchaos.sweep``, ``toymap``, ``phase``,
  ``intermittency``, ``minima`` (the top-level modules).

Importing gdchaos loads JAX, optax and flax, nothing heavier: ``experiments``,
``results`` (xarray, pandas) and ``timeseries`` (scipy) load on first use of them or of a
name they export, and matplotlib loads only when a figure is drawn. Importing gdchaos
changes no global state (no matplotlib backend, no JAX flags).
"""

import importlib

from gdchaos.analyses import curvature, directions, edge_of_chaos, lyapunov, regularity, toymaps, training_time, weights
from gdchaos.analyses.curvature import cgd, stability
from gdchaos.core import data, losses, maps, models, perturb
from gdchaos.engine import checkpoint, ensemble, programs
from gdchaos import figures
from gdchaos.analyses.curvature.cgd import cgd_map, cgd_optimizer
from gdchaos.analyses.curvature import (
    curvature_info,
    hessian_density,
    hutchinson_trace,
    hvp,
    run_sharpness,
    sharpness,
    subspace_overlap,
    top_hessian_eigenpairs,
)
from gdchaos.analyses.directions import perturb_along, strategy_distances
from gdchaos.analyses.edge_of_chaos import chaos_boundary, compare_edges, locate_edge, mean_field, separation_heatmap, track_training
from gdchaos.analyses.regularity import check_semigroup, minimum_regularity
from gdchaos.analyses.curvature.stability import minimum_stability, sgd_stability
from gdchaos.analyses.toymaps import lyapunov_vs_eta, orbit_diagram
from gdchaos.analyses.weights import ablation_importance, displacement_vs_path, post_learning, regime_gallery
from gdchaos.engine.ensemble import EnsembleResult
from gdchaos.core.errors import ConfigError, DatasetUnavailableError, PrecisionError
from gdchaos.analyses.lyapunov import (
    FiniteExponents,
    best_window_fit,
    finite_exponents,
    kaplan_yorke,
    local_exponents,
    lyapunov_spectrum,
    run_tangent,
    tangent_map,
)
from gdchaos.core.maps import StepInfo, TrainingMap, TrainState, from_optax, gd, momentum, sgd
from gdchaos.core.models import Model, cnn, mlp
from gdchaos.core.tree import count_params
from gdchaos.core.precision import enable_float64, provenance, require_precision
from gdchaos.experiments.task import Task, build_task
from gdchaos.analyses.training_time import first_passage

__version__ = "0.1.0"

_LAZY_MODULES = {"results": "gdchaos.experiments.results", "timeseries": "gdchaos.analyses.timeseries"}
_LAZY_NAMES = {
    "onset_search": "analyses.onset",
    "OnsetResult": "analyses.onset",
    "RhoPoints": "analyses.onset",
    "FiniteRho": "analyses.onset",
    "finite_rho": "analyses.onset",
    "lr_range_test": "analyses.onset",
    "RangeTest": "analyses.onset",
    "validate_tau": "analyses.onset",
    "TauValidation": "analyses.onset",
    "wilson_interval": "analyses.onset",
    "uniform_grid_points": "analyses.onset",

    "Analysis": "experiments.registry",
    "register_analysis": "experiments.registry",
    "register_optimizer": "experiments.optimizers",
    "add_window_matched_tangent": "experiments.both",
    "finite_sweep": "experiments.finite",
    "sharpness_sweep": "experiments.sharpness",
    "tangent_sweep": "experiments.tangent",
    "detect_laminar": "analyses.intermittency",
    "autocorrelation": "analyses.timeseries",
    "kantz": "analyses.timeseries",
    "surrogate_band": "analyses.timeseries",
}


def __getattr__(name: str):
    """Load the heavy submodules (and the names they export) on first use (PEP 562)."""
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"gdchaos.{_LAZY_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gdchaos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


__all__ = [
    "uniform_grid_points",
    "wilson_interval",
    "TauValidation",
    "validate_tau",
    "RangeTest",
    "lr_range_test",
    "finite_rho",
    "FiniteRho",
    "RhoPoints",
    "OnsetResult",
    "onset_search",
    "register_optimizer",
    "register_analysis",
    "Analysis",
    "ConfigError",
    "DatasetUnavailableError",
    "EnsembleResult",
    "FiniteExponents",
    "Model",
    "PrecisionError",
    "StepInfo",
    "Task",
    "TrainState",
    "TrainingMap",
    "ablation_importance",
    "add_window_matched_tangent",
    "autocorrelation",
    "detect_laminar",
    "best_window_fit",
    "build_task",
    "cgd",
    "cgd_map",
    "cgd_optimizer",
    "chaos_boundary",
    "compare_edges",
    "check_semigroup",
    "checkpoint",
    "cnn",
    "count_params",
    "curvature",
    "curvature_info",
    "data",
    "directions",
    "displacement_vs_path",
    "edge_of_chaos",
    "enable_float64",
    "ensemble",
    "finite_exponents",
    "locate_edge",
    "minimum_regularity",
    "figures",
    "finite_sweep",
    "first_passage",
    "from_optax",
    "gd",
    "hessian_density",
    "hutchinson_trace",
    "hvp",
    "kantz",
    "kaplan_yorke",
    "local_exponents",
    "losses",
    "lyapunov",
    "lyapunov_spectrum",
    "lyapunov_vs_eta",
    "maps",
    "mean_field",
    "minimum_stability",
    "mlp",
    "models",
    "momentum",
    "orbit_diagram",
    "perturb",
    "perturb_along",
    "programs",
    "regularity",
    "post_learning",
    "provenance",
    "regime_gallery",
    "require_precision",
    "results",
    "run_sharpness",
    "run_tangent",
    "separation_heatmap",
    "sgd",
    "sgd_stability",
    "sharpness",
    "sharpness_sweep",
    "stability",
    "strategy_distances",
    "subspace_overlap",
    "top_hessian_eigenpairs",
    "surrogate_band",
    "tangent_map",
    "tangent_sweep",
    "timeseries",
    "toymaps",
    "training_time",
    "track_training",
    "weights",
]
