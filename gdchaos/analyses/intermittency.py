r"""Intermittency: laminar phases interrupted by bursts, in the loss and in single weights (danovski2024 §4.2).

At η = 5 on Iris the training loss switches between a laminar phase, where it nearly repeats
with a short period (three narrow bands of width ~1e-6, O(1) apart), and random-like bursts;
a few single weights do the same while the rest stay constant. This module detects laminar
phases in any series and applies the detector to GD training.

**Criterion** (each series x_0 … x_{T−1} on its own):

* tolerance δ = atol + rtol · rms(x), with rms(x) = (mean_t x_t²)^½;
* period p_t = the smallest p ∈ {1, …, p_max} with |x_t − x_{t−p}| ≤ δ (t ≥ p), 0 if none
  (``order=2``: |x_t − 2x_{t−p} + x_{t−2p}| ≤ δ, a near repeat up to a linear drift, as
  inside the paper's bands, where the loss decays monotonically);
* step t *repeats* if p_t > 0; it and the steps its test uses (t − p_t; and t − 2p_t) are
  laminar candidates;
* a **laminar phase** is a maximal run of candidate steps of length ≥ ``min_length``;
  every other step is **burst**, and a burst is a maximal run of burst steps;
* a **burst onset** is a burst step right after a laminar one (a laminar phase ends).

A series with a non-finite entry (a diverged run) is flagged ``finite = False`` and not
classified: no step of it is laminar, its counts are −1 and its fractions NaN.

Per series: the laminar phase lengths, the burst fraction, the number of bursts, the
dominant period (most common p_t over laminar steps) and a regime (:data:`REGIMES`):

* ``constant``: no burst, dominant period 1 (constant within δ per step; with ``order=2``,
  a smooth drift);
* ``periodic``: no burst, dominant period > 1;
* ``intermittent``: ≥ 2 laminar phases, so at least one burst between two laminar phases;
* ``transient``: one laminar phase and some burst (e.g. a transient before settling);
* ``irregular``: no laminar phase;
* ``nonfinite``: not classified.

Check: the logistic map just below r_c = 1 + √8 has type-I intermittency with period-3
laminar phases whose mean length grows as (r_c − r)^(−1/2) (tests/test_intermittency.py).

Training: :func:`record_series` trains a :class:`~gdchaos.experiments.task.Task` over an η grid ×
initial conditions in one compiled program (:func:`gdchaos.engine.ensemble.advance`) and records the
loss and single weights per update; :func:`analyze` applies the detector and compares burst
onsets of weights and loss. The figures are in :mod:`gdchaos.figures.intermittency`; the Hydra
app (:mod:`gdchaos.intermittency`)::

    python -m gdchaos.intermittency                       # Iris, η ∈ {1, 5, 10}, 8 ICs, 2000 updates
    python -m gdchaos.intermittency 'eta=[5]' n_ic=32 steps=5000 detector.rtol=1e-4

writes ``results.nc``, ``summary.csv`` (one row per η) and ``intermittency.png``.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdchaos.core.errors import ConfigError, check
from gdchaos.core.models import count_params
from gdchaos.core.precision import nan_mean, nan_std
from gdchaos.engine import ensemble
from gdchaos.engine.ensemble import EnsembleCarry, draw

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import xarray as xr

REGIMES = ("constant", "periodic", "intermittent", "transient", "irregular", "nonfinite")
"""Regime names; :func:`regime` returns their indices."""

DIFFERENCES = {1: "x_t - x_(t-p)", 2: "x_t - 2 x_(t-p) + x_(t-2p)"}
"""The tested difference for ``order`` 1 (near repeat) and 2 (near repeat up to a linear drift)."""

QUIET = 0.1
"""A weight stays laminar through its IC's loss bursts if it bursts in at most this fraction of their steps."""

MAX_RECORD_BYTES = 2**31
"""Largest weight record :func:`record_series` keeps on the host (all η, ICs, weights, steps)."""


# --------------------------------------------------------------------------- detector


