r"""Tangent Lyapunov exponents of a training map over an (η, ic) grid, in one program.

Each (η, initial condition) pair runs the tangent map of ``tmap``
(:func:`gdchaos.analyses.lyapunov.tangent.tangent_map`): the trajectory and k tangent vectors
advance together; (η, ic) are ``vmap`` axes and time is a chunked ``lax.scan``, as in
:mod:`gdchaos.engine.ensemble`. Works in float32 (no x64 needed): the TPU path.

Recorded per step t: the training ``loss`` and ``log_stretch`` ln|R_11| of the top
direction; the running finite-time estimate of λ_1 is
:func:`~gdchaos.analyses.lyapunov.tangent.running_exponents` of it (which accounts for the
transient and for log-stretches landing only every ``renorm_every`` updates). The full
top-k exponents, sorted descending, come at the end. A trajectory that becomes
non-finite is flagged (``diverged``, ``diverged_at``) and frozen, as in
:mod:`gdchaos.engine.ensemble`.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from gdchaos.engine.ensemble import check_grid, draw, drive, eta_hyper, place, run_once, unsplit_on_cpu
from gdchaos.analyses.lyapunov.tangent import LyapunovState, exponents, running_exponents, tangent_map
from gdchaos.core.maps import TrainingMap
from gdchaos.core.tree import tree_all_finite


class TangentResult(NamedTuple):
    """Host arrays of a tangent ensemble.

    Attributes:
        eta: ``(n_eta,)``.
        exponents: ``(n_eta, n_ic, k)`` top-k exponents, nat/update, sorted descending (as
            :func:`~gdchaos.analyses.lyapunov.tangent.lyapunov_spectrum`); NaN for a diverged trajectory.
        records: ``loss`` and ``log_stretch`` ln (R)_11 of the first QR direction (the one
            that converges to λ_1), each ``(n_eta, n_ic, steps)``; NaN after divergence.
        transient: updates discarded before averaging.
        renorm_every: updates between QR renormalizations (log-stretches land on those updates).
        diverged: ``(n_eta, n_ic)`` bool: the trajectory (loss, gradient, parameters) or its
            tangent vectors became non-finite; the state is frozen from then on.
        diverged_at: ``(n_eta, n_ic)`` int, the update that diverged, −1 if none.
        final_state: the :class:`TangentCarry` after the last update (device arrays, leading
            axes (η, ic)), to continue or inspect the run.
        compile_seconds, run_seconds: timings.
    """

    eta: np.ndarray
    exponents: np.ndarray
    records: dict[str, np.ndarray]
    transient: int
    renorm_every: int
    diverged: np.ndarray
    diverged_at: np.ndarray
    final_state: "TangentCarry"
    compile_seconds: float
    run_seconds: float

    def running_exponent(self) -> np.ndarray:
        """Finite-time estimate of λ_1 after each update, ``(n_eta, n_ic, steps)`` (NaN before the first averaged block).

        :func:`~gdchaos.analyses.lyapunov.tangent.running_exponents` of the recorded log-stretches.
        """
        return running_exponents(self.records["log_stretch"], self.transient, self.renorm_every, axis=-1)


class TangentCarry(NamedTuple):
    """State of one (η, ic) trajectory of a tangent ensemble.

    Attributes:
        state: the :class:`~gdchaos.analyses.lyapunov.tangent.LyapunovState` (training state, tangent basis, sums).
        dead: the trajectory diverged (frozen since).
        dead_at: the update that diverged, −1 if none.
    """

    state: LyapunovState
    dead: jax.Array
    dead_at: jax.Array


def tangent_step(
    tmap: TrainingMap, k: int, *, transient: int = 0, renorm_every: int = 1
) -> tuple[Callable[..., TangentCarry], Callable[[TangentCarry, dict], tuple[TangentCarry, dict]]]:
    r"""The pure, jittable core of :func:`run_tangent`: ``(init, step)`` of one (η, ic) trajectory.

    ``init(params, key, basis_key=None) -> TangentCarry`` starts the training state of
    ``params`` (mini-batch key ``key``) and a random orthonormal k-basis (from ``basis_key``,
    default ``fold_in(key, 1)``); ``step(carry, hyper) -> (carry, record)`` applies one update
    with its tangent map (:func:`~gdchaos.analyses.lyapunov.tangent.tangent_map`) and records the
    training ``loss`` and ``log_stretch`` (ln (R)_11). A step whose training state,
    log-stretch or basis is non-finite marks the trajectory dead: its state is kept as it
    was (frozen), ``dead_at`` holds the update, and its records are NaN from then on.
    Put ``step`` under your own ``jit``/``vmap``/``lax.scan``;
    :func:`~gdchaos.analyses.lyapunov.tangent.exponents` of ``carry.state`` gives the exponents.

    Example (GD on ½·3θ² at η = 0.5: the exponent is ln|1 − 0.5·3| = ln 0.5):
        >>> import jax, jax.numpy as jnp
        >>> from gdchaos import maps
        >>> from gdchaos.analyses.lyapunov import exponents
        >>> tmap = maps.gd(lambda p, x, y: 1.5 * p ** 2, jnp.zeros((1, 1)), jnp.zeros(1))
        >>> init, step = tangent_step(tmap, k=1)
        >>> carry = init(jnp.asarray(1.0), jax.random.key(0))
        >>> carry, rec = jax.lax.scan(lambda c, _: step(c, {"learning_rate": 0.5}), carry, None, length=10)
        >>> round(float(exponents(carry.state)[0]), 6), bool(carry.dead)
        (-0.693147, False)
    """
    lmap = tangent_map(tmap.step, k, renorm_every=renorm_every, transient=transient)

    def init(params, key, basis_key=None) -> TangentCarry:
        basis_key = jax.random.fold_in(key, 1) if basis_key is None else basis_key
        state = lmap.init(tmap.init(params, key), basis_key)
        return TangentCarry(state, jnp.zeros((), bool), jnp.full((), -1, jnp.int32))

    def step(carry: TangentCarry, hyper):
        old = carry.state
        new, info = lmap.step(old, hyper)
        bad = (
            getattr(info.inner, "diverged", False)
            | ~tree_all_finite(new.inner)
            | ~jnp.all(jnp.isfinite(info.log_stretch))
            | ~tree_all_finite(new.basis)
        )
        dead = carry.dead | bad
        keep = lambda n, o: jnp.where(dead, o, n)
        frozen = new._replace(
            inner=new.inner._replace(params=jax.tree.map(keep, new.inner.params, old.inner.params),
                                     opt_state=jax.tree.map(keep, new.inner.opt_state, old.inner.opt_state))
            if hasattr(new.inner, "opt_state") else jax.tree.map(keep, new.inner, old.inner),
            basis=jax.tree.map(keep, new.basis, old.basis),
            log_stretch=keep(new.log_stretch, old.log_stretch),
            averaged=keep(new.averaged, old.averaged),
        )
        dead_at = jnp.where(bad & ~carry.dead, old.count, carry.dead_at)
        record = {
            "loss": jnp.where(carry.dead, jnp.nan, getattr(info.inner, "loss", jnp.nan)),
            "log_stretch": jnp.where(dead, jnp.nan, info.log_stretch[0]),
        }
        return TangentCarry(frozen, dead, dead_at), record

    return init, step


@functools.lru_cache(maxsize=16)
def _compiled(tmap: TrainingMap, init_params, n_ic: int, k: int, transient: int, renorm_every: int):
    init_one, one = tangent_step(tmap, k, transient=transient, renorm_every=renorm_every)

    def init(key, eta):
        params, _, batch_keys = draw(key, init_params, n_ic)
        k_basis = jax.random.fold_in(key, 1)
        carry = jax.vmap(init_one)(params, batch_keys, jax.random.split(k_basis, n_ic))
        return jax.vmap(lambda _: carry)(eta)

    return jax.jit(init), one


def run_tangent(
    tmap: TrainingMap,
    init_params: Callable,
    *,
    eta: ArrayLike,
    n_ic: int,
    steps: int,
    key: jax.Array,
    k: int = 1,
    hyper: dict | None = None,
    transient: int = 0,
    renorm_every: int = 1,
    chunk: int = 100,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> TangentResult:
    """Top-k tangent Lyapunov exponents of ``tmap`` for every (η, ic).

    Initial conditions come from ``init_params`` with the same key use as
    :func:`gdchaos.engine.ensemble.run`, so the reference trajectories coincide with the
    finite-ε ensemble's members 0 for the same ``key``. ``checkpoint``: a directory
    for chunk checkpoints (see :func:`gdchaos.engine.ensemble.drive`). ``devices``: devices to
    split the (η, ic) grid over (default: :func:`gdchaos.engine.ensemble.unsplit_on_cpu`).

    Example:
        >>> import jax
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> res = run_tangent(task.tmap, task.model.init, eta=[0.1, 5.0], n_ic=2, steps=50,
        ...                   key=jax.random.key(0), k=2, progress=False)
        >>> res.exponents.shape
        (2, 2, 2)
    """
    eta = check_grid(eta, n_ic, steps, chunk)
    init, one = _compiled(tmap, init_params, n_ic, int(k), int(transient), int(renorm_every))
    eta_dev = jnp.asarray(eta, jnp.result_type(float))
    carry, init_seconds = run_once(init, key, eta_dev)
    carry, hyper_dev = place(carry, eta_hyper(eta_dev, hyper), n_ic, unsplit_on_cpu(devices), ic_axis=1)
    carry, records, compile_seconds, run_seconds = drive(
        one, 2, carry, hyper_dev, steps, chunk, progress, "tangent ensemble", checkpoint
    )
    lam = np.asarray(jax.vmap(jax.vmap(lambda c: exponents(c.state)))(carry))
    dead, dead_at = np.asarray(carry.dead), np.asarray(carry.dead_at)
    lam = -np.sort(-np.where(dead[..., None], np.nan, lam), axis=-1)  # descending, NaN last
    return TangentResult(eta, lam, records, int(transient), int(renorm_every), dead, dead_at, carry,
                         init_seconds + compile_seconds, run_seconds)
