r"""Curvature along training over an (η, ic) grid: sharpness vs the edge of stability 2/η.

Every ``every`` updates the reference trajectory of each (η, initial condition) pauses
for a curvature measurement of the full-batch objective L (:func:`curvature_info`):

    sharpness λ_max(H), the k top and bottom eigenvalues, counts of λ > tol, λ < −tol,
    of locally chaotic directions (λ < −tol or λ > 2/η: a positive local exponent) and of
    flat ones (|λ| ≤ tol), |cos(∇L, v_i)| with the top and bottom eigenvectors, ‖∇L‖,
    the training loss and any ``observe`` output.

The flat tolerance is tol = rtol·max|λ| with ``rtol`` (default N·ε of the parameter
dtype) recorded in :attr:`SharpnessResult.flat_rtol`; see
:func:`gdchaos.analyses.lyapunov.local.direction_classes`.

GD at learning rate η is linearly stable at a minimum only if λ_max ≤ 2/η; the edge
of stability (progressive sharpening up to 2/η, then hovering there) shows as
sharpness curves that rise and level off at the 2/η line. (η, ic) are ``vmap`` axes and
time is a chunked ``lax.scan`` of measurement blocks, as in :mod:`gdchaos.engine.ensemble`
(same initial conditions for the same key, checkpoints, progress).

A trajectory whose update gives a non-finite loss, gradient or parameter
(``StepInfo.diverged``) is flagged ``diverged`` with the update index, frozen at its last
finite state, and its later measurements are NaN, as in the finite ensemble.

The pure per-(η, ic) core is :func:`sharpness_step`: ``(init, step)``, where ``step`` is
one measurement then ``every`` updates, ``(SharpnessCarry, hyper) -> (SharpnessCarry,
record)``, to put in one's own ``jit``/``vmap``/``lax.scan``. :func:`run_sharpness` is
``vmap`` over (η, ic) of a chunked ``lax.scan`` of it, compiled once per task and shapes.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gdchaos.analyses.curvature.along import curvature_info
from gdchaos.analyses.curvature.eigen import resolve_method
from gdchaos.engine.ensemble import check_grid, draw, drive, eta_hyper, place, run_once, unsplit_on_cpu
from gdchaos.core.errors import check
from gdchaos.analyses.lyapunov.local import check_rtol, default_rtol
from gdchaos.core.maps import TrainingMap, TrainState
from gdchaos.core.tree import count_params, tree_sq_norm

RECORDED = ("top", "bottom", "n_positive", "n_negative", "n_chaotic", "n_flat", "overlap_top", "overlap_bottom",
            "grad_norm")


class SharpnessResult(NamedTuple):
    """Host arrays of a curvature-tracking run.

    Attributes:
        eta: ``(n_eta,)``.
        step: ``(n_records,)`` update index of each measurement (0, every, 2·every, …).
        records: name -> ``(n_eta, n_ic, n_records)`` (``top``, ``bottom``, ``overlap_top``,
            ``overlap_bottom``: ``(n_eta, n_ic, n_records, k)``): the fields of
            :class:`~gdchaos.analyses.curvature.along.CurvatureInfo` in :data:`RECORDED`, ``loss``
            and every ``observe`` output. Measurements after a trajectory diverged are NaN
            (the count fields are therefore floats).
        diverged: ``(n_eta, n_ic)`` bool: an update of the trajectory gave a non-finite loss,
            gradient or parameter (``StepInfo.diverged``).
        diverged_at: ``(n_eta, n_ic)`` int: the first such update t (it maps θ_t, still
            finite, to a non-finite result), −1 if none. Exact to the update, not to
            ``every``: the measurements at steps ≤ t are of finite states (one at step t
            itself may record the overflowing loss), those at steps > t are NaN.
        method: ``"full"`` (exact spectrum, exact counts) or ``"lanczos"`` (counts over the 2k extremes).
        compile_seconds, run_seconds: timings.
        final_state: the :class:`~gdchaos.core.maps.TrainState` of every (η, ic) after the run,
            leaves ``(n_eta, n_ic, ...)`` (device arrays); a diverged trajectory holds its last
            finite state (``count`` = ``diverged_at``). Continue it with :func:`sharpness_step`.
        flat_rtol: the flat tolerance used: |λ| ≤ flat_rtol·max|λ| is flat (``n_flat``),
            neither positive, negative nor chaotic.
    """

    eta: np.ndarray
    step: np.ndarray
    records: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_at: np.ndarray
    method: str
    compile_seconds: float
    run_seconds: float
    final_state: TrainState
    flat_rtol: float


class SharpnessCarry(NamedTuple):
    """State of one (η, ic) trajectory of :func:`sharpness_step` (batch it with ``vmap``).

    Attributes:
        state: the training map's state (frozen at its last finite value once dead).
        dead: the trajectory diverged (bool scalar).
        dead_at: the update that diverged (int32 scalar), −1 if none.
    """

    state: TrainState
    dead: jax.Array
    dead_at: jax.Array


def sharpness_step(
    tmap: TrainingMap,
    loss: Callable,
    *,
    every: int,
    k: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    observe: Callable | None = None,
    l2: bool = False,
    rtol: float | None = None,
) -> tuple[Callable, Callable]:
    r"""The pure, jittable core of :func:`run_sharpness`: ``(init, step)`` of one (η, ic) trajectory.

    ``init(params, key=None) -> SharpnessCarry`` starts the training state of ``params``
    (mini-batch key ``key``). ``step(carry, hyper) -> (carry, record)`` measures the
    curvature of the objective at ``carry.state.params``
    (:func:`~gdchaos.analyses.curvature.along.curvature_info` with ``eta = hyper["learning_rate"]``;
    ``record`` holds the fields in :data:`RECORDED`, ``loss`` and every ``observe``
    output, NaN once the trajectory has diverged), then applies ``every`` updates of
    ``tmap`` (an inner ``lax.scan``). An update that flags ``StepInfo.diverged`` is not
    applied: the whole state stays at its last finite value (``count`` included), ``dead``
    becomes True and ``dead_at`` the update index (``state.count`` before it).

    ``step`` is a pure function of arrays (``k``, ``method``, ``num_iters``, ``every`` fixed):
    ``jit``, ``vmap`` over η (``hyper``) and initial conditions (``carry``), and ``lax.scan``
    over measurements compose freely.

    Args:
        tmap: training map.
        loss: ``loss(params) -> scalar``, the full-batch objective whose Hessian is measured.
        every: updates after each measurement.
        k, method, num_iters: as in :func:`run_sharpness` (``method="auto"`` resolves on the parameter count).
        observe: ``observe(params) -> {name: scalar}`` recorded at each measurement.
        l2: add ½·``hyper["l2"]``·‖θ‖² to ``loss`` (as the training map does).
        rtol: flat tolerance, |λ| ≤ rtol·max|λ| (default N·ε).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from gdchaos import maps
        >>> loss_fn = lambda p, x, y: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * p ** 2)
        >>> tmap = maps.gd(loss_fn, jnp.zeros(1), jnp.zeros(1))
        >>> init, step = sharpness_step(tmap, lambda p: loss_fn(p, None, None), every=10, method="full")
        >>> scan = lambda c, h: jax.lax.scan(lambda c, _: step(c, h), c, None, length=3)
        >>> carry, rec = jax.jit(scan)(init(jnp.ones(2)), {"learning_rate": jnp.asarray(0.1)})
        >>> rec["top"][:, 0].tolist(), int(carry.state.count), bool(carry.dead)
        ([4.0, 4.0, 4.0], 30, False)
    """
    check(isinstance(every, int) and every >= 1, f"every must be an integer >= 1; got {every!r}")
    rtol = check_rtol(rtol)

    def objective(params, hyper):
        value = loss(params)
        return value + 0.5 * hyper["l2"] * tree_sq_norm(params) if l2 else value

    def init(params, key=None) -> SharpnessCarry:
        return SharpnessCarry(tmap.init(params, key), jnp.zeros((), bool), jnp.full((), -1, jnp.int32))

    def update(carry: SharpnessCarry, hyper):
        state, dead, dead_at = carry
        new, info = tmap.step(state, hyper)
        dead_now = dead | info.diverged
        dead_at = jnp.where(info.diverged & ~dead, state.count, dead_at)
        state = jax.tree.map(lambda old, fresh: jnp.where(dead_now, old, fresh), state, new)
        return SharpnessCarry(state, dead_now, dead_at), None

    def step(carry: SharpnessCarry, hyper):
        params = carry.state.params
        info = curvature_info(lambda p: objective(p, hyper), params, hyper["learning_rate"],
                              k=k, method=method, num_iters=num_iters, rtol=rtol)
        record = {name: getattr(info, name) for name in RECORDED}
        record["loss"] = objective(params, hyper)
        if observe is not None:
            record.update(observe(params))
        record = {name: jnp.where(carry.dead, jnp.nan, value) for name, value in record.items()}
        carry = jax.lax.scan(lambda c, _: update(c, hyper), carry, None, length=every)[0]
        return carry, record

    return init, step


@functools.lru_cache(maxsize=8)
def _programs(tmap: TrainingMap, init_params, loss, observe, l2: bool, n_ic, every, k, method, num_iters, rtol):
    """Set-up program and measurement step, once per task and sizes: a repeated run compiles nothing."""
    init_one, measure = sharpness_step(tmap, loss, every=every, k=k, method=method, num_iters=num_iters,
                                       observe=observe, l2=l2, rtol=rtol)

    def init(key, eta):
        params, _, batch_keys = draw(key, init_params, n_ic)
        carry = jax.vmap(init_one)(params, batch_keys)
        return jax.vmap(lambda _: carry)(eta)

    return jax.jit(init), measure


def run_sharpness(
    tmap: TrainingMap,
    init_params: Callable,
    loss: Callable,
    *,
    eta: ArrayLike,
    n_ic: int,
    steps: int,
    every: int,
    key: jax.Array,
    k: int = 1,
    method: str = "auto",
    num_iters: int | None = None,
    observe: Callable | None = None,
    hyper: dict | None = None,
    chunk: int = 10,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    checkpoint: str | os.PathLike | None = None,
    rtol: float | None = None,
) -> SharpnessResult:
    """Curvature of ``loss`` every ``every`` updates along the trajectories of ``tmap`` over (η, ic).

    Args:
        tmap: training map; ``hyper["learning_rate"]`` is set to each η.
        init_params: ``init_params(key) -> params``; the same initial conditions as
            :func:`gdchaos.engine.ensemble.run` with the same ``key``.
        loss: ``loss(params) -> scalar``, the full-batch objective whose Hessian is measured.
            The L2 term ½·l2·‖θ‖² of ``hyper["l2"]`` is added (it shifts every eigenvalue by l2).
        eta: learning rates.
        n_ic: initial conditions.
        steps: updates; measurements at 0, every, …, below ``steps``.
        every: updates between measurements.
        k: eigenvalues at each end of the spectrum.
        method: ``"auto"`` (explicit Hessian for small models, else Lanczos), ``"full"``, ``"lanczos"``.
        num_iters: Lanczos steps (HVPs) per measurement (default: enough for k; ~20 gives
            λ_max to 1e-6 on the default models).
        observe: ``observe(params) -> {name: scalar}`` recorded at each measurement.
        chunk: measurements per compiled scan (progress granularity).
        checkpoint: directory for chunk checkpoints (see :func:`gdchaos.engine.ensemble.drive`).
        devices: devices to split the (η, ic) grid over (default: :func:`gdchaos.engine.ensemble.unsplit_on_cpu`).
        rtol: flat tolerance, |λ| ≤ rtol·max|λ| counts as flat (default N·ε of the parameter
            dtype, the roundoff of ``eigh``); the value used is ``flat_rtol`` of the result.

    Returns a :class:`SharpnessResult`: the records, which trajectories diverged and at
    which update (their later records are NaN), and the final states.

    The pure, jittable core is :func:`sharpness_step`: its ``step`` is one measurement,
    then ``every`` updates, of one (η, ic) trajectory held in a :class:`SharpnessCarry`;
    this function runs it ``vmap``-ped over (η, ic) in a chunked ``lax.scan``. Its programs
    are cached (the last 8 set-ups) per ``tmap``, ``init_params``, ``loss``, ``observe`` (by
    identity), sizes, ``k``, ``method``, ``num_iters`` and hyperparameter names: calling again
    with the same ones (new η values, key or fixed hyperparameter values of the same shapes)
    compiles nothing. Pass the same function objects to reuse them: a new ``lambda`` per
    call is a new key.

    Example:
        >>> import jax
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [4]}, {"name": "sgd"})
        >>> loss = lambda p: task.loss_fn(p, task.dataset.x_train, task.dataset.y_train)
        >>> res = run_sharpness(task.tmap, task.model.init, loss, eta=[0.5, 4.0], n_ic=2, steps=20,
        ...                     every=10, key=jax.random.key(0), progress=False)
        >>> res.records["top"].shape, res.step.tolist()
        ((2, 2, 2, 1), [0, 10])
    """
    check(isinstance(every, int) and every >= 1, f"every must be an integer >= 1; got {every!r}")
    check(steps >= every, f"steps={steps} is shorter than every={every}; no measurement fits")
    n_records = steps // every
    eta = check_grid(eta, n_ic, n_records, chunk)
    hyper = dict(hyper or {})
    shapes = jax.eval_shape(init_params, jax.random.key(0))
    n_params = count_params(shapes)
    method = resolve_method(method, n_params)
    rtol = check_rtol(rtol)
    if rtol is None:
        rtol = default_rtol(n_params, jnp.result_type(*(leaf.dtype for leaf in jax.tree.leaves(shapes))))
    init, measure = _programs(tmap, init_params, loss, observe, "l2" in hyper, int(n_ic), int(every), int(k), method,
                              None if num_iters is None else int(num_iters), rtol)
    eta_dev = jnp.asarray(eta, jnp.result_type(float))
    carry, init_seconds = run_once(init, key, eta_dev)
    carry, hyper_dev = place(carry, eta_hyper(eta_dev, hyper), n_ic, unsplit_on_cpu(devices), ic_axis=1)
    carry, records, compile_seconds, run_seconds = drive(
        measure, 2, carry, hyper_dev, n_records, chunk, progress, "curvature along training", checkpoint
    )
    records = {name: (np.moveaxis(r, -1, 2) if r.ndim == 4 else r) for name, r in records.items()}
    return SharpnessResult(
        eta=eta,
        step=np.arange(n_records) * every,
        records=records,
        diverged=np.asarray(carry.dead),
        diverged_at=np.asarray(carry.dead_at),
        method=method,
        compile_seconds=init_seconds + compile_seconds,
        run_seconds=run_seconds,
        final_state=carry.state,
        flat_rtol=rtol,
    )