class Laminarity(NamedTuple):
    """Laminar phases and bursts of series ``x`` of shape ``(..., T)`` (see the module criterion).

    Attributes:
        laminar: ``(..., T)`` bool, step t lies in a laminar phase.
        period: ``(..., T)`` int, p_t (smallest p ≤ p_max with |x_t − x_{t−p}| ≤ δ), 0 if none.
        lengths: ``(..., M)`` int, laminar phase lengths in time order, 0-padded; M = max(n_phases, 1).
        n_phases: ``(...)`` int, number of laminar phases (−1: non-finite series).
        n_bursts: ``(...)`` int, number of bursts (−1: non-finite series).
        burst_fraction: ``(...)`` float, fraction of the T steps in bursts (NaN: non-finite).
        mean_length: ``(...)`` float, mean laminar phase length (NaN: no phase or non-finite).
        dominant_period: ``(...)`` int, most common p_t over laminar steps, the smallest on ties
            (0: no laminar step; −1: non-finite).
        open_start: ``(...)`` bool, a phase starts at t = 0 (its length is a lower bound).
        open_end: ``(...)`` bool, a phase ends at t = T − 1 (its length is a lower bound).
        tolerance: ``(...)`` float, δ (NaN: non-finite).
        finite: ``(...)`` bool, every x_t is finite; False: nothing of the series is classified.
    """
    laminar: np.ndarray
    period: np.ndarray
    lengths: np.ndarray
    n_phases: np.ndarray
    n_bursts: np.ndarray
    burst_fraction: np.ndarray
    mean_length: np.ndarray
    dominant_period: np.ndarray
    open_start: np.ndarray
    open_end: np.ndarray
    tolerance: np.ndarray
    finite: np.ndarray


