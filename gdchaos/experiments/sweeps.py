"""Experiments as functions: task + grid → labelled Dataset.

``finite_sweep``: ε-ball ensemble → finite exponents, ρ, τ. ``tangent_sweep``: tangent
map ensemble → top-k Lyapunov exponents. ``sharpness_sweep``: Hessian curvature along
training → sharpness vs 2/η.
"""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr

from gdchaos.engine import ensemble
from gdchaos.analyses.lyapunov.tangent_ensemble import run_tangent
from gdchaos.analyses.lyapunov.finite import (DEFAULT_LENGTHS, DEFAULT_STARTS, ESTIMATORS, check_estimator, check_window_grid,
                                     finite_exponents)
from gdchaos.core.errors import check
from gdchaos.core.models import count_params
from gdchaos.core.precision import provenance
from gdchaos.analyses.curvature.tracking import run_sharpness
from gdchaos.experiments.results import sharpness_dataset, tangent_dataset, to_dataset
from gdchaos.experiments.task import Task
from gdchaos.analyses.training_time import first_passage


def finite_sweep(
    task: Task,
    *,
    eta,
    eps=(1e-8,),
    n_ic: int = 50,
    n_perturb: int = 5,
    steps: int = 1000,
    seed: int = 0,
    starts=DEFAULT_STARTS,
    lengths=DEFAULT_LENGTHS,
    min_r2: float = 0.9,
    min_exponent: float = 0.05,
    estimator: str = "window",
    accuracy_target: float | None = None,
    include_bias: bool = False,
    distance: str = "l1",
    chunk: int = 100,
    progress: bool = True,
    attrs: dict | None = None,
    checkpoint=None,
    ic_slice: int | str | None = "auto",
) -> xr.Dataset:
    """Finite network Lyapunov exponents, ρ and ⟨τ⟩ over an (η, ε) grid, as a Dataset.

    Runs the (η, ε, ic, member) ensemble of ``task`` in one compiled program, fits Λ
    per initial condition with ``estimator`` (``"window"``: best-R² slope; ``"ratio"``: the
    papers' Eq. 3, see :mod:`gdchaos.analyses.lyapunov.finite`; the Dataset also summarizes the
    other one), and measures τ on the reference trajectories. ``ic_slice``: run the ICs in
    slices of this size (memory); ``"auto"`` slices only when the ensemble would not fit in
    half the device memory. See :mod:`gdchaos.experiments.results` for the layout.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> ds = finite_sweep(task, eta=[0.5, 5.0], eps=[1e-3], n_ic=2, n_perturb=2, steps=40,
        ...                   starts=[0, 5], lengths=[20, 30], progress=False)
        >>> ds.lambda_nmle.shape
        (2, 1)
    """
    eps = list(np.atleast_1d(eps).astype(float))
    check_window_grid(steps, starts, lengths)
    check_estimator(estimator)
    target = task.accuracy_target if accuracy_target is None else float(accuracy_target)
    if ic_slice == "auto":
        n_params = count_params(jax.eval_shape(task.model.init, jax.random.key(0)))
        records = 3 + len(jax.eval_shape(task.observe, jax.eval_shape(task.model.init, jax.random.key(0))))
        itemsize = np.dtype(jax.numpy.result_type(float)).itemsize
        per_ic = len(np.atleast_1d(eta)) * len(eps) * (n_perturb + 1) * (4 * n_params + records * min(chunk, steps)) * itemsize
        ic_slice = ensemble.auto_ic_slice(n_ic, per_ic)
    result = ensemble.run(
        task.tmap,
        task.model.init,
        eta=eta,
        eps=eps,
        n_ic=n_ic,
        n_perturb=n_perturb,
        steps=steps,
        key=jax.random.key(seed),
        observe=task.observe,
        hyper=task.hyper,
        include_bias=include_bias,
        distance=distance,
        chunk=chunk,
        progress=progress,
        checkpoint=checkpoint,
        ic_slice=ic_slice,
    )
    members = result.records["distance"][:, :, :, 1:]  # step 0: the initial ε-ball distances, before any update
    by_estimator = {name: finite_exponents(members, starts, lengths, min_r2, min_exponent, name) for name in ESTIMATORS}
    tau = first_passage(result.records["accuracy"][:, :, :, 0], target)
    meta = {
        **provenance(),
        "task": task.name,
        "method": "finite",
        "accuracy_target": target,
        "distance": distance,
        "include_bias": int(include_bias),
        "min_r2": min_r2,
        "min_exponent": min_exponent,
        "lyapunov_estimator": estimator,
        "seed": seed,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        **(attrs or {}),
    }
    return to_dataset(result, by_estimator[estimator], tau, meta, by_estimator)


