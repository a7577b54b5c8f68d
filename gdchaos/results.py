"""Labelled results: build, save and load one run as an ``xarray.Dataset``.

A sweep is held with dimensions ``(eta, eps, ic, member, step)``:

    distance, loss, accuracy      (eta, eps, ic, member, step)   per-step records
    diverged, diverged_at         (eta, eps, ic, member)
    exponent, r2, window_start,
    window_length, kept, tau      (eta, eps, ic)                 per initial condition
    lambda_nmle, lambda_std, rho,
    n_kept, lambda_all, tau_mean, tau_std,
    n_reached, n_diverged         (eta, eps)                     summary

The tangent method adds ``tangent_*`` variables over ``(eta, ic, index | step)``
(see :func:`tangent_dataset`). Attributes record the dtype, backend, device count, library versions and the
resolved configuration (YAML).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gdchaos.ensemble import AXES, EnsembleResult
from gdchaos.numerics import nan_mean, nan_std
from gdchaos.lyapunov.finite import FiniteExponents, summarize
from gdchaos.training_time import summarize_tau

RESULTS_FILE = "results.nc"
FORMAT = "gdchaos-results"
FORMAT_VERSION = 1
"""Written as the ``format`` and ``format_version`` attributes of every results file."""
SUMMARY_FILE = "summary.csv"
SUMMARY_VARS = (
    "lambda_nmle",
    "lambda_std",
    "rho",
    "n_kept",
    "lambda_all",
    "tau_mean",
    "tau_std",
    "n_reached",
    "n_diverged",
)


def to_dataset(
    result: EnsembleResult,
    exponents: FiniteExponents,
    tau: np.ndarray,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Assemble records, per-IC exponents, τ and their summaries into one Dataset."""
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
    summary = {**summarize(exponents), **summarize_tau(tau)}
    summary["n_diverged"] = result.diverged.sum(axis=(-2, -1))
    data.update({k: (AXES[:2], np.asarray(v)) for k, v in summary.items()})
    ds = xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))
    ds["exponent"].attrs["units"] = "nat / update"
    ds["lambda_nmle"].attrs["units"] = "nat / update"
    ds["tau"].attrs["description"] = "first update with test accuracy >= target; -1 if never"
    ds["distance"].attrs["description"] = "distance of each member to member 0 (the reference)"
    return ds


def tangent_dataset(result, attrs: dict | None = None) -> xr.Dataset:
    """Dataset of a :class:`~gdchaos.lyapunov.tangent_ensemble.TangentResult`.

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
    ds = xr.Dataset(
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
        coords=coords,
        attrs={"tangent_transient": result.transient, "tangent_renorm_every": result.renorm_every,
               "tangent_run_seconds": result.run_seconds,
               "tangent_compile_seconds": result.compile_seconds, **(attrs or {})},
    )
    ds["tangent_exponents"].attrs["units"] = "nat / update"
    return ds


def sharpness_dataset(result, attrs: dict | None = None) -> xr.Dataset:
    """Dataset of a :class:`~gdchaos.curvature.tracking.SharpnessResult`.

    Variables over (eta, ic, time): ``sharpness`` (λ_max), ``n_positive``, ``n_negative``,
    ``n_chaotic``, ``grad_norm``, ``curv_loss`` and each observable (``curv_<name>``);
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
        "sharpness_peak": (("eta",), nan_mean(np.max(np.where(np.isnan(rec["top"][..., 0]), -np.inf, rec["top"][..., 0]), axis=-1), axis=1)),
    }
    for name in ("n_positive", "n_negative", "n_chaotic", "grad_norm"):
        data[name] = (run, rec[name])
    for name, value in rec.items():
        if name not in ("top", "bottom", "overlap_top", "overlap_bottom", "n_positive", "n_negative", "n_chaotic", "grad_norm"):
            data[f"curv_{name}"] = (run, value)
    coords = {"eta": result.eta, "ic": np.arange(n_ic), "time": np.arange(n_t), "index": np.arange(k),
              "time_step": ("time", result.step)}
    ds = xr.Dataset(data, coords=coords, attrs={
        "curvature_method": result.method, "sharpness_run_seconds": result.run_seconds,
        "sharpness_compile_seconds": result.compile_seconds, **(attrs or {})})
    ds["sharpness"].attrs["description"] = "largest Hessian eigenvalue of the full-batch training objective"
    ds["sharpness_diverged_at"].attrs["description"] = "first update with a non-finite loss, gradient or parameter; -1 if none"
    return ds


def save(ds: xr.Dataset, directory: str | Path) -> Path:
    """Write ``results.nc`` (compressed netCDF-4) and ``summary.csv`` into ``directory``.

    Both are written to temporary files and renamed into place: an interrupted save
    leaves the previous files or none, never a truncated one.
    """
    from gdchaos.checkpoint import atomic_write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RESULTS_FILE
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.ndim >= 3 and var.dtype.kind in "fi"
    }
    ds = ds.assign_attrs(format=FORMAT, format_version=FORMAT_VERSION)
    atomic_write(path, lambda f: f.write(ds.to_netcdf(None, engine="h5netcdf", encoding=encoding)))
    csv = summary_table(ds).to_csv(index=False, float_format="%.6g")
    atomic_write(directory / SUMMARY_FILE, lambda f: f.write(csv.encode()))
    return path


def load(path: str | Path) -> xr.Dataset:
    """Load a run: a run directory or its ``results.nc``.

    Raises ``FileNotFoundError`` when there is none and ``ValueError`` for a file that
    is not a complete gdchaos results file (truncated, foreign, or from a newer
    format version).

    Example::

        ds = gdchaos.results.load("outputs/sweep/2026-11-23_12-00-00")
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
    return ds


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-(η, ε) summary as a flat table (the ``summary.csv`` columns)."""
    extra = ("lambda_max_tangent", "lambda_max_tangent_std", "edge_of_stability", "sharpness_peak", "sharpness_final")
    names = [v for v in (*SUMMARY_VARS, *extra) if v in ds]
    table = ds[names].to_dataframe().reset_index()
    table.insert(len(table.columns) - len(names), "n_ic", ds.sizes["ic"])
    return table
