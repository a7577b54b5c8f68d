"""Analyses as plug-ins: one registry the sweep app runs from.

An :class:`Analysis` declares everything the sweep needs to run it:

* its name, which is also its config group option (``analysis=NAME`` selects
  ``conf/analysis/NAME.yaml``, or the ``config`` given here, which is stored in Hydra's
  ConfigStore under the group ``analysis``);
* ``run(task, grid, cfg) -> xarray.Dataset``: the measurement on a task over an η (and ε) grid;
* ``validate(cfg)``: one-line :class:`~gdchaos.core.errors.ConfigError` for bad settings,
  before any computation;
* ``summary``: the per-η (or per-(η, ε)) variables that enter ``summary.csv``;
* ``figures(ds, etas) -> {file name: Figure}``: the figures drawn into ``figures/``.

Adding an analysis is one module that calls :func:`register_analysis` plus one config file (or a
``config`` mapping): nothing else changes. The built-in ones live in
``gdchaos.experiments.<name>`` (``finite``, ``tangent``, ``both``, ``sharpness``) and are
imported on first lookup; others are imported by the sweep's ``plugins=[module, ...]`` key.

Example:
    >>> import xarray as xr
    >>> def run(task, grid, cfg):
    ...     return xr.Dataset({"eta_squared": (("eta",), [e * e for e in grid.eta])}, coords={"eta": grid.eta})
    >>> analysis = register_analysis(Analysis("eta_squared", run, summary=("eta_squared",), config={"steps": 1}),
    ...                     overwrite=True)
    >>> get("eta_squared") is analysis
    True
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from gdchaos.core.errors import ConfigError, check
from gdchaos.figures.base import for_files, write_figures

__all__ = ["Analysis", "Grid", "analysis_names", "analysis_of", "get", "infer_analysis_name", "load_plugins", "register_analysis",
           "save_figures", "summary_columns"]

GROUP = "analysis"
"""The config group (and the results attribute) naming the analysis."""


@dataclass(frozen=True)
class Grid:
    """What every analysis runs over: the η (and ε) grid and the run's shared settings.

    ``checkpoint``: a directory for this analysis's chunk checkpoints, or None.
    ``attrs``: attributes every results Dataset carries (the resolved config, the analysis name).
    """
    eta: list[float]
    eps: list[float]
    n_ic: int
    steps: int
    seed: int = 0
    chunk: int = 100
    progress: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None


@dataclass(frozen=True)
class Analysis:
    """One sweep analysis; see the module docstring.

    ``uses_eps``: whether the analysis perturbs by ε (then ``precision=auto`` switches to
    float64 for ε below float32 resolution). ``config``: default settings (merged into the
    root config, like a ``# @package _global_`` file) when there is no ``conf/analysis/NAME.yaml``.
    """
    name: str
    run: Callable[..., Any]
    summary: Sequence[str] = ()
    figures: Callable[..., dict[str, Any]] | None = None
    validate: Callable[[Any], None] | None = None
    uses_eps: bool = False
    config: Mapping[str, Any] | None = None
    description: str = ""


_ANALYSES: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis, *, overwrite: bool = False) -> Analysis:
    """Add ``analysis`` to the registry (and its ``config`` to Hydra's ConfigStore); returns it.

    Registering a name twice is an error unless ``overwrite``.
    """
    check(analysis.name.isidentifier(), f"an analysis name must be an identifier; got {analysis.name!r}")
    check(overwrite or analysis.name not in _ANALYSES,
          f"an analysis named {analysis.name!r} is already registered; pass overwrite=True to replace it")
    check(analysis.config is None or analysis.name not in _config_files(),
          f"analysis {analysis.name!r} has a shipped config conf/analysis/{analysis.name}.yaml; a second one in "
          "config= would make which one Hydra composes ambiguous: drop config= or choose another name")
    _ANALYSES[analysis.name] = analysis
    if analysis.config is not None:
        from hydra.core.config_store import ConfigStore

        node = {GROUP: analysis.name, **dict(analysis.config)}
        ConfigStore.instance().store(group=GROUP, name=analysis.name, node=node, package="_global_")
    return analysis


def _config_files() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("gdchaos.conf").joinpath(GROUP).iterdir() if p.name.endswith(".yaml"))


def analysis_names() -> list[str]:
    """Every analysis that can be selected: registered ones and those with a shipped config file."""
    return sorted(set(_ANALYSES) | set(_config_files()))


def get(name: str) -> Analysis:
    """The analysis called ``name``; a built-in one is imported from ``gdchaos.experiments.<name>`` on first use."""
    if name not in _ANALYSES and isinstance(name, str) and name.isidentifier():
        module = f"gdchaos.experiments.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    if name not in _ANALYSES:
        raise ConfigError(f"unknown analysis {name!r}; choose one of {analysis_names()} "
                          "(an analysis of your own: plugins=[your.module] registers it)")
    return _ANALYSES[name]


def load_plugins(modules: Sequence[str] | None) -> None:
    """Import each module (dotted name) of the ``plugins`` list; importing registers its analyses and optimizers."""
    for module in modules or ():
        check(isinstance(module, str) and all(part.isidentifier() for part in module.split(".")),
              f"plugins must be a list of importable module names; got {module!r}")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"plugins: cannot import {module!r} ({err}); is it on PYTHONPATH?") from None


def infer_analysis_name(ds: Any) -> str | None:
    """The built-in analysis whose variables ``ds`` holds (for Datasets without an ``analysis`` attribute), or None."""
    has = lambda name: name in ds
    if has("distance") or has("exponent"):
        return "both" if has("tangent_exponents") else "finite"
    return "tangent" if has("tangent_exponents") else "sharpness" if has("sharpness") else None


def analysis_of(ds: Any) -> Analysis:
    """The analysis that made a results Dataset: its ``analysis`` attribute, else recognized by its variables."""
    name = ds.attrs.get(GROUP) or infer_analysis_name(ds)
    check(name is not None, "this Dataset names no analysis (no 'analysis' attribute) and holds no known variables")
    return get(str(name))


def summary_columns(ds: Any) -> list[str]:
    """The summary variables of ``ds``'s analysis that ``ds`` holds, in the analysis's order."""
    return [name for name in analysis_of(ds).summary if name in ds]


def save_figures(ds: Any, directory: str | Path, etas: Sequence[float] | None = None) -> list[Path]:
    """Draw the figures of ``ds``'s analysis into ``directory``; returns the paths written.

    Figures for files are built without pyplot (the backend is untouched).
    """


    analysis = analysis_of(ds)
    if analysis.figures is None:
        return []
    with np.errstate(over="ignore", invalid="ignore"), for_files():  # log axes over losses near overflow
        return write_figures(analysis.figures(ds, list(etas) if etas else None), directory)
