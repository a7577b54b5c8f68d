r"""Weight-level diagnostics of training trajectories (danovski2024 §3–4).

- Ablation importance (Fig. 5, left): ΔL_i = L(θ with θ_i = 0) − L(θ), for every
  single weight i, vmapped over i.
- Displacement vs path length (Fig. 5, right): per weight,
  Δw = |w(T) − w(0)| / |w(0)| and D_w = Σ_{t=1}^{T} |w(t) − w(t−1)|.
- Trajectory recorder: loss L(θ_t) and weight norm ‖θ_t‖₂ per update (optionally θ
  every k-th update) for several initial conditions (vmap over ICs, ``lax.scan``
  over time), and the regime gallery built on it (Figs. 3, 7, 9: η = 0.01, 1, 5).
- Post-learning (dynamical) stability (Fig. 6): train each reference for t₀ updates,
  then start ε-box perturbed members at θ_{t₀} and record d_j(t) = dist(θ_{t₀+t}⁽ʲ⁾, θ_{t₀+t}⁽⁰⁾)
  with the same member dynamics as :func:`gdchaos.engine.ensemble.run`.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jax.flatten_util import ravel_pytree

from gdchaos.engine import ensemble
from gdchaos.core.errors import check
from gdchaos.analyses.lyapunov.finite import DEFAULT_LENGTHS, DEFAULT_STARTS, FiniteExponents, finite_exponents
from gdchaos.core.maps import TrainingMap
from gdchaos.core.tree import tree_l2_norm
from gdchaos.core.perturb import box

Params = Any

DEFAULT_REGIMES = {0.01: "monotone", 1.0: "edge of stability", 5.0: "intermittent"}
"""Regime labels of danovski2024 for the Iris learning rates η = 0.01, 1, 5."""


# ---------------------------------------------------------------------- ablation


def ablation_importance(
    loss_fn: Callable[[Params], jax.Array],
    params: Params,
    *,
    relative: bool = False,
    batch_size: int | None = None,
) -> Params:
    """ΔL_i = L(θ with θ_i set to 0) − L(θ) for every single parameter, shaped like ``params``.

    All ablations are evaluated at once (vmap over the flattened parameter index;
    ``batch_size`` bounds memory by mapping over chunks of that size). With
    ``relative=True`` the result is ΔL_i / L(θ). Biases are ablated too; pick the
    leaves you need.

    Example:
        >>> import jax.numpy as jnp
        >>> loss = lambda p: jnp.sum((p["w"] - jnp.array([1.0, 0.0])) ** 2)
        >>> imp = ablation_importance(loss, {"w": jnp.array([1.0, 2.0])})
        >>> imp["w"].tolist()
        [1.0, -4.0]
    """
    flat, unravel = ravel_pytree(params)
    check(flat.size > 0, "params has no entries to ablate")
    if batch_size is not None:
        check(batch_size >= 1, f"batch_size must be >= 1 or None (all at once); got {batch_size}")

    @jax.jit
    def run(flat):
        base = loss_fn(unravel(flat))

        def ablated(i):
            return loss_fn(unravel(flat.at[i].set(0.0)))

        idx = jnp.arange(flat.size)
        losses = jax.vmap(ablated)(idx) if batch_size is None else jax.lax.map(ablated, idx, batch_size=batch_size)
        delta = losses - base
        return delta / base if relative else delta

    return unravel(run(flat))


# ---------------------------------------------------------- displacement vs path


class Displacement(NamedTuple):
    """Per-weight displacement and path length; each field is a pytree shaped like the params.

    Attributes:
        relative: Δw = |w(T) − w(0)| / |w(0)| (NaN where w(0) = 0, e.g. zero-initialized biases).
        path_length: D_w = Σ_{t=1}^{T} |w(t) − w(t−1)| over the recorded snapshots
            (a lower bound of the true path when snapshots are every k-th update).
        absolute: |w(T) − w(0)|.
    """

    relative: Params
    path_length: Params
    absolute: Params


def displacement_vs_path(trajectory: Params) -> Displacement:
    """Δw and D_w per weight from a parameter trajectory with time as the leading axis of every leaf.

    Host-side (numpy): the trajectory is copied to host once; fields are numpy arrays.

    Example:
        >>> import jax.numpy as jnp
        >>> d = displacement_vs_path({"w": jnp.array([[1.0, 2.0], [3.0, 2.0], [2.0, 1.0]])})
        >>> d.relative["w"].tolist(), d.path_length["w"].tolist()
        ([1.0, 0.5], [3.0, 1.0])
    """
    leaves = jax.tree.leaves(trajectory)
    check(len(leaves) > 0, "trajectory has no leaves")
    steps = {leaf.shape[0] if leaf.ndim else 0 for leaf in leaves}
    check(
        len(steps) == 1 and min(steps) >= 2,
        f"every leaf needs the same leading time axis with >= 2 snapshots; got lengths {sorted(steps)}",
    )

    return _displacement(trajectory)


def _leaf_displacement(w):
    w = np.asarray(w)
    absolute = np.abs(w[-1] - w[0])
    start = np.abs(w[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(start > 0, absolute / np.where(start > 0, start, 1.0), np.nan)
    return relative, np.sum(np.abs(np.diff(w, axis=0)), axis=0), absolute


def _displacement(trajectory) -> Displacement:
    out = jax.tree.map(_leaf_displacement, trajectory)
    parts = jax.tree.transpose(jax.tree.structure(trajectory), jax.tree.structure((0, 0, 0)), out)
    return Displacement(*parts)


# ------------------------------------------------------------------ trajectories


class Trajectory(NamedTuple):
    """Per-update records of training runs; leading axes are the batch (e.g. ``(eta, ic)``), T = steps.

    Attributes:
        loss: ``(..., T)`` training loss L(θ_t) at the parameters before update t.
        weight_norm: ``(..., T)`` ‖θ_t‖₂ over all parameters (weights and biases).
        grad_norm: ``(..., T)`` ‖∇(L + ½λ‖θ‖²)(θ_t)‖₂ (``StepInfo.grad_norm``).
        diverged: ``(..., T)`` update t gave a non-finite loss, gradient or parameter.
        params: snapshots θ_0, θ_k, ..., θ_T (leaves ``(..., T/k + 1, *shape)``), or
            ``None`` when not recorded.
        final: θ_T (leaves ``(..., *shape)``).
    """

    loss: jax.Array
    weight_norm: jax.Array
    grad_norm: jax.Array
    diverged: jax.Array
    params: Params | None
    final: Params


def trajectory_recorder(tmap: TrainingMap, steps: int, every: int | None = None) -> Callable:
    """A pure ``record(params, hyper, key=None) -> Trajectory`` of one run of ``steps`` updates.

    ``lax.scan`` over time; vmap it over initial conditions (and η) yourself, or use
    :func:`record_trajectories`. With ``every = k``, θ is also kept every k updates
    (``steps`` must be a multiple of k).

    Example:
        >>> import jax.numpy as jnp
        >>> from gdchaos import maps
        >>> tmap = maps.gd(lambda p, x, y: jnp.sum(p ** 2), jnp.zeros(1), jnp.zeros(1))
        >>> traj = trajectory_recorder(tmap, 3)(jnp.array([1.0]), {"learning_rate": 0.25})
        >>> traj.loss.tolist(), traj.final.tolist()
        ([1.0, 0.25, 0.0625], [0.125])
    """
    check(isinstance(steps, (int, np.integer)) and steps >= 1, f"steps must be an integer >= 1; got {steps!r}")
    if every is not None:
        check(
            isinstance(every, (int, np.integer)) and every >= 1 and steps % every == 0,
            f"every must be a positive divisor of steps={steps} (or None); got {every!r}",
        )

    def one(state, hyper):
        norm = tree_l2_norm(state.params)
        state, info = tmap.step(state, hyper)
        return state, (info.loss, norm, info.grad_norm, info.diverged)

    def record(params, hyper, key=None) -> Trajectory:
        state = tmap.init(params, key)
        if every is None:
            state, rec = jax.lax.scan(lambda s, _: one(s, hyper), state, None, length=steps)
            snaps = None
        else:

            def block(s, _):
                s_new, r = jax.lax.scan(lambda c, _: one(c, hyper), s, None, length=every)
                return s_new, (r, s.params)

            state, (rec, snaps) = jax.lax.scan(block, state, None, length=steps // every)
            rec = jax.tree.map(lambda a: a.reshape(steps), rec)
            snaps = jax.tree.map(lambda s, f: jnp.concatenate([s, f[None]]), snaps, state.params)
        return Trajectory(*rec, params=snaps, final=state.params)

    return record


@functools.lru_cache(maxsize=16)
def _compiled_record(tmap: TrainingMap, steps: int, every: int | None, eta_axis: bool):
    record = trajectory_recorder(tmap, steps, every)
    per_ic = jax.vmap(record, in_axes=(0, None, 0))
    if eta_axis:
        per_ic = jax.vmap(per_ic, in_axes=(None, 0, None))
    return jax.jit(per_ic)


def record_trajectories(
    tmap: TrainingMap,
    params: Params,
    hyper: dict,
    steps: int,
    *,
    every: int | None = None,
    key: jax.Array | None = None,
) -> Trajectory:
    """Record ``steps`` updates from each initial condition (leading axis of ``params``' leaves).

    One compiled program: vmap over ICs, ``lax.scan`` over time. ``hyper`` values are
    scalars shared by all ICs; if ``hyper["learning_rate"]`` is 1-D, an η axis is added
    in front (fields ``(eta, ic, T)``). ``key`` seeds per-IC mini-batch keys (SGD).

    Example:
        >>> import jax.numpy as jnp
        >>> from gdchaos import maps
        >>> tmap = maps.gd(lambda p, x, y: jnp.sum(p ** 2), jnp.zeros(1), jnp.zeros(1))
        >>> traj = record_trajectories(tmap, jnp.ones((2, 3)), {"learning_rate": jnp.array([0.1, 0.2])}, 5)
        >>> traj.loss.shape, traj.weight_norm.shape
        ((2, 2, 5), (2, 2, 5))
    """
    leaves = jax.tree.leaves(params)
    check(len(leaves) > 0 and all(leaf.ndim >= 1 for leaf in leaves), "params leaves need a leading IC axis")
    n_ic = leaves[0].shape[0]
    check(all(leaf.shape[0] == n_ic for leaf in leaves), "all params leaves need the same leading IC axis")
    check("learning_rate" in hyper, "hyper needs a 'learning_rate' entry (scalar or 1-D grid of η)")
    dtype = jnp.result_type(float)
    eta = jnp.asarray(hyper["learning_rate"], dtype)
    check(eta.ndim <= 1, f"hyper['learning_rate'] must be a scalar or 1-D; got shape {eta.shape}")
    if eta.ndim == 1:
        hyper = ensemble.eta_hyper(eta, {k: v for k, v in hyper.items() if k != "learning_rate"})
    else:
        hyper = {k: jnp.asarray(v, dtype) for k, v in hyper.items()}
    keys = jax.random.split(jax.random.key(0) if key is None else key, n_ic)
    return _compiled_record(tmap, int(steps), every, eta.ndim == 1)(params, hyper, keys)


class Gallery(NamedTuple):
    """The regime gallery: trajectories of several ICs per η (draw it with
    :func:`gdchaos.figures.diagnostics.plot_regime_gallery`).

    Attributes:
        eta: ``(n_eta,)`` learning rates.
        trajectory: :class:`Trajectory` with fields ``(n_eta, n_ic, steps)``.
        initial: the initial conditions θ₀ (leaves ``(n_ic, *shape)``).
        labels: η → regime name, for the figure's titles.
        title: the task's name.
    """

    eta: np.ndarray
    trajectory: Trajectory
    initial: Params
    labels: dict
    title: str


def regime_gallery(
    task: Any,
    etas: ArrayLike = (0.01, 1.0, 5.0),
    *,
    n_ic: int = 4,
    steps: int = 1000,
    key: jax.Array | None = None,
    labels: dict | None = None,
    every: int | None = None,
) -> Gallery:
    """Loss and weight-norm trajectories of ``n_ic`` initial conditions per η, from a :class:`~gdchaos.experiments.task.Task`.

    The same ICs (drawn by ``task.model.init``) are trained at every η with
    ``task.tmap`` and ``task.hyper``, in one program. ``labels`` maps η to a regime
    name (default :data:`DEFAULT_REGIMES`: monotone / edge of stability / intermittent).
    ``every = k`` also keeps θ every k updates (``gallery.trajectory.params``, leaves
    ``(n_eta, n_ic, steps/k + 1, *shape)``), e.g. for :func:`displacement_vs_path`.

    Example:
        >>> from gdchaos.experiments.task import build_task
        >>> task = build_task({"name": "iris"}, {"hidden": [3]}, {"name": "sgd"})
        >>> gallery = regime_gallery(task, (0.01, 5.0), n_ic=2, steps=20)
        >>> gallery.trajectory.loss.shape
        (2, 2, 20)
    """
    etas = np.atleast_1d(np.asarray(etas, np.float64))
    check(etas.size >= 1 and bool(np.all(etas > 0)), f"etas must be > 0; got {etas.tolist()}")
    check(n_ic >= 1, f"n_ic must be >= 1; got {n_ic}")
    key = jax.random.key(0) if key is None else key
    k_ic, k_batch = jax.random.split(key)
    draw = jax.jit(lambda k: jax.vmap(task.model.init)(jax.random.split(k, n_ic)))
    params, _ = ensemble.run_once(draw, k_ic)  # light XLA optimization: random draws compile slowly
    hyper = {**task.hyper, "learning_rate": etas}
    traj = jax.device_get(record_trajectories(task.tmap, params, hyper, steps, every=every, key=k_batch))
    labels = DEFAULT_REGIMES if labels is None else labels
    return Gallery(etas, traj, params, dict(labels), getattr(task, "name", ""))


# --------------------------------------------------------- post-learning stability


class PostLearningResult(NamedTuple):
    """ε-ball ensembles started after t₀ training updates.

    Records are indexed like :class:`gdchaos.engine.ensemble.EnsembleResult`; record step t
    is update t₀ + t of the reference (t = 0 is the perturbation time).

    Attributes:
        eta: ``(n_eta,)`` learning rates (also used for the t₀ training updates).
        eps: ``(n_eps,)`` perturbation sizes.
        t0: training updates before the perturbation.
        records: name -> ``(n_eta, n_eps, n_ic, n_perturb + 1, steps)``: ``distance``,
            ``loss`` and every ``observe`` output.
        pretrain_loss: ``(n_eta, n_ic, t0)`` reference loss during the t₀ updates.
        diverged: ``(n_eta, n_eps, n_ic, n_perturb + 1)`` bool.
        diverged_at: same shape; the update (counted from 0 at the IC) that diverged, −1 if none.
        compile_seconds: time to compile the draws, perturbations and the member steps.
        run_seconds: time of the t₀ training updates (compilation included) and of the member steps.
    """

    eta: np.ndarray
    eps: np.ndarray
    t0: int
    records: dict[str, np.ndarray]
    pretrain_loss: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    compile_seconds: float
    run_seconds: float


@functools.lru_cache(maxsize=16)
def _compiled_pretrain(tmap: TrainingMap, t0: int):
    """(ICs, batch keys, per-η hyper) -> reference states after t0 updates (η, ic) and their loss history."""

    def pretrain(params, batch_keys, hyper):
        def train(p, k_b, h):
            def one(s, _):
                s, info = tmap.step(s, h)
                return s, info.loss

            return jax.lax.scan(one, tmap.init(p, k_b), None, length=t0)

        per_ic = jax.vmap(train, in_axes=(0, 0, None))
        return jax.vmap(per_ic, in_axes=(None, None, 0))(params, batch_keys, hyper)

    return jax.jit(pretrain)


@functools.lru_cache(maxsize=16)
def _compiled_members(n_perturb: int, include_bias: bool):
    """Trained states (η, ic) -> ensemble carry (η, ε, ic, member): member 0 the reference, 1.. in its ε-box."""

    def members(states, perturb_keys, eps):
        def group(e, k_p, st):
            grown = jax.tree.map(lambda a: jnp.broadcast_to(a, (n_perturb + 1,) + a.shape), st)
            return grown._replace(params=box(k_p, st.params, e, n_perturb, include_bias))

        per_ic = jax.vmap(group, in_axes=(None, 0, 0))
        per_eps = jax.vmap(per_ic, in_axes=(0, None, None))
        state = jax.vmap(per_eps, in_axes=(None, None, 0))(eps, perturb_keys, states)
        n_eta, n_ic = jax.tree.leaves(states)[0].shape[:2]
        shape = (n_eta, eps.shape[0], n_ic, n_perturb + 1)
        return ensemble.EnsembleCarry(state, jnp.zeros(shape, bool), jnp.full(shape, -1, jnp.int32))

    return jax.jit(members)


def post_learning(
    tmap: TrainingMap,
    init_params: Callable[[jax.Array], Params],
    *,
    t0: int,
    eta: ArrayLike,
    eps: ArrayLike,
    n_ic: int,
    n_perturb: int,
    steps: int,
    key: jax.Array,
    observe: Callable | None = None,
    hyper: dict | None = None,
    include_bias: bool = False,
    distance: str = "l1",
    chunk: int = 100,
    progress: bool = False,
) -> PostLearningResult:
    """Dynamical stability after learning: perturb the reference at update t₀, then follow the ε-ball.

    Each reference θ₀⁽ⁱ⁾ (drawn as in :func:`gdchaos.engine.ensemble.run` from ``key``) is
    trained for ``t0`` updates at each η (one scan). Its state S_{t₀} (parameters,
    optimizer state, step count, batch key) is copied to ``n_perturb`` members whose
    parameters get θ_{t₀} + U(−ε, ε); then all members advance ``steps`` more updates
    with the member dynamics of :func:`gdchaos.engine.ensemble.run` (divergence flags,
    frozen NaN members), recording d_j(t) between member j and the reference. With
    ``t0 = 0`` this is exactly ``ensemble.run`` (same draws). Fit exponents with
    :func:`post_learning_exponents`.

    Example (GD on a strongly convex quadratic: perturbations of the minimum shrink):
        >>> import jax, jax.numpy as jnp
        >>> from gdchaos import maps
        >>> tmap = maps.gd(lambda p, x, y: jnp.sum((x @ p - y) ** 2), jnp.eye(2), jnp.ones(2))
        >>> res = post_learning(tmap, lambda k: jax.random.normal(k, (2,)), t0=50, eta=[0.1], eps=[1e-3],
        ...                     n_ic=2, n_perturb=3, steps=10, key=jax.random.key(0))
        >>> d = res.records["distance"]
        >>> d.shape, bool((d[..., 1:, -1] < d[..., 1:, 0]).all())
        ((1, 1, 2, 4, 10), True)
    """
    eta = ensemble.check_grid(eta, n_ic, steps, chunk)
    check(isinstance(t0, (int, np.integer)) and t0 >= 0, f"t0 must be an integer >= 0 (training updates); got {t0!r}")
    eps = ensemble.check_perturbation(eps, n_perturb, distance, jax.eval_shape(init_params, key), include_bias)

    dtype = jnp.result_type(float)
    eta_dev, eps_dev = jnp.asarray(eta, dtype), jnp.asarray(eps, dtype)
    hyper_dev = ensemble.eta_hyper(eta_dev, hyper)
    (params, perturb_keys, batch_keys), draw_seconds = ensemble.run_once(
        jax.jit(lambda k: ensemble.draw(k, init_params, int(n_ic))), key)
    t_start = time.perf_counter()
    states, pre_loss = _compiled_pretrain(tmap, int(t0))(params, batch_keys, hyper_dev)
    pre_loss = np.asarray(pre_loss)
    pretrain_seconds = time.perf_counter() - t_start
    members = _compiled_members(int(n_perturb), bool(include_bias))
    carry, init_seconds = ensemble.run_once(members, states, perturb_keys, eps_dev)
    carry, records, compile_seconds, run_seconds = ensemble.advance(
        tmap, carry, hyper_dev, n_ic=n_ic, steps=steps, observe=observe, distance=distance,
        chunk=chunk, progress=progress, desc="post-learning ensemble",
    )
    return PostLearningResult(
        eta=eta,
        eps=eps,
        t0=int(t0),
        records=records,
        pretrain_loss=pre_loss,
        diverged=np.asarray(carry.dead),
        diverged_at=np.asarray(carry.dead_at),
        compile_seconds=draw_seconds + init_seconds + compile_seconds,
        run_seconds=pretrain_seconds + run_seconds,
    )


def post_learning_exponents(
    result: PostLearningResult,
    starts: Sequence[int] = DEFAULT_STARTS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    min_r2: float = 0.9,
    min_exponent: float = 0.05,
) -> FiniteExponents:
    """Finite exponents Λ of the post-learning distances, fields ``(n_eta, n_eps, n_ic)``.

    Same fit as :func:`gdchaos.analyses.lyapunov.finite.finite_exponents` (best-R² window of
    ln mean_j d_j(t), t counted from the perturbation at t₀).

    Example:
        >>> import numpy as np
        >>> d = np.ones((1, 1, 1, 3, 60)) * np.exp(-0.2 * np.arange(60))
        >>> res = PostLearningResult(np.ones(1), np.ones(1), 10, {"distance": d}, None, None, None, 0.0, 0.0)
        >>> fe = post_learning_exponents(res, starts=[0], lengths=[30])
        >>> round(float(fe.exponent[0, 0, 0]), 6), bool(fe.kept[0, 0, 0])
        (-0.2, False)
    """
    return finite_exponents(result.records["distance"][..., 1:, :], starts, lengths, min_r2, min_exponent)
