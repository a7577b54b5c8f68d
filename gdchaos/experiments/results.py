"""Labelled results: build, save and load one run as an ``xarray.Dataset``.

A sweep is held with dimensions ``(eta, eps, ic, member, step)``:

    distance, loss, accuracy      (eta, eps, ic, member, step)   per-step records
    diverged, diverged_at         (eta, eps, ic, member)
    exponent, r2, window_start,
    window_length, kept, tau      (eta, eps, ic)                 per initial condition
    lambda_nmle, lambda_std, rho,
    n_kept, lambda_all, phase,
    tau_mean, tau_std,
    tau_mean_reached, tau_std_reached,
    n_reached, n_censored,
    n_diverged                    (eta, eps)                     summary
    lambda_nmle_window, rho_window,
    lambda_nmle_ratio, rho_ratio,
    median_window_start,
    median_saturation_time        (eta, eps)                     both estimators

The per-IC exponent and ``lambda_nmle``/``rho`` come from the configured estimator
(attribute ``lyapunov_estimator``: ``window`` or ``ratio``, see :mod:`gdchaos.analyses.lyapunov.finite`);
the ``_window``/``_ratio`` summaries always hold both. ``phase`` is ``chaotic`` (ρ > 0),
``λ≤0`` (no Λ kept: the paper's λ_nMLE ≤ 0 phase, where ``lambda_nmle`` stays NaN) or
``undefined``. ``tau_mean`` is the paper's ⟨τ⟩ over all ICs, an IC that never reached the
target censored at the number of updates run (then a lower bound); ``tau_mean_reached``
averages the ICs that reached it.

The tangent method adds ``tangent_*`` variables over ``(eta, ic, index | step)``
(see :func:`tangent_dataset`). Attributes record the dtype, backend, device count, library versions and the
resolved configuration (YAML).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from gdchaos.analyses.curvature.tracking import SharpnessResult
from gdchaos.analyses.lyapunov.finite import FiniteExponents, phase, summarize_exponents
from gdchaos.analyses.lyapunov.tangent_ensemble import TangentResult
from gdchaos.analyses.training_time import summarize_tau
from gdchaos.core.files import atomic_write
from gdchaos.core.precision import nan_mean, nan_std, provenance
from gdchaos.engine.ensemble import AXES, EnsembleResult
from gdchaos.experiments.registry import infer_analysis_name, summary_columns

RESULTS_FILE = "results.nc"
FORMAT = "gdchaos-results"
FORMAT_VERSION = 3
"""Written as the ``format`` and ``format_version`` attributes of every results file.

Version 3: the attribute ``analysis`` names the analysis that made the file (its figures
and summary columns come from the registry); versions 1 and 2 called it ``method``
(:func:`load` adds ``analysis``).

Version 2: ``tau_mean``/``tau_std`` are over all ICs (never-reached censored at T); version
1's reached-only ones are ``tau_mean_reached``/``tau_std_reached`` (:func:`load` renames them)."""
SUMMARY_FILE = "summary.csv"
SUMMARY_VARS = (
    "lambda_nmle",
    "lambda_std",
    "rho",
    "n_kept",
    "lambda_all",
    "phase",
    "tau_mean",
    "tau_std",
    "n_reached",
    "n_censored",
    "tau_mean_reached",
    "tau_std_reached",
    "n_diverged",
    "lambda_nmle_window",
    "rho_window",
    "lambda_nmle_ratio",
    "rho_ratio",
    "median_window_start",
    "median_saturation_time",
)
TANGENT_SUMMARY_VARS = ("lambda_max_tangent", "lambda_max_tangent_std")
SHARPNESS_SUMMARY_VARS = ("edge_of_stability", "sharpness_peak", "sharpness_final")
TAU_MEAN_DESCRIPTION = ("mean first update with test accuracy >= target over all ICs; an IC that never reached it "
                        "counts as the number of updates run (censored: a lower bound where n_censored > 0)")
TAU_REACHED_DESCRIPTION = "mean first update with test accuracy >= target over the ICs that reached it"


