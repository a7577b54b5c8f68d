"""gdchaos: training of neural networks as a dynamical system, in JAX.

Training maps are pure ``(init, step)`` pairs; ensembles over learning rate η,
perturbation size ε, initial conditions and perturbed members run as one vmapped,
scanned program; finite network Lyapunov exponents, ρ and training times come out
as labelled arrays.
"""

from gdchaos import data, ensemble, losses, lyapunov, maps, models, perturb, plots, results
from gdchaos.ensemble import EnsembleResult
from gdchaos.errors import ConfigError, DatasetUnavailableError, PrecisionError
from gdchaos.experiment import add_window_matched_tangent, finite_sweep, tangent_sweep
from gdchaos.lyapunov import (
    FiniteExponents,
    best_window_fit,
    finite_exponents,
    kaplan_yorke,
    local_exponents,
    lyapunov_spectrum,
    run_tangent,
    tangent_map,
)
from gdchaos.maps import StepInfo, TrainingMap, TrainState, from_optax, gd, momentum, sgd
from gdchaos.models import Model, mlp
from gdchaos.numerics import enable_float64, provenance, require_precision
from gdchaos.task import Task, build_task
from gdchaos.training_time import first_passage

__version__ = "0.1.0"

__all__ = [
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
    "add_window_matched_tangent",
    "best_window_fit",
    "build_task",
    "data",
    "enable_float64",
    "ensemble",
    "finite_exponents",
    "finite_sweep",
    "first_passage",
    "from_optax",
    "gd",
    "kaplan_yorke",
    "local_exponents",
    "losses",
    "lyapunov",
    "lyapunov_spectrum",
    "maps",
    "mlp",
    "models",
    "momentum",
    "perturb",
    "plots",
    "provenance",
    "require_precision",
    "results",
    "run_tangent",
    "sgd",
    "tangent_map",
    "tangent_sweep",
]
