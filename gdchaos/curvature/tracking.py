r"""Curvature along training over an (η, ic) grid: sharpness vs the edge of stability 2/η.

Every ``every`` updates the reference trajectory of each (η, initial condition) pauses
for a curvature measurement of the full-batch objective L (:func:`curvature_info`):

    sharpness λ_max(H), the k top and bottom eigenvalues, counts of λ > 0, λ < 0 and of
    locally chaotic directions (λ ≤ 0 or λ ≥ 2/η), |cos(∇L, v_i)| with the top and
    bottom eigenvectors, ‖∇L‖, the training loss and any ``observe`` output.

GD at learning rate η is linearly stable at a minimum only if λ_max ≤ 2/η; the edge
of stability (progressive sharpening up to 2/η, then hovering there) shows as
sharpness curves that rise and level off at the 2/η line. (η, ic) are ``vmap`` axes and
time is a chunked ``lax.scan`` of measurement blocks, as in :mod:`gdchaos.ensemble`
(same initial conditions for the same key, checkpoints, progress).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdchaos.curvature.along import curvature_info
from gdchaos.curvature.eigen import resolve_method
from gdchaos.ensemble import check_grid, drive, eta_hyper, place, reference_states, run_once, unsplit_on_cpu
from gdchaos.errors import check
from gdchaos.maps import TrainingMap
from gdchaos.models import count_params

RECORDED = ("top", "bottom", "n_positive", "n_negative", "n_chaotic", "overlap_top", "overlap_bottom", "grad_norm")


class SharpnessResult(NamedTuple):
    """Host arrays of a curvature-tracking run.

    Attributes:
        eta: ``(n_eta,)``.
        step: ``(n_records,)`` update index of each measurement (0, every, 2·every, …).
        records: name -> ``(n_eta, n_ic, n_records)`` (``top``, ``bottom``, ``overlap_top``,
            ``overlap_bottom``: ``(n_eta, n_ic, n_records, k)``): the fields of
            :class:`~gdchaos.curvature.along.CurvatureInfo` in :data:`RECORDED`, ``loss``
            and every ``observe`` output.
        method: ``"full"`` (exact spectrum, exact counts) or ``"lanczos"`` (counts over the 2k extremes).
        compile_seconds, run_seconds: timings.
    """

    eta: np.ndarray
    step: np.ndarray
    records: dict[str, np.ndarray]
    method: str
    compile_seconds: float
    run_seconds: float


def _programs(tmap: TrainingMap, init_params, objective, observe, n_ic, every, k, method, num_iters):
    def init(key, eta):
        states = reference_states(tmap, init_params, key, n_ic)
        return jax.vmap(lambda _: states)(eta)

    def measure(state, hyper):
        info = curvature_info(lambda p: objective(p, hyper), state.params, hyper["learning_rate"],
                              k=k, method=method, num_iters=num_iters)
        record = {name: getattr(info, name) for name in RECORDED}
        record["loss"] = objective(state.params, hyper)
        if observe is not None:
            record.update(observe(state.params))
        state = jax.lax.scan(lambda s, _: (tmap.step(s, hyper)[0], None), state, None, length=every)[0]
        return state, record

    return jax.jit(init), measure


def run_sharpness(
    tmap: TrainingMap,
    init_params: Callable,
    loss: Callable,
    *,
    eta,
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
    devices=None,
    checkpoint=None,
) -> SharpnessResult:
    """Curvature of ``loss`` every ``every`` updates along the trajectories of ``tmap`` over (η, ic).

    Args:
        tmap: training map; ``hyper["learning_rate"]`` is set to each η.
        init_params: ``init_params(key) -> params``; the same initial conditions as
            :func:`gdchaos.ensemble.run` with the same ``key``.
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
        checkpoint: directory for chunk checkpoints (see :func:`gdchaos.ensemble.drive`).
        devices: devices to split the (η, ic) grid over (default: :func:`gdchaos.ensemble.unsplit_on_cpu`).

    Example:
        >>> import jax
        >>> from gdchaos.task import build_task
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
    l2 = "l2" in hyper

    def objective(params, h):
        value = loss(params)
        if l2:
            value = value + 0.5 * h["l2"] * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))
        return value

    method = resolve_method(method, count_params(jax.eval_shape(init_params, jax.random.key(0))))
    init, measure = _programs(tmap, init_params, objective, observe, n_ic, int(every), int(k), method, num_iters)
    eta_dev = jnp.asarray(eta, jnp.result_type(float))
    carry, init_seconds = run_once(init, key, eta_dev)
    carry, hyper_dev = place(carry, eta_hyper(eta_dev, hyper), n_ic, unsplit_on_cpu(devices), ic_axis=1)
    carry, records, compile_seconds, run_seconds = drive(
        measure, 2, carry, hyper_dev, n_records, chunk, progress, "curvature along training", checkpoint
    )
    records = {name: (np.moveaxis(r, -1, 2) if r.ndim == 4 else r) for name, r in records.items()}
    return SharpnessResult(eta, np.arange(n_records) * every, records, method, init_seconds + compile_seconds, run_seconds)