def _kept_median(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Median over the last axis of ``values`` where ``kept``; NaN where none is."""
    v = np.where(kept, np.asarray(values, dtype=np.float64), np.nan)
    out = np.full(v.shape[:-1], np.nan)
    some = np.asarray(kept).any(axis=-1)
    out[some] = np.nanmedian(v[some], axis=-1)
    return out


def estimator_summaries(by_estimator: dict[str, FiniteExponents]) -> dict[str, np.ndarray]:
    """λ_nMLE and ρ of each estimator (``lambda_nmle_<name>``, ``rho_<name>``) and where each fit sits.

    ``median_window_start``: median window start of the kept Λ (window estimator);
    ``median_saturation_time``: median τ of the kept Λ (ratio estimator); NaN where none is kept.
    """
    out = {}
    for name, fe in by_estimator.items():
        s = summarize_exponents(fe, warn=False)
        out[f"lambda_nmle_{name}"], out[f"rho_{name}"] = s["lambda_nmle"], s["rho"]
    if "window" in by_estimator:
        out["median_window_start"] = _kept_median(by_estimator["window"].start, by_estimator["window"].kept)
    if "ratio" in by_estimator:
        out["median_saturation_time"] = _kept_median(by_estimator["ratio"].length, by_estimator["ratio"].kept)
    return out


def to_dataset(
    result: EnsembleResult,
    exponents: FiniteExponents,
    tau: np.ndarray,
    attrs: dict | None = None,
    by_estimator: dict[str, FiniteExponents] | None = None,
) -> xr.Dataset:
    """Assemble records, per-IC exponents, τ and their summaries into one Dataset.

    ``exponents``: the configured estimator's (per IC, ``lambda_nmle``, ``rho``, ``phase``);
    ``by_estimator``: every estimator's exponents for the ``_window``/``_ratio`` summaries
    (default: ``exponents`` alone).
    """
    n_eta, n_eps, n_ic, n_members, steps = result.records["distance"].shape
    coords = {
        "eta": result.eta,
        "eps": result.eps,
        "ic": np.arange(n_ic),
        "member": np.arange(n_members),
        "step": np.arange(steps),
    }
    per_ic = AXES[:3]
    data = {name: (AXES, arr) for name, arr in result.records.items()}
    data.update(
        diverged=(AXES[:4], result.diverged),
        diverged_at=(AXES[:4], result.diverged_at),
        exponent=(per_ic, exponents.exponent),
        r2=(per_ic, exponents.r2),
        window_start=(per_ic, exponents.start),
        window_length=(per_ic, exponents.length),
        kept=(per_ic, exponents.kept),
        tau=(per_ic, tau),
    )
    summary = {**summarize_exponents(exponents), **summarize_tau(tau, steps)}
    summary["n_diverged"] = result.diverged.sum(axis=(-2, -1))
    summary.update(estimator_summaries(by_estimator or {exponents.estimator: exponents}))
    data.update({k: (AXES[:2], np.asarray(v)) for k, v in summary.items()})
    ds = dataset(data, coords, {"lyapunov_estimator": exponents.estimator, **(attrs or {})})
    return _describe(ds)


def _describe(ds: xr.Dataset) -> xr.Dataset:
    """Units and descriptions of the finite-ε variables present in ``ds``."""
    for name in ("exponent", "lambda_nmle", "lambda_nmle_window", "lambda_nmle_ratio", "lambda_all"):
        if name in ds:
            ds[name].attrs["units"] = "nat / update"
    notes = {
        "tau": "first update with test accuracy >= target; -1 if never",
        "tau_mean": TAU_MEAN_DESCRIPTION,
        "tau_mean_reached": TAU_REACHED_DESCRIPTION,
        "distance": "distance of each member to member 0 (the reference)",
        "phase": "chaotic: some Λ kept (rho > 0); λ≤0: no Λ kept (the paper's λ_nMLE <= 0 phase, lambda_nmle "
                 "undefined, see lambda_all); undefined: no valid distance series",
        "window_start": "first update of the fit window (0 for the ratio estimator)",
        "window_length": "updates spanned by the fit window (the saturation time τ for the ratio estimator)",
    }
    for name, text in notes.items():
        if name in ds:
            ds[name].attrs["description"] = text
    return ds


def tangent_dataset(result: TangentResult, attrs: dict | None = None) -> xr.Dataset:
    """Dataset of a :class:`~gdchaos.analyses.lyapunov.tangent_ensemble.TangentResult`.

    Variables: ``tangent_exponents`` (eta, ic, index), sorted descending; ``tangent_loss``,
    ``tangent_log_stretch`` and the running estimate ``tangent_ftle`` (eta, ic, step);
    ``tangent_diverged``, ``tangent_diverged_at`` (eta, ic); summaries
    ``lambda_max_tangent``, ``lambda_max_tangent_std`` (eta, over the trajectories that did
    not diverge), ``n_diverged_tangent`` (eta) and the IC-mean spectrum ``tangent_spectrum``
    (eta, index).
    """
    lam = result.exponents
    n_eta, n_ic, k = lam.shape
    steps = result.records["loss"].shape[-1]
    coords = {"eta": result.eta, "ic": np.arange(n_ic), "index": np.arange(k), "step": np.arange(steps)}
    run = ("eta", "ic", "step")
    ds = dataset(
        {
            "tangent_exponents": (("eta", "ic", "index"), lam),
            "tangent_loss": (run, result.records["loss"]),
            "tangent_log_stretch": (run, result.records["log_stretch"]),
            "tangent_ftle": (run, result.running_exponent()),
            "lambda_max_tangent": (("eta",), nan_mean(lam[..., 0], axis=1)),
            "lambda_max_tangent_std": (("eta",), nan_std(lam[..., 0], axis=1)),
            "tangent_spectrum": (("eta", "index"), nan_mean(lam, axis=1)),
            "tangent_diverged": (("eta", "ic"), result.diverged),
            "tangent_diverged_at": (("eta", "ic"), result.diverged_at),
            "n_diverged_tangent": (("eta",), result.diverged.sum(axis=1)),
        },
        coords,
        {"tangent_transient": result.transient, "tangent_renorm_every": result.renorm_every,
               "tangent_run_seconds": result.run_seconds,
               "tangent_compile_seconds": result.compile_seconds, **(attrs or {})},
    )
    ds["tangent_exponents"].attrs["units"] = "nat / update"
    return ds


def sharpness_dataset(result: SharpnessResult, attrs: dict | None = None) -> xr.Dataset:
    """Dataset of a :class:`~gdchaos.analyses.curvature.tracking.SharpnessResult`.

    Variables over (eta, ic, time): ``sharpness`` (λ_max), ``n_positive`` (λ > tol),
    ``n_negative`` (λ < −tol), ``n_chaotic`` (λ < −tol or λ > 2/η: a positive local
    exponent), ``n_flat`` (|λ| ≤ tol), ``grad_norm``, ``curv_loss`` and each observable
    (``curv_<name>``), with the flat tolerance tol = ``sharpness_flat_rtol``·max|λ| (an
    attribute; see :func:`gdchaos.analyses.lyapunov.local.direction_classes`);
    over (eta, ic, time, index): ``hessian_top`` (descending), ``hessian_bottom``
    (ascending), ``overlap_top``, ``overlap_bottom`` (|cos| of ∇L with those
    eigenvectors); ``edge_of_stability`` = 2/η (eta) and ``time_step`` (time), the
    update of each measurement; summaries ``sharpness_peak`` and ``sharpness_final`` (eta),
    IC means of the largest and the last λ_max (over the trajectories that measured one);
    ``sharpness_diverged`` (eta, ic) bool and ``sharpness_diverged_at`` (eta, ic), the update
    that diverged (−1 if none; measurements after it are NaN), and ``n_diverged_sharpness`` (eta).
    """
    rec = result.records
    n_eta, n_ic, n_t, k = rec["top"].shape
    run, run_k = ("eta", "ic", "time"), ("eta", "ic", "time", "index")
    diverged = np.asarray(result.diverged, bool)
    top = rec["top"][..., 0]
    data = {
        "sharpness_diverged": (("eta", "ic"), diverged),
        "sharpness_diverged_at": (("eta", "ic"), np.asarray(result.diverged_at)),
        "n_diverged_sharpness": (("eta",), diverged.sum(axis=1)),
        "sharpness": (run, rec["top"][..., 0]),
        "hessian_top": (run_k, rec["top"]),
        "hessian_bottom": (run_k, rec["bottom"]),
        "overlap_top": (run_k, rec["overlap_top"]),
        "overlap_bottom": (run_k, rec["overlap_bottom"]),
        "edge_of_stability": (("eta",), 2.0 / result.eta),
        "sharpness_final": (("eta",), nan_mean(rec["top"][:, :, -1, 0], axis=1)),
        "sharpness_peak": (("eta",), nan_mean(np.max(np.where(np.isnan(top), -np.inf, top), axis=-1), axis=1)),
    }
    counts = ("n_positive", "n_negative", "n_chaotic", "n_flat")
    for name in (*counts, "grad_norm"):
        data[name] = (run, rec[name])
    for name, value in rec.items():
        if name not in ("top", "bottom", "overlap_top", "overlap_bottom", *counts, "grad_norm"):
            data[f"curv_{name}"] = (run, value)
    coords = {"eta": result.eta, "ic": np.arange(n_ic), "time": np.arange(n_t), "index": np.arange(k),
              "time_step": ("time", result.step)}
    ds = dataset(data, coords, {
        "curvature_method": result.method, "sharpness_flat_rtol": result.flat_rtol,
        "sharpness_run_seconds": result.run_seconds,
        "sharpness_compile_seconds": result.compile_seconds, **(attrs or {})})
    ds["sharpness"].attrs["description"] = "largest Hessian eigenvalue of the full-batch training objective"
    ds["sharpness_diverged_at"].attrs["description"] = "first update with a non-finite loss, gradient or parameter; -1 if none"
    over = "all Hessian eigenvalues" if result.method == "full" else "the 2k extreme Lanczos eigenvalues (a lower bound)"
    tol = f"tol = {result.flat_rtol:.3g}·max|λ|"
    for name, rule in (("n_positive", "λ > tol"), ("n_negative", "λ < -tol"), ("n_flat", "|λ| <= tol"),
                       ("n_chaotic", "λ < -tol or λ > 2/η (local exponent ln|1 - ηλ| > 0; flat and λ = 2/η excluded)")):
        ds[name].attrs["description"] = f"count over {over} of {rule}, {tol}; -1 for a non-finite spectrum"
    return ds


def dataset(
    data_vars: Mapping[str, Any],
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """The one way gdchaos builds a results Dataset: variables, coordinates, provenance and descriptions.

    ``attrs`` are added to :func:`gdchaos.core.precision.provenance` (dtype, backend, devices,
    library versions); ``descriptions`` become each variable's ``description`` attribute.

    Example:
        >>> ds = dataset({"rho": (("eta",), [0.0, 1.0])}, {"eta": [0.1, 5.0]}, {"task": "iris"}, {"rho": "fraction"})
        >>> ds.rho.attrs["description"], ds.attrs["task"], "backend" in ds.attrs
        ('fraction', 'iris', True)
    """
    ds = xr.Dataset(dict(data_vars), coords=dict(coords or {}), attrs={**provenance(), **(attrs or {})})
    for name, text in (descriptions or {}).items():
        if name in ds.variables:
            ds[name].attrs["description"] = text
    return ds


def write(
    ds: xr.Dataset,
    directory: str | Path,
    *,
    file: str = RESULTS_FILE,
    summary: pd.DataFrame | None = None,
    summary_file: str = SUMMARY_FILE,
) -> Path:
    """Write ``ds`` as ``directory/file`` (netCDF-4, arrays of 3+ dimensions compressed) and ``summary`` as CSV.

    Every gdchaos results file goes through here: it carries ``format``/``format_version``,
    and both files are written to temporary files and renamed into place, so an interrupted
    write leaves the previous files or none, never a truncated one. Returns the netCDF path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.ndim >= 3 and var.dtype.kind in "fi"
    }
    ds = ds.assign_attrs(format=FORMAT, format_version=FORMAT_VERSION)
    atomic_write(path, lambda f: f.write(ds.to_netcdf(None, engine="h5netcdf", encoding=encoding)))
    if summary is not None:
        csv = summary.to_csv(index=False, float_format="%.6g")
        atomic_write(directory / summary_file, lambda f: f.write(csv.encode()))
    return path


