r"""Tangent Lyapunov exponents of a training map over an (η, ic) grid, in one program.

Each (η, initial condition) pair runs the tangent map of ``tmap``
(:func:`gdchaos.lyapunov.tangent.tangent_map`): the trajectory and k tangent vectors
advance together; (η, ic) are ``vmap`` axes and time is a chunked ``lax.scan``, as in
:mod:`gdchaos.ensemble`. Works in float32 (no x64 needed): the TPU path.

Recorded per step t: the training ``loss`` and ``log_stretch`` ln|R_11| of the top
direction, so the running finite-time estimate of λ_1 is
cumsum(log_stretch)[t] / (t + 1 − transient). The full top-k exponents come at the end.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdchaos.ensemble import check_grid, drive, eta_hyper, place, reference_states, run_once, unsplit_on_cpu
from gdchaos.lyapunov.tangent import exponents, tangent_map
from gdchaos.maps import TrainingMap


class TangentResult(NamedTuple):
    """Host arrays of a tangent ensemble.

    Attributes:
        eta: ``(n_eta,)``.
        exponents: ``(n_eta, n_ic, k)`` top-k exponents, nat/update, in QR order
            (descending in the long-time limit; finite runs may swap close ones).
        records: ``loss`` and ``log_stretch`` (top direction), each ``(n_eta, n_ic, steps)``.
        transient: updates discarded before averaging.
        compile_seconds, run_seconds: timings.
    """

    eta: np.ndarray
    exponents: np.ndarray
    records: dict[str, np.ndarray]
    transient: int
    compile_seconds: float
    run_seconds: float

    def running_exponent(self) -> np.ndarray:
        """Finite-time estimate of λ_1 after each update, ``(n_eta, n_ic, steps)`` (NaN in the transient)."""
        t = np.arange(self.records["log_stretch"].shape[-1])
        n = t + 1 - self.transient
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.cumsum(self.records["log_stretch"], axis=-1) / n, np.nan)


@functools.lru_cache(maxsize=16)
def _compiled(tmap: TrainingMap, init_params, n_ic: int, k: int, transient: int, renorm_every: int):
    lmap = tangent_map(tmap.step, k, renorm_every=renorm_every, transient=transient)

    def init(key, eta):
        states = reference_states(tmap, init_params, key, n_ic)
        k_basis = jax.random.fold_in(key, 1)
        lstates = jax.vmap(lmap.init)(states, jax.random.split(k_basis, n_ic))
        return jax.vmap(lambda _: lstates)(eta)

    def one(state, hyper):
        state, info = lmap.step(state, hyper)
        return state, {"loss": info.inner.loss, "log_stretch": info.log_stretch[0]}

    return jax.jit(init), one


def run_tangent(
    tmap: TrainingMap,
    init_params: Callable,
    *,
    eta,
    n_ic: int,
    steps: int,
    key: jax.Array,
    k: int = 1,
    hyper: dict | None = None,
    transient: int = 0,
    renorm_every: int = 1,
    chunk: int = 100,
    progress: bool = True,
    devices=None,
    checkpoint=None,
) -> TangentResult:
    """Top-k tangent Lyapunov exponents of ``tmap`` for every (η, ic).

    Initial conditions come from ``init_params`` with the same key use as
    :func:`gdchaos.ensemble.run`, so the reference trajectories coincide with the
    finite-ε ensemble's members 0 for the same ``key``. ``checkpoint``: a directory
    for chunk checkpoints (see :func:`gdchaos.ensemble.drive`). ``devices``: devices to
    split the (η, ic) grid over (default: :func:`gdchaos.ensemble.unsplit_on_cpu`).

    Example:
        >>> import jax
        >>> from gdchaos.task import build_task
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
    lam = jax.vmap(jax.vmap(lambda s: exponents(s, transient)))(carry)
    return TangentResult(eta, np.asarray(lam), records, int(transient), init_seconds + compile_seconds, run_seconds)