def tangent_sweep(
    task: Task,
    *,
    eta,
    n_ic: int = 50,
    steps: int = 1000,
    seed: int = 0,
    k: int = 1,
    transient: int = 0,
    renorm_every: int = 1,
    chunk: int = 100,
    progress: bool = True,
    attrs: dict | None = None,
    checkpoint=None,
) -> xr.Dataset:
    """Top-k tangent Lyapunov exponents over an η grid × ``n_ic`` initial conditions, as a Dataset.

    Same initial conditions as :func:`finite_sweep` with the same ``seed``. Runs in
    float32 (no x64 needed). See :func:`gdchaos.experiments.results.tangent_dataset`.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [10]}, {"name": "sgd"})
        >>> ds = tangent_sweep(task, eta=[0.1, 5.0], n_ic=2, steps=40, k=3, progress=False)
        >>> ds.tangent_exponents.shape
        (2, 2, 3)
    """
    result = run_tangent(
        task.tmap,
        task.model.init,
        eta=eta,
        n_ic=n_ic,
        steps=steps,
        key=jax.random.key(seed),
        k=k,
        hyper=task.hyper,
        transient=transient,
        renorm_every=renorm_every,
        chunk=chunk,
        progress=progress,
        checkpoint=checkpoint,
    )
    meta = {**provenance(), "task": task.name, "seed": seed, **(attrs or {})}
    return tangent_dataset(result, meta)


def sharpness_sweep(
    task: Task,
    *,
    eta,
    n_ic: int = 5,
    steps: int = 2000,
    every: int = 20,
    seed: int = 0,
    k: int = 1,
    method: str = "auto",
    num_iters: int | None = 20,
    flat_rtol: float | None = None,
    chunk: int = 10,
    progress: bool = True,
    attrs: dict | None = None,
    checkpoint=None,
) -> xr.Dataset:
    """Sharpness and curvature of the full-batch training loss along training, over η × ``n_ic``, as a Dataset.

    Same initial conditions as :func:`finite_sweep` with the same ``seed``. See
    :func:`gdchaos.analyses.curvature.tracking.run_sharpness` and :func:`gdchaos.experiments.results.sharpness_dataset`.
    ``flat_rtol``: eigenvalues with |λ| ≤ flat_rtol·max|λ| count as flat (``n_flat``), not
    chaotic; None: N·ε of the dtype.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [4]}, {"name": "sgd"})
        >>> ds = sharpness_sweep(task, eta=[0.5, 4.0], n_ic=2, steps=20, every=10, progress=False)
        >>> ds.sharpness.shape
        (2, 2, 2)
    """
    x, y = task.dataset.x_train, task.dataset.y_train
    result = run_sharpness(
        task.tmap,
        task.model.init,
        task.train_loss or (lambda p: task.loss_fn(p, x, y)),
        eta=eta,
        n_ic=n_ic,
        steps=steps,
        every=every,
        key=jax.random.key(seed),
        k=k,
        method=method,
        num_iters=num_iters,
        rtol=flat_rtol,
        observe=task.observe,
        hyper=task.hyper,
        chunk=chunk,
        progress=progress,
        checkpoint=checkpoint,
    )
    meta = {**provenance(), "task": task.name, "seed": seed, "sharpness_every": every, **(attrs or {})}
    return sharpness_dataset(result, meta)


def add_window_matched_tangent(ds: xr.Dataset) -> xr.Dataset:
    """Add ``tangent_window_exponent`` (eta, eps, ic): the tangent exponent over Λ's own fit window.

    The finite-ε Λ is the growth rate over the best-R² window [s, s + L] near the start
    of training; the tangent λ_max averages over the whole run. Averaging the tangent
    log-stretch ln|R_11(t)| over the same window makes the two directly comparable
    (they agree where ε is small enough for the linearization to hold). Needs a
    Dataset with both methods on the same initial conditions (``method=both``) and a
    tangent run with ``renorm_every = 1`` (with r > 1 the log-stretch of r updates lands
    on every r-th update, so a window cannot be matched update by update).
    """
    check(
        int(ds.attrs.get("tangent_renorm_every", 1)) == 1,
        f"window-matched tangent exponents need renorm_every=1; this run has {ds.attrs.get('tangent_renorm_every')}",
    )
    log_stretch = ds.tangent_log_stretch.values  # (eta, ic, step)
    start, length = ds.window_start.values, ds.window_length.values  # (eta, eps, ic)
    csum = np.concatenate([np.zeros(log_stretch.shape[:-1] + (1,)), np.cumsum(log_stretch, axis=-1)], axis=-1)
    eta_i, ic_i = np.meshgrid(np.arange(ds.sizes["eta"]), np.arange(ds.sizes["ic"]), indexing="ij")
    out = np.empty(start.shape)
    for j in range(start.shape[1]):
        s, n = start[:, j], length[:, j]
        out[:, j] = (csum[eta_i, ic_i, s + n] - csum[eta_i, ic_i, s]) / n
    return ds.assign(tangent_window_exponent=(("eta", "eps", "ic"), out))