def _runs(mask: np.ndarray):
    """Maximal runs of True in each row of ``mask`` ``(n, T)``: (row, start, length), row-major time order."""
    pad = np.zeros((mask.shape[0], 1), np.int8)
    edges = np.diff(np.concatenate([pad, mask.astype(np.int8), pad], axis=1), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows, starts, ends - starts


def _repeat_periods(x: np.ndarray, tol: np.ndarray, p_max: int, order: int) -> np.ndarray:
    """p_t = the smallest p ≤ p_max with |Δ_p^order x_t| ≤ tol (per row), 0 if none; ``x`` ``(n, T)``.

    Δ_p x_t = x_t − x_{t−p}; Δ_p² x_t = x_t − 2x_{t−p} + x_{t−2p} (defined for t ≥ order·p).
    """
    n_steps = x.shape[1]
    period = np.zeros(x.shape, np.int16)
    with np.errstate(invalid="ignore"):
        for p in range(min(p_max, (n_steps - 1) // order), 0, -1):  # descending: the smallest repeating p wins
            diff = x[:, p:] - x[:, :-p]
            if order == 2:
                diff = diff[:, p:] - diff[:, :-p]
            period[:, order * p:][np.abs(diff) <= tol[:, None]] = p
    return period


def _rms(x: np.ndarray) -> np.ndarray:
    """(mean_t x_t²)^½ per row, without overflow for entries near the float64 limit."""
    peak = np.max(np.abs(x), axis=1)
    unit = np.where(peak > 0, peak, 1.0)
    return peak * np.sqrt(np.mean((x / unit[:, None]) ** 2, axis=1))


def detect_laminar(
    x: Any, *, p_max: int = 12, rtol: float = 1e-3, atol: float = 0.0, min_length: int = 10, order: int = 1
) -> Laminarity:
    r"""Laminar phases and bursts of every series in ``x`` (shape ``(..., T)``, time last).

    Step t repeats if |x_t − x_{t−p}| ≤ δ = atol + rtol·rms(x) for some p ≤ ``p_max``
    (``order=2``: |x_t − 2x_{t−p} + x_{t−2p}| ≤ δ; p_t: the smallest such p); repeating
    steps and the steps their test uses form laminar phases where they run for
    ≥ ``min_length`` consecutive steps; the rest is burst. A series with a non-finite entry
    is flagged and not classified. Vectorized NumPy over all leading axes, computed in
    float64 (JAX arrays are accepted).

    Example (period 3, then 8 steps of burst, then constant; and a diverged series):
        >>> x = np.r_[np.tile([1.0, 2.0, 3.0], 10), [5.0, 7.0, 4.0, 9.0, 6.0, 8.0, 0.5, 4.5], np.full(12, 2.5)]
        >>> res = detect_laminar(np.stack([x, np.full(50, np.nan)]), min_length=5)
        >>> res.lengths.tolist(), res.n_bursts.tolist(), res.burst_fraction.tolist()
        ([[30, 12], [0, 0]], [1, -1], [0.16, nan])
        >>> res.dominant_period.tolist(), res.finite.tolist()
        ([3, -1], [True, False])
    """
    x = np.asarray(x)
    check(x.dtype.kind == "f", f"x must hold floating-point series; got dtype {x.dtype}")
    check(x.ndim >= 1 and x.shape[-1] >= 2, f"x must have time as its last axis with T >= 2 steps; got shape {x.shape}")
    for name, value in (("p_max", p_max), ("min_length", min_length)):
        check(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1,
              f"{name} must be an integer >= 1; got {value!r}")
    check(isinstance(order, (int, np.integer)) and not isinstance(order, bool) and order in (1, 2),
          f"order must be 1 (|x_t - x_(t-p)|) or 2 (|x_t - 2x_(t-p) + x_(t-2p)|); got {order!r}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        check(isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
              and math.isfinite(value) and value >= 0, f"{name} must be a finite number >= 0; got {value!r}")
    rtol, atol = float(rtol), float(atol)
    batch, n_steps = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, n_steps).astype(np.float64)
    n = flat.shape[0]
    ok = np.isfinite(flat)
    finite = ok.all(axis=1)
    tol = atol + rtol * _rms(np.where(ok, flat, 0.0))
    period = _repeat_periods(flat, tol, int(p_max), int(order))
    candidate = period > 0
    for p in range(1, int(p_max) + 1):
        for k in range(1, int(order) + 1):
            if k * p < n_steps:
                candidate[:, :-k * p] |= period[:, k * p:] == p  # t − p (and t − 2p) enter the test of t
    candidate &= finite[:, None]
    rows, starts, lengths = _runs(candidate)
    keep = lengths >= min_length
    rows, starts, lengths = rows[keep], starts[keep], lengths[keep]
    edges = np.zeros((n, n_steps + 1), np.int8)
    edges[rows, starts] = 1  # a run's end, start + length, is never another run's start: no collisions
    edges[rows, starts + lengths] = -1
    laminar = np.cumsum(edges, axis=1)[:, :n_steps] > 0
    n_phases = np.bincount(rows, minlength=n)
    rank = np.arange(rows.size) - (np.cumsum(n_phases) - n_phases)[rows]
    padded = np.zeros((n, max(int(n_phases.max(initial=0)), 1)), np.int64)
    padded[rows, rank] = lengths
    burst = ~laminar
    n_bursts = burst[:, 0] + np.sum(burst[:, 1:] & laminar[:, :-1], axis=1)
    votes = np.stack([np.sum(laminar & (period == p), axis=1) for p in range(1, int(p_max) + 1)], axis=1)
    dominant = np.where(votes.sum(axis=1) > 0, np.argmax(votes, axis=1) + 1, 0)
    n_laminar = laminar.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_length = np.where(finite & (n_phases > 0), n_laminar / n_phases, np.nan)
    out = Laminarity(
        laminar=laminar,
        period=np.where(finite[:, None], period, 0),
        lengths=padded,
        n_phases=np.where(finite, n_phases, -1),
        n_bursts=np.where(finite, n_bursts, -1),
        burst_fraction=np.where(finite, burst.sum(axis=1) / n_steps, np.nan),
        mean_length=mean_length,
        dominant_period=np.where(finite, dominant, -1),
        open_start=laminar[:, 0],
        open_end=laminar[:, -1],
        tolerance=np.where(finite, tol, np.nan),
        finite=finite,
    )
    return Laminarity(*(a.reshape(batch + a.shape[1:]) for a in out))


def burst_onsets(laminar: Any) -> np.ndarray:
    """``(..., T)`` bool: step t is a burst onset, laminar at t − 1 and not at t.

    Example:
        >>> burst_onsets(np.array([0, 1, 1, 0, 0, 1, 0], bool)).tolist()
        [False, False, False, True, False, False, True]
    """
    laminar = np.asarray(laminar, bool)
    out = np.zeros(laminar.shape, bool)
    out[..., 1:] = laminar[..., :-1] & ~laminar[..., 1:]
    return out


class Coincidence(NamedTuple):
    """Onsets of some series near the onsets of reference series (shapes broadcast; time axis dropped).

    Attributes:
        n_onsets: onsets per series.
        n_coincident: of them, those with a reference onset within ±``window`` steps.
        chance: the fraction expected if the reference's n_ref onsets fell at independent,
            uniformly random steps: 1 − (1 − (2·window + 1)/T)^n_ref (edges neglected).
    """
    n_onsets: np.ndarray
    n_coincident: np.ndarray
    chance: np.ndarray


def onset_coincidence(onsets: Any, reference: Any, window: int) -> Coincidence:
    """Count ``onsets`` within ±``window`` steps of an onset in ``reference`` (``(..., T)`` bool, broadcast).

    Example (onsets at 3 and 9; the reference's at 5 and 20; T = 30):
        >>> t = np.arange(30)
        >>> c = onset_coincidence(np.isin(t, [3, 9]), np.isin(t, [5, 20]), window=2)
        >>> int(c.n_onsets), int(c.n_coincident), round(float(c.chance), 4)
        (2, 1, 0.3056)
    """
    check(isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window >= 0,
          f"window must be an integer >= 0; got {window!r}")
    onsets, reference = np.asarray(onsets, bool), np.asarray(reference, bool)
    n_steps = reference.shape[-1]
    check(onsets.shape[-1] == n_steps, f"onsets and reference need the same number of steps; got {onsets.shape[-1]} and {n_steps}")
    total = np.concatenate([np.zeros(reference.shape[:-1] + (1,), np.int64), np.cumsum(reference, axis=-1)], axis=-1)
    t = np.arange(n_steps)
    near = total[..., np.minimum(t + window, n_steps - 1) + 1] > total[..., np.maximum(t - window, 0)]
    n_ref = total[..., -1]
    chance = 1 - (1 - min(2 * window + 1, n_steps) / n_steps) ** n_ref
    shape = np.broadcast_shapes(onsets.shape, reference.shape)[:-1]
    return Coincidence(
        n_onsets=np.broadcast_to(onsets.sum(axis=-1), shape),
        n_coincident=np.sum(onsets & near, axis=-1),
        chance=np.broadcast_to(chance, shape),
    )


def regime(result: Laminarity) -> np.ndarray:
    """Index into :data:`REGIMES` per series.

    Example:
        >>> x = np.stack([np.full(40, 1.0), np.tile([0.0, 1.0], 20), np.r_[np.zeros(15), [3.0, 9.0, 4.0], np.zeros(22)]])
        >>> [REGIMES[i] for i in regime(detect_laminar(x, min_length=5))]
        ['constant', 'periodic', 'intermittent']
    """
    n_phases = np.asarray(result.n_phases)
    n_bursts = np.asarray(result.n_bursts)
    period = np.asarray(result.dominant_period)
    code = np.select(
        [~np.asarray(result.finite), (n_bursts == 0) & (period == 1), n_bursts == 0, n_phases >= 2, n_phases == 1],
        [5, 0, 1, 2, 3],
        default=4,
    )
    return code.astype(np.int8)


# --------------------------------------------------------------------------- training records


class TrainingSeries(NamedTuple):
    """Loss and single weights along training, per (η, initial condition).

    Attributes:
        eta: ``(n_eta,)`` learning rates.
        loss: ``(n_eta, n_ic, T)`` training loss L(θ_t) before update t; NaN after divergence.
        weights: ``(n_eta, n_ic, n_w, T)`` the recorded parameters θ_t[i] (i = ``weight_index``).
        weight_index: ``(n_w,)`` positions in the flattened parameters (``ravel_pytree``).
        weight_names: ``n_w`` labels such as ``layer0/kernel[2,3]``.
        diverged: ``(n_eta, n_ic)`` bool; diverged_at: the update that diverged, −1 if none.
        compile_seconds, run_seconds: set-up and compilation, and the run.
    """
    eta: np.ndarray
    loss: np.ndarray
    weights: np.ndarray
    weight_index: np.ndarray
    weight_names: list
    diverged: np.ndarray
    diverged_at: np.ndarray
    compile_seconds: float
    run_seconds: float


def parameter_names(params: Any) -> list[str]:
    """Labels of the flattened parameters, in ``ravel_pytree`` order.

    Example:
        >>> parameter_names({"layer0": {"bias": np.zeros(2), "kernel": np.zeros((1, 2))}})
        ['layer0/bias[0]', 'layer0/bias[1]', 'layer0/kernel[0,0]', 'layer0/kernel[0,1]']
    """
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        prefix = "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)
        shape = tuple(getattr(leaf, "shape", np.shape(leaf)))
        names += [f"{prefix}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)] if shape else [prefix]
    return names


@functools.lru_cache(maxsize=16)
def _weight_observer(index: tuple):
    """``observe(params) -> {"weights": θ[index]}`` (one cached function per index set).

    A vector record: each ensemble group here holds one member, so the ensemble's per-member
    NaN mask after divergence broadcasts over it.
    """
    positions = np.asarray(index, np.int64)

    def observe(params):
        return {"weights": ravel_pytree(params)[0][positions]}

    return observe


@functools.lru_cache(maxsize=16)
def _compiled_references(tmap, init_params, n_ic: int):
    """(key, η) -> carry ``(η, 1, ic, 1)`` of the unperturbed states (the ICs of :func:`gdchaos.engine.ensemble.draw`)."""
    def init(key, eta):
        params, _, batch_keys = draw(key, init_params, n_ic)
        members = jax.tree.map(lambda a: a[:, None], params)
        states = jax.vmap(jax.vmap(tmap.init, in_axes=(0, None)))(members, batch_keys)  # (ic, 1)
        state = jax.vmap(lambda _: jax.vmap(lambda _: states)(jnp.zeros(1)))(eta)
        shape = (eta.shape[0], 1, n_ic, 1)
        return EnsembleCarry(state, jnp.zeros(shape, bool), jnp.full(shape, -1, jnp.int32))

    return jax.jit(init)


def _select_weights(selection, n_params: int, run_plain) -> np.ndarray:
    """Flat indices for ``"all"``, an integer k (the k largest mean |w_T − w_0|) or a list of indices."""
    if isinstance(selection, str):
        check(selection == "all", f"weights must be 'all', an integer k or a list of indices; got {selection!r}")
        return np.arange(n_params)
    if isinstance(selection, (int, np.integer)) and not isinstance(selection, bool):
        check(selection >= 1, f"weights=k needs k >= 1; got {selection}")
        if selection >= n_params:
            return np.arange(n_params)
        moved = np.abs(run_plain())  # (η, ic, n_params), NaN where diverged
        score = nan_mean(np.where(np.isfinite(moved), moved, np.nan).reshape(-1, n_params), axis=0)
        score = np.where(np.isfinite(score), score, -np.inf)  # weights of runs that all diverged come last
        return np.sort(np.argsort(-score, kind="stable")[: int(selection)])
    try:
        index = np.asarray(list(selection), np.int64)
    except (TypeError, ValueError):
        raise ConfigError(f"weights must be 'all', an integer k or a list of indices; got {selection!r}") from None
    check(index.size > 0 and bool(np.all((index >= 0) & (index < n_params))) and np.unique(index).size == index.size,
          f"weight indices must be distinct and in 0..{n_params - 1}; got {index.tolist()}")
    return index


def record_series(
    task: Any,
    *,
    eta: Any,
    n_ic: int,
    steps: int,
    key: jax.Array,
    weights: str | int | Sequence[int] = "all",
    chunk: int = 500,
    progress: bool = False,
    devices: Any = None,
) -> TrainingSeries:
    """Train ``task`` at every η from ``n_ic`` initial conditions; record the loss and single weights per update.

    One compiled program over (η, ic) (:func:`gdchaos.engine.ensemble.advance`, chunks of
    ``chunk`` updates); the initial conditions are those of :func:`gdchaos.engine.ensemble.draw`
    for ``key`` (the sweep's reference trajectories for the same seed). ``weights``:
    ``"all"``; an integer k: the k parameters with the largest mean |w_T − w_0| over η
    and ICs (found by one extra run without records); or a list of flat indices. A
    diverged run is frozen and NaN from its divergence on.

    Example:
        >>> import jax
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [2]}, {"name": "sgd"})
        >>> s = record_series(task, eta=[1.0, 5.0], n_ic=2, steps=30, key=jax.random.key(0), weights=[0, 5])
        >>> s.loss.shape, s.weights.shape, s.weight_names
        ((2, 2, 30), (2, 2, 2, 30), ['layer0/bias[0]', 'layer0/kernel[1,1]'])
    """
    eta = ensemble.check_grid(eta, n_ic, steps, chunk)
    shapes = jax.eval_shape(task.model.init, key)
    n_params = count_params(shapes)
    dtype = jnp.result_type(float)
    eta_dev = jnp.asarray(eta, dtype)
    hyper = ensemble.eta_hyper(eta_dev, task.hyper)
    init = _compiled_references(task.tmap, task.model.init, int(n_ic))

    def start():
        return ensemble.run_once(init, key, eta_dev)

    def run_plain():
        carry, _ = start()
        first = jax.vmap(jax.vmap(jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))))(carry.state.params)
        carry, _, _, _ = ensemble.advance(task.tmap, carry, hyper, n_ic=n_ic, steps=steps, chunk=chunk,
                                          progress=progress, desc="selecting weights", devices=devices)
        last = jax.vmap(jax.vmap(jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))))(carry.state.params)
        moved = np.asarray(last - first)[:, 0, :, 0]
        return np.where(np.asarray(carry.dead)[:, 0, :, 0, None], np.nan, moved)

    index = _select_weights(weights, n_params, run_plain)
    size = index.size * len(eta) * n_ic * steps * np.dtype(dtype).itemsize
    check(size <= MAX_RECORD_BYTES, f"recording {index.size} weights × {len(eta)} η × {n_ic} ICs × {steps} steps needs "
          f"{size / 2**30:.1f} GiB; record fewer, e.g. weights=100 (the 100 that move most)")
    carry, init_seconds = start()
    observe = _weight_observer(tuple(int(i) for i in index))
    carry, records, compile_seconds, run_seconds = ensemble.advance(
        task.tmap, carry, hyper, n_ic=n_ic, steps=steps, observe=observe, chunk=chunk, progress=progress,
        desc="intermittency", devices=devices,
    )
    w = records["weights"][:, 0, :, 0]
    names = parameter_names(shapes)
    return TrainingSeries(
        eta=eta,
        loss=records["loss"][:, 0, :, 0],
        weights=w,
        weight_index=index,
        weight_names=[names[i] for i in index],
        diverged=np.asarray(carry.dead)[:, 0, :, 0],
        diverged_at=np.asarray(carry.dead_at)[:, 0, :, 0],
        compile_seconds=init_seconds + compile_seconds,
        run_seconds=run_seconds,
    )