def save(ds: xr.Dataset, directory: str | Path) -> Path:
    """Write a sweep's ``results.nc`` and ``summary.csv`` (:func:`summary_table`) into ``directory`` (:func:`write`)."""
    return write(ds, directory, summary=summary_table(ds))


def load(path: str | Path) -> xr.Dataset:
    """Load a run: a run directory or its ``results.nc``.

    Raises ``FileNotFoundError`` when there is none and ``ValueError`` for a file that
    is not a complete gdchaos results file (truncated, foreign, or from a newer
    format version). Older versions are read in the current layout (:func:`upgrade_v1`, :func:`upgrade_v2`).

    Example::

        ds = gdchaos.experiments.results.load("outputs/sweep/2026-11-23_12-00-00")
        ds.lambda_nmle.sel(eps=1e-8).plot()
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no results at {path}; pass a run directory or its {RESULTS_FILE}")
    try:
        with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort") as ds:
            ds = ds.load()
    except Exception as err:  # h5py/netCDF raise many types for damaged files
        raise ValueError(f"{path} is not a readable results file (truncated or damaged?): {type(err).__name__}: {err}") from None
    if ds.attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not a gdchaos results file (no format={FORMAT!r} attribute)")
    version = int(ds.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} has results format {version}; this gdchaos reads up to {FORMAT_VERSION}: upgrade gdchaos")
    if version == 1:
        ds = upgrade_v1(ds)
    return upgrade_v2(ds) if version <= 2 else ds


def upgrade_v2(ds: xr.Dataset) -> xr.Dataset:
    """A format-2 (or upgraded format-1) Dataset in the format-3 layout: add the ``analysis`` attribute.

    Format 2 stored the sweep's ``method`` (finite, tangent, both or sharpness), which is the
    analysis name; a file without it is recognized by its variables.
    """
    name = ds.attrs.pop("method", None) or infer_analysis_name(ds)
    if name is not None:
        ds.attrs["analysis"] = name
    ds.attrs.update(format_version=FORMAT_VERSION)
    ds.attrs.setdefault("converted_from_format_version", 2)
    return ds


def upgrade_v1(ds: xr.Dataset) -> xr.Dataset:
    """A format-1 Dataset in the format-2 layout.

    Version 1's ``tau_mean``/``tau_std`` averaged only the ICs that reached the target:
    they become ``tau_mean_reached``/``tau_std_reached``, and ``tau_mean``/``tau_std``/
    ``n_censored`` are recomputed from the stored per-IC ``tau`` (censored at the number
    of recorded updates, as version 2 writes them). Version 1 always used the window
    estimator (attribute ``lyapunov_estimator``); ``phase`` is derived from ``n_kept``
    and the finite exponents. A sharpness run's ``n_chaotic`` (then λ ≤ tol or ηλ ≥ 2, flat
    directions included) becomes ``n_chaotic_or_flat``. The attribute
    ``converted_from_format_version`` says so.
    """
    ds = ds.rename({k: f"{k}_reached" for k in ("tau_mean", "tau_std") if k in ds})
    if "tau" in ds:
        tau = ds.tau.transpose(..., "ic")
        s = summarize_tau(tau.values, int(ds.sizes["step"]))
        dims = tau.dims[:-1]
        ds = ds.assign({k: (dims, s[k]) for k in ("tau_mean", "tau_std", "n_censored")})
    if "exponent" in ds:
        ds.attrs.setdefault("lyapunov_estimator", "window")
        if "n_kept" in ds:
            n_valid = np.isfinite(ds.exponent).sum("ic")
            ds = ds.assign(phase=(n_valid.dims, phase(ds.n_kept.transpose(*n_valid.dims).values, n_valid.values)))
    if "n_chaotic" in ds and "sharpness_flat_rtol" not in ds.attrs:
        # version 1 counted flat directions as chaotic (λ ≤ tol or ηλ ≥ 2): keep it under a name that says so
        ds = ds.rename(n_chaotic="n_chaotic_or_flat")
        ds["n_chaotic_or_flat"].attrs["description"] = "format 1 count: λ ≤ tol or ηλ ≥ 2 (flat directions included)"
    ds.attrs.update(format_version=FORMAT_VERSION, converted_from_format_version=1)
    return _describe(ds)


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """The ``summary.csv`` table: one row per (η[, ε]) with the summary variables of ``ds``'s analysis, and ``n_ic``."""
    names = summary_columns(ds)
    if not names:  # an analysis without summary variables: one row per η, so summary.csv still lists the grid
        return pd.DataFrame({"eta": ds.eta.values} if "eta" in ds.coords else {})
    table = ds[names].to_dataframe().reset_index()
    if "ic" in ds.sizes:
        table.insert(len(table.columns) - len(names), "n_ic", ds.sizes["ic"])
    return table
