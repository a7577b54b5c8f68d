r"""The order–chaos phase diagram of x ↦ tanh(W x) as labelled arrays, its numerical edge and a training path.

Built on :mod:`gdchaos.analyses.edge_of_chaos` (``python -m gdchaos.phase`` is the CLI):

* :func:`phase_diagram`: the separation heatmap and transverse exponent λ⊥ on a
  (J0/J, 1/J) grid, the mean-field criterion χ and boundary χ = 1, and the per-column
  numerical edges (:func:`edge_results`), as one ``xarray.Dataset``;
* :func:`edge_results`, :func:`edge_table`, :func:`edge_summary_line`: the numerical edge
  per J0/J column, its distance |Δ(1/J)| to the mean-field edge, as a table and a log line;
* :func:`training_path`: (J0/J, 1/J) of the square tanh layer of a network trained by SGD
  with momentum, with the fit J² = A·epoch + C and the weight decay λ* it implies.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from gdchaos.analyses import edge_of_chaos as eoc

if TYPE_CHECKING:
    import jax
    import pandas as pd
    import xarray as xr

    from gdchaos.core.data import Dataset as Data

__all__ = ["EDGE_COLUMNS", "edge_results", "edge_summary_line", "edge_table", "phase_diagram", "training_path"]

EDGE_COLUMNS = ("ratio", "edge_numerical", "edge_status", "edge_mean_field", "edge_distance", "edge_separation")
"""The columns of :func:`edge_table` (``edge.csv``)."""

DESCRIPTIONS = {
    "separation": "RMS |x_t - x'_t| / sqrt(N) after numerics.steps steps, mean over draws",
    "growth": "mean over draws of ln(final separation / initial separation); > 0 chaotic",
    "lyapunov": ("median over draws of the finite-time largest Lyapunov exponent transverse "
                 "to the uniform direction (second half of the steps); < 0 ordered"),
    "criterion": "mean-field J^2 * int Dz sech^4(J0 mu + J sqrt(q0) z); > 1 chaotic",
    "boundary_inv_j": "1/J on the mean-field edge of chaos (criterion = 1)",
}


def phase_diagram(
    ratio: Any,
    inv_j: Any,
    key: jax.Array,
    *,
    n: int = 100,
    draws: int = 3,
    steps: int = 200,
    average: int = 20,
    perturbation: float = 1e-4,
    boundary_points: int = 200,
    boundary_range: tuple[float, float] | None = None,
    threshold: float = -0.01,
) -> xr.Dataset:
    """Heatmap, λ⊥, mean-field criterion and boundary, and the numerical edges on a (J0/J, 1/J) grid.

    The heatmap is :func:`gdchaos.analyses.edge_of_chaos.separation_heatmap` (``n``, ``draws``,
    ``steps``, ``average``, ``perturbation``); the mean-field boundary is sampled at
    ``boundary_points`` J0/J values over ``boundary_range`` (default: the ``ratio`` span); the edges are :func:`edge_results`
    at ``threshold``. Variables over ``(inv_j, ratio)`` (``draw`` for the per-draw ones),
    ``boundary_inv_j`` over ``boundary_ratio``, the edges over ``ratio``; attributes ``d0``,
    ``heatmap_seconds``, ``mean_field_seconds`` and the edge summaries.
    """
    import xarray as xr

    ratio, inv_j = np.asarray(ratio, dtype=float), np.asarray(inv_j, dtype=float)
    start = time.perf_counter()
    heat = eoc.separation_heatmap(ratio, inv_j, key, n=n, draws=draws, steps=steps, average=average,
                                  perturbation=float(perturbation))
    jax.block_until_ready(heat.separation)
    heat_seconds = time.perf_counter() - start
    start = time.perf_counter()
    j = 1 / inv_j[:, None]
    chi = eoc.mean_field(ratio[None, :] * j, np.broadcast_to(j, (inv_j.size, ratio.size))).criterion
    lo, hi = (ratio.min(), ratio.max()) if boundary_range is None else boundary_range
    b_ratio = np.linspace(float(lo), float(hi), int(boundary_points))
    both = np.asarray(eoc.chaos_boundary(np.concatenate([b_ratio, ratio])))  # one compiled bisection
    b_inv_j, edge_mf = both[: b_ratio.size], both[b_ratio.size:]
    mf_seconds = time.perf_counter() - start
    ds = xr.Dataset(
        {
            "separation": (("inv_j", "ratio"), np.asarray(heat.separation)),
            "growth": (("inv_j", "ratio"), np.asarray(heat.growth)),
            "separation_per_draw": (("draw", "inv_j", "ratio"), np.asarray(heat.per_draw)),
            "lyapunov": (("inv_j", "ratio"), np.asarray(heat.lyapunov)),
            "lyapunov_per_draw": (("draw", "inv_j", "ratio"), np.asarray(heat.lyapunov_per_draw)),
            "criterion": (("inv_j", "ratio"), np.asarray(chi)),
            "boundary_inv_j": (("boundary_ratio",), np.asarray(b_inv_j)),
        },
        coords={"ratio": ratio, "inv_j": inv_j, "draw": np.arange(draws), "boundary_ratio": b_ratio},
        attrs={"d0": heat.d0, "heatmap_seconds": heat_seconds, "mean_field_seconds": mf_seconds},
    )
    for name, text in DESCRIPTIONS.items():
        ds[name].attrs["description"] = text
    growth_median = np.median(np.log(np.maximum(np.asarray(heat.per_draw), np.finfo(float).tiny) / heat.d0), axis=0)
    edges = edge_results(ratio, inv_j, np.asarray(heat.lyapunov), growth_median, edge_mf, float(threshold))
    out = ds.merge(edges)
    out.attrs.update(edges.attrs)
    return out


def edge_results(ratio: Any, inv_j: Any, lyapunov: Any, growth: Any, edge_mean_field: Any, threshold: float) -> xr.Dataset:
    """Per-column numerical edges (exponent and separation) and their distances to the mean-field edge.

    ``lyapunov`` and ``growth`` (ln(d/d0), median over draws) are ``(n_inv_j, n_ratio)``;
    the edge is where λ⊥ first reaches ``threshold`` coming down from the largest 1/J
    (:func:`gdchaos.analyses.edge_of_chaos.locate_edge`); the separation edge is where ln(d/d0)
    first reaches 0, the heatmap's own (slow-growth-biased) edge. Returns a Dataset
    over ``ratio`` with the summary of :func:`gdchaos.analyses.edge_of_chaos.compare_edges` as
    ``edge_distance_*`` attributes (and ``edge_separation_distance_*``).

    Example (λ⊥ = 0.7(u₀ − 1/J) per column crosses −0.01 at 1/J = u₀ + 0.01/0.7):
        >>> u = np.linspace(0.1, 2.0, 20)
        >>> lyap = np.stack([0.7 * (1.0 - u), 0.7 * (0.3 - u)], axis=1)
        >>> ds = edge_results([0.0, 1.5], u, lyap, -lyap, [1.0, 0.275], -0.01)
        >>> ds.edge_numerical.values.round(4).tolist(), round(ds.attrs["edge_distance_max_j0_le_j"], 4)
        ([1.0143, 0.3143], 0.0143)
    """
    import xarray as xr

    ratio, inv_j = np.asarray(ratio, dtype=float), np.asarray(inv_j, dtype=float)
    edge = eoc.locate_edge(inv_j, lyapunov, threshold)
    sep_edge = eoc.locate_edge(inv_j, growth, 0.0)
    span = (float(inv_j.min()), float(inv_j.max()))
    cmp = eoc.compare_edges(ratio, edge.inv_j, edge_mean_field, span)
    cmp_sep = eoc.compare_edges(ratio, sep_edge.inv_j, edge_mean_field, span)
    ds = xr.Dataset(
        {
            "edge_numerical": (("ratio",), edge.inv_j),
            "edge_status": (("ratio",), edge.status.astype(np.int8)),
            "edge_mean_field": (("ratio",), np.asarray(edge_mean_field, dtype=float)),
            "edge_distance": (("ratio",), cmp.distance),
            "edge_separation": (("ratio",), sep_edge.inv_j),
            "edge_separation_distance": (("ratio",), cmp_sep.distance),
        },
        coords={"ratio": ratio},
        attrs={"edge_threshold": threshold,
               **{f"edge_distance_{k}": v for k, v in cmp.summary.items()},
               **{f"edge_separation_distance_{k}": v for k, v in cmp_sep.summary.items()}},
    )
    ds["edge_numerical"].attrs["description"] = (
        f"1/J where the median transverse Lyapunov exponent first reaches {threshold:g} coming down from the largest "
        "1/J, interpolated between grid cells; NaN where none (see edge_status)")
    ds["edge_status"].attrs.update(flag_values=np.arange(len(eoc.EDGE_STATUS), dtype=np.int8),
                                   flag_meanings=" ".join(eoc.EDGE_STATUS))
    ds["edge_mean_field"].attrs["description"] = "1/J on the mean-field boundary (criterion = 1) at this J0/J"
    ds["edge_distance"].attrs["description"] = "|edge_numerical - edge_mean_field| in 1/J"
    ds["edge_separation"].attrs["description"] = (
        "1/J where the median ln(separation / initial separation) first reaches 0 coming down from the largest 1/J")
    return ds


def edge_summary_line(attrs: Mapping[str, Any], draws: int) -> str:
    """One log line: the per-column distances |Δ(1/J)| summarized on each side of J0/J = 1."""
    def side(prefix, name, label):
        n, missing = attrs[f"{prefix}_compared_{name}"], attrs[f"{prefix}_missing_{name}"]
        return (f"{label}: max {attrs[f'{prefix}_max_{name}']:.3f}, mean {attrs[f'{prefix}_mean_{name}']:.3f} over "
                f"{n} columns ({missing} without an edge)")

    d = "edge_distance"
    return (f"numerical edge (transverse exponent >= {attrs['edge_threshold']:g}, median of {draws} draws) vs mean "
            f"field, |Δ(1/J)| per J0/J column: {side(d, 'j0_le_j', 'J0/J <= 1')}; {side(d, 'abs_j0_lt_j', '|J0/J| < 1')}; "
            f"{side(d, 'j0_gt_j', 'J0/J > 1')}. Separation edge (ln d/d0 >= 0): "
            f"{side('edge_separation_distance', 'j0_le_j', 'J0/J <= 1')}")


def edge_table(ds: xr.Dataset) -> pd.DataFrame:
    """The per-column edges of :func:`edge_results` as a table (:data:`EDGE_COLUMNS`; ``edge_status`` by name).

    Example:
        >>> u = np.linspace(0.1, 2.0, 20)
        >>> ds = edge_results([0.0], u, 0.7 * (1.0 - u), -u, [1.0], -0.01)
        >>> edge_table(ds).round(4).to_dict("records")[0]["edge_status"]
        'found'
    """
    import pandas as pd

    table = pd.DataFrame({name: ds[name].values for name in EDGE_COLUMNS})
    table["edge_status"] = [eoc.EDGE_STATUS[int(s)] for s in ds.edge_status.values]
    return table


def training_path(
    data: Data,
    *,
    epochs: int,
    eta: float,
    momentum: float,
    batch_size: int,
    weight_decay: float,
    j0_init: float,
    j_init: float,
    j_star: float,
    key: jax.Array,
) -> xr.Dataset:
    """Train the square tanh network on ``data`` (:func:`gdchaos.analyses.edge_of_chaos.track_training`) and fit its growth.

    Variables ``track_<field>`` over ``epoch`` (the :class:`~gdchaos.analyses.edge_of_chaos.Tracking`
    fields); attributes ``track_slope_A``, ``track_intercept_C``, ``track_fit_points``,
    ``track_scale_factor``, ``track_D``, ``track_weight_decay_estimate`` (λ* ≈ D/(4 S J*²),
    :func:`gdchaos.analyses.edge_of_chaos.analyze_growth`), ``track_n_train`` and ``track_dataset``.
    """
    import xarray as xr

    tr = eoc.track_training(data, epochs=epochs, eta=float(eta), momentum=float(momentum), batch_size=batch_size,
                            weight_decay=float(weight_decay), j0_init=float(j0_init), j_init=float(j_init), key=key)
    n_train = len(data.x_train)
    growth = eoc.analyze_growth(tr, float(eta), float(momentum), batch_size, n_train, float(j_star))
    fields = {name: (("epoch",), np.asarray(getattr(tr, name))) for name in tr._fields if name != "epoch"}
    fields["diverged"] = (("epoch",), np.asarray(tr.diverged).astype(np.int8))
    ds = xr.Dataset(fields, coords={"epoch": np.asarray(tr.epoch)})
    ds = ds.rename({name: f"track_{name}" for name in fields})
    ds.attrs.update({
        "track_slope_A": float(growth.slope),
        "track_intercept_C": float(growth.intercept),
        "track_fit_points": int(growth.n_points),
        "track_scale_factor": float(growth.scale_factor),
        "track_D": float(growth.d),
        "track_weight_decay_estimate": float(growth.weight_decay),
        "track_n_train": n_train,
        "track_dataset": data.name,
    })
    return ds