# --------------------------------------------------------------------------- analysis → Dataset


def _laminarity_vars(prefix: str, dims: tuple, res: Laminarity, phase_dim: str) -> dict:
    n_max = max(int(np.max(np.asarray(res.n_phases), initial=0)), 1)
    out = {
        f"{prefix}_laminar": (dims + ("step",), np.asarray(res.laminar).astype(np.int8)),
        f"{prefix}_period": (dims + ("step",), np.asarray(res.period).astype(np.int16)),
        f"{prefix}_lengths": (dims + (phase_dim,), np.asarray(res.lengths)[..., :n_max]),
        f"{prefix}_regime": (dims, regime(res)),
    }
    for field in ("n_phases", "n_bursts", "burst_fraction", "mean_length", "dominant_period", "tolerance"):
        out[f"{prefix}_{field}"] = (dims, np.asarray(getattr(res, field)))
    for field in ("open_start", "open_end", "finite"):
        out[f"{prefix}_{field}"] = (dims, np.asarray(getattr(res, field)).astype(np.int8))
    return out


def analyze(
    series: TrainingSeries,
    *,
    p_max: int = 12,
    rtol: float = 1e-3,
    atol: float = 0.0,
    min_length: int = 10,
    order: int = 1,
    window: int = 3,
    transient: int = 0,
    keep_weights: bool = True,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Detect laminar phases in the loss and every recorded weight; an ``xarray.Dataset`` with per-η summaries.

    The first ``transient`` updates are left out; the detector settings are those of
    :func:`detect_laminar`. Per η (``summary_*`` variables, also :func:`summary_table`):
    loss burst fraction (mean and std over finite ICs), pooled laminar lengths, the
    fraction of weight series in each regime, the fraction of weights that stay laminar
    through the loss bursts (burst in ≤ :data:`QUIET` of the loss-burst steps of their IC),
    and the fraction of weight-burst onsets within ±``window`` steps of a loss-burst onset
    of the same IC, with its chance level. Non-finite series are counted
    (``summary_n_nonfinite``) and left out of every mean.

    Example (one η, one IC: a loss with a burst at t = 20..24, a constant and a co-bursting weight):
        >>> t = np.arange(60)
        >>> burst = (t >= 20) & (t < 25)
        >>> loss = np.where(burst, 3.0 + t, 1.0 + (t % 3))
        >>> w = np.stack([np.full(60, 0.5), np.where(burst, -t, 2.0)])
        >>> s = TrainingSeries(np.array([5.0]), loss[None, None], w[None, None], np.array([0, 1]), ["a", "b"],
        ...                    np.zeros((1, 1), bool), np.full((1, 1), -1), 0.0, 0.0)
        >>> ds = analyze(s, min_length=5)
        >>> ds.loss_lengths.values.tolist(), ds.summary_loss_burst_fraction.values.tolist()
        ([[[20, 35]]], [0.08333333333333333])
        >>> [REGIMES[k] for k in ds.weight_regime.values[0, 0]], ds.summary_onset_coincidence.values.tolist()
        (['constant', 'intermittent'], [1.0])
    """
    import xarray as xr

    check(isinstance(transient, (int, np.integer)) and 0 <= transient < series.loss.shape[-1] - 1,
          f"transient must be an integer in [0, steps - 1); got {transient!r} for {series.loss.shape[-1]} steps")
    loss = series.loss[..., transient:]
    w = series.weights[..., transient:]
    kwargs = dict(p_max=p_max, rtol=rtol, atol=atol, min_length=min_length, order=order)
    loss_res = detect_laminar(loss, **kwargs)
    w_res = detect_laminar(w, **kwargs)
    loss_on = burst_onsets(loss_res.laminar)
    w_on = burst_onsets(w_res.laminar)
    coin = onset_coincidence(w_on, loss_on[:, :, None, :], window)
    others = (w_on.sum(axis=2, keepdims=True) - w_on) > 0  # onsets of the other weights of the same run
    coin_w = onset_coincidence(w_on, others, window)
    n_eta, n_ic, n_w, n_steps = w.shape
    loss_burst = ~loss_res.laminar & loss_res.finite[..., None]
    n_loss_burst = loss_burst.sum(axis=-1)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        in_bursts = np.sum(~w_res.laminar & loss_burst[:, :, None, :], axis=-1) / n_loss_burst
    in_bursts = np.where((n_loss_burst > 0) & w_res.finite, in_bursts, np.nan)
    data = {
        "loss": (("eta", "ic", "step"), loss),
        **_laminarity_vars("loss", ("eta", "ic"), loss_res, "phase"),
        **_laminarity_vars("weight", ("eta", "ic", "weight"), w_res, "weight_phase"),
        "weight_n_onsets": (("eta", "ic", "weight"), np.asarray(coin.n_onsets)),
        "weight_n_coincident": (("eta", "ic", "weight"), np.asarray(coin.n_coincident)),
        "weight_coincidence_chance": (("eta", "ic", "weight"), np.asarray(coin.chance)),
        "weight_n_coincident_weights": (("eta", "ic", "weight"), np.asarray(coin_w.n_coincident)),
        "weight_coincidence_weights_chance": (("eta", "ic", "weight"), np.asarray(coin_w.chance)),
        "weight_burst_in_loss_bursts": (("eta", "ic", "weight"), in_bursts),
        "weight_name": (("weight",), np.asarray(series.weight_names, dtype=str)),
        "weight_flat_index": (("weight",), np.asarray(series.weight_index)),
        "diverged": (("eta", "ic"), series.diverged.astype(np.int8)),
        "diverged_at": (("eta", "ic"), series.diverged_at),
    }
    if keep_weights:
        data["weights"] = (("eta", "ic", "weight", "step"), w)
    ds = xr.Dataset(
        data,
        coords={"eta": series.eta, "ic": np.arange(n_ic), "step": np.arange(transient, transient + n_steps),
                "weight": np.arange(n_w), "regime": list(REGIMES)},
        attrs={
            "criterion": f"step t repeats if min over p <= p_max of |{DIFFERENCES[order]}| <= atol + rtol * rms(x); "
                         "repeating steps and the steps their test uses are laminar where they run for >= min_length "
                         "steps; the rest is burst",
            "p_max": int(p_max), "rtol": float(rtol), "atol": float(atol), "min_length": int(min_length),
            "order": int(order), "quiet": QUIET,
            "onset_window": int(window), "transient": int(transient),
            "compile_seconds": series.compile_seconds, "run_seconds": series.run_seconds,
            **(attrs or {}),
        },
    )
    ds = ds.merge(_summaries(ds))
    _describe(ds)
    return ds


def _summaries(ds):
    """Per-η aggregates (``summary_*``); non-finite series are counted and left out."""
    import xarray as xr


    finite = ds.loss_finite.values.astype(bool)
    bf = np.where(finite, ds.loss_burst_fraction.values, np.nan)
    lengths = ds.loss_lengths.values
    pooled = [lengths[e][(lengths[e] > 0) & finite[e][:, None]] for e in range(ds.sizes["eta"])]
    w_reg = ds.weight_regime.values
    w_fin = ds.weight_finite.values.astype(bool)
    n_fin = np.maximum(w_fin.sum(axis=(1, 2)), 1)
    fractions = np.stack([(w_reg == k).sum(axis=(1, 2)) / n_fin for k in range(len(REGIMES) - 1)], axis=1)
    fractions = np.where(w_fin.any(axis=(1, 2))[:, None], fractions, np.nan)
    fractions = np.concatenate([fractions, (~w_fin).mean(axis=(1, 2))[:, None]], axis=1)
    onsets = np.where(w_fin, ds.weight_n_onsets.values, 0)
    n_on = onsets.sum(axis=(1, 2))

    def pooled_fraction(name):  # over the onsets of all finite weight series of one η
        values = np.where(w_fin, ds[name].values * (1 if name.startswith("weight_n_") else onsets), 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_on > 0, values.sum(axis=(1, 2)) / n_on, np.nan)

    in_bursts = ds.weight_burst_in_loss_bursts.values
    defined = np.isfinite(in_bursts).sum(axis=(1, 2))
    quiet = np.where(defined > 0, (in_bursts <= QUIET).sum(axis=(1, 2)) / np.maximum(defined, 1), np.nan)
    stat = lambda f: np.array([f(p) if p.size else np.nan for p in pooled], dtype=float)  # noqa: E731
    return xr.Dataset({
        "summary_n_nonfinite": (("eta",), (~finite).sum(axis=1)),
        "summary_loss_burst_fraction": (("eta",), nan_mean(bf, axis=1)),
        "summary_loss_burst_fraction_std": (("eta",), nan_std(bf, axis=1)),
        "summary_loss_n_phases": (("eta",), np.array([p.size for p in pooled])),
        "summary_loss_mean_length": (("eta",), stat(np.mean)),
        "summary_loss_median_length": (("eta",), stat(np.median)),
        "summary_loss_max_length": (("eta",), stat(np.max)),
        "summary_loss_intermittent_ics": (("eta",), (ds.loss_regime.values == REGIMES.index("intermittent")).sum(axis=1)),
        "summary_weight_regime_fraction": (("eta", "regime"), fractions),
        "summary_weight_quiet_in_loss_bursts": (("eta",), quiet),
        "summary_weight_n_onsets": (("eta",), n_on),
        "summary_onset_coincidence": (("eta",), pooled_fraction("weight_n_coincident")),
        "summary_onset_chance": (("eta",), pooled_fraction("weight_coincidence_chance")),
        "summary_onset_coincidence_weights": (("eta",), pooled_fraction("weight_n_coincident_weights")),
        "summary_onset_chance_weights": (("eta",), pooled_fraction("weight_coincidence_weights_chance")),
    })


def _describe(ds) -> None:
    regimes = "; ".join(f"{i} {name}" for i, name in enumerate(REGIMES))
    for prefix in ("loss", "weight"):
        ds[f"{prefix}_regime"].attrs["description"] = f"index into the regime coordinate: {regimes}"
        ds[f"{prefix}_lengths"].attrs["description"] = "laminar phase lengths in time order, 0-padded; count in _n_phases"
        ds[f"{prefix}_period"].attrs["description"] = (
            f"smallest p <= p_max with |{DIFFERENCES[ds.attrs['order']]}| <= tolerance; 0 if none")
        ds[f"{prefix}_n_phases"].attrs["description"] = "laminar phases; -1: non-finite series (not classified)"
    ds["weight_coincidence_chance"].attrs["description"] = (
        "fraction of onsets expected within +-window of a loss onset if the loss onsets fell at random steps")
    ds["summary_onset_coincidence"].attrs["description"] = (
        "fraction of weight-burst onsets within +-onset_window steps of a loss-burst onset of the same IC")
    ds["weight_burst_in_loss_bursts"].attrs["description"] = (
        "fraction of the loss-burst steps of the same IC in which the weight is in a burst; NaN: no loss burst")
    ds["summary_weight_quiet_in_loss_bursts"].attrs["description"] = (
        f"fraction of the weight series (with a loss burst in their IC) that burst in <= {QUIET} of the loss-burst steps")
    ds["summary_onset_coincidence_weights"].attrs["description"] = (
        "fraction of weight-burst onsets within +-onset_window steps of a burst onset of another weight of the same IC")
    ds["summary_loss_mean_length"].attrs["description"] = (
        "mean laminar phase length of the loss, pooled over the finite ICs; phases cut by the window's ends "
        "(loss_open_start, loss_open_end) count with their observed length")
    ds["summary_weight_regime_fraction"].attrs["description"] = (
        "fraction of the finite weight series in each regime; nonfinite: fraction of all weight series")


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per η: loss burst fraction, laminar lengths, weight regimes and onset coincidence (``summary.csv``)."""
    import pandas as pd

    rows = {"eta": ds.eta.values, "n_ic": np.full(ds.sizes["eta"], ds.sizes["ic"]),
            "n_nonfinite": ds.summary_n_nonfinite.values}
    for name in ("loss_burst_fraction", "loss_burst_fraction_std", "loss_n_phases", "loss_mean_length",
                 "loss_median_length", "loss_max_length", "loss_intermittent_ics"):
        rows[name] = ds[f"summary_{name}"].values
    for k, name in enumerate(REGIMES):
        rows[f"weights_{name}"] = ds.summary_weight_regime_fraction.values[:, k]
    rows["weights_quiet_in_loss_bursts"] = ds.summary_weight_quiet_in_loss_bursts.values
    rows["weight_onsets"] = ds.summary_weight_n_onsets.values
    rows["onset_coincidence"] = ds.summary_onset_coincidence.values
    rows["onset_chance"] = ds.summary_onset_chance.values
    rows["onset_coincidence_weights"] = ds.summary_onset_coincidence_weights.values
    rows["onset_chance_weights"] = ds.summary_onset_chance_weights.values
    return pd.DataFrame(rows)
