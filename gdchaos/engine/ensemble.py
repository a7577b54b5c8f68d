r"""Ensembles of training trajectories: (η, ε, ic, member) in one compiled program.

For each learning rate η, perturbation size ε and initial condition θ₀⁽ⁱ⁾ the
ensemble holds the reference trajectory (member 0) and ``n_perturb`` trajectories
started in the ε-box around it. All of them advance together: members, initial
conditions, ε and η are ``vmap`` axes, time is a ``lax.scan`` run in chunks (one
compilation, a progress bar between chunks, observables copied to host once per
chunk).

Recorded per step t = 0..T−1 (at θ_t, before update t):
    distance  d_j(t) = dist(θ_t⁽ʲ⁾, θ_t⁽⁰⁾), 0 for the reference;
    loss      L(θ_t⁽ʲ⁾) on the training batch of update t;
    one array per ``observe`` output (e.g. test accuracy).

A member whose update gives a non-finite loss, gradient or parameter is flagged
``diverged`` (with the step), frozen, and its later records are NaN; when the
reference diverges, all distances of its group are NaN. NaNs never enter means.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike
from tqdm.auto import tqdm

from gdchaos.engine import programs
from gdchaos.engine.checkpoint import Checkpoint
from gdchaos.core.errors import check
from gdchaos.core.maps import TrainingMap, TrainState
from gdchaos.core.perturb import DISTANCES, box, require_resolvable
from gdchaos.core.tree import PyTree

AXES = ("eta", "eps", "ic", "member", "step")
"""Axis order of every per-step record."""


class EnsembleResult(NamedTuple):
    """Host arrays of one ensemble run.

    Attributes:
        eta: ``(n_eta,)`` learning rates.
        eps: ``(n_eps,)`` perturbation sizes.
        records: name -> ``(n_eta, n_eps, n_ic, n_perturb + 1, steps)`` array in the compute dtype;
            always ``distance`` and ``loss``, plus every ``observe`` output.
        diverged: ``(n_eta, n_eps, n_ic, n_perturb + 1)`` bool.
        diverged_at: same shape, int; the update that diverged, −1 if none.
        final_state: the :class:`EnsembleCarry` after the last update (device arrays with
            leading axes (η, ε, ic, member)), to continue the run with :func:`advance` or inspect it.
        compile_seconds: time to trace and compile the set-up and the chunked step.
        run_seconds: time of all chunks after compilation.
    """

    eta: np.ndarray
    eps: np.ndarray
    records: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_at: np.ndarray
    final_state: "EnsembleCarry"
    compile_seconds: float
    run_seconds: float


class EnsembleCarry(NamedTuple):
    """State of one (η, ε, ic) group of members, or of a batch of them (leading axes).

    Attributes:
        state: the members' training states (leading member axis).
        dead: ``(members,)`` bool, the member diverged (frozen since).
        dead_at: ``(members,)`` int, the update that diverged, −1 if none.
    """

    state: object
    dead: jax.Array
    dead_at: jax.Array


def _member_where(mask, new, old):
    def pick(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - mask.ndim)), n, o)

    return jax.tree.map(pick, new, old)


@functools.lru_cache(maxsize=32)
def group_step(
    tmap: TrainingMap, observe: Callable | None = None, distance_name: str = "l1"
) -> Callable[[EnsembleCarry, dict], tuple[EnsembleCarry, dict]]:
    r"""The pure, jittable core of :func:`run`: one update of one (η, ε, ic) group of members.

    ``step(carry, hyper) -> (carry, record)`` advances every member of an
    :class:`EnsembleCarry` by one update of ``tmap`` and records, at θ_t before the update,
    ``distance`` to member 0, ``loss`` and the ``observe`` outputs. A member whose update is
    non-finite is flagged and frozen; its records are NaN afterwards (all distances, once
    the reference diverged). Put it under your own ``jit``/``vmap``/``lax.scan``.

    Example (two members of GD on ½θ² at η = 0.5, 1e-3 apart: d(t) = 1e-3·0.5^t):
        >>> import jax, jax.numpy as jnp
        >>> from gdchaos import maps
        >>> tmap = maps.gd(lambda p, x, y: 0.5 * jnp.sum(p ** 2), jnp.zeros((1, 1)), jnp.zeros(1))
        >>> members = jax.vmap(tmap.init)(jnp.array([[1.0], [1.001]]))
        >>> carry = EnsembleCarry(members, jnp.zeros(2, bool), jnp.full(2, -1))
        >>> step = group_step(tmap)
        >>> carry, rec = jax.lax.scan(lambda c, _: step(c, {"learning_rate": 0.5}), carry, None, length=3)
        >>> [round(float(d) * 1e3, 6) for d in rec["distance"][:, 1]]
        [1.0, 0.5, 0.25]
    """
    member_step = jax.vmap(tmap.step, in_axes=(0, None))
    distance = DISTANCES[distance_name]

    def step(carry: EnsembleCarry, hyper):
        state, dead, dead_at = carry
        params = state.params
        reference = jax.tree.map(lambda a: a[0], params)
        dist = jax.vmap(distance, in_axes=(0, None))(params, reference)
        new_state, info = member_step(state, hyper)
        record = {"distance": jnp.where(dead[0], jnp.nan, dist), "loss": info.loss}
        if observe is not None:
            record.update(jax.vmap(observe)(params))
        record = {k: jnp.where(dead, jnp.nan, v) for k, v in record.items()}
        newly = info.diverged & ~dead
        dead_now = dead | info.diverged
        keep_old = dead_now
        new_state = new_state._replace(
            params=_member_where(keep_old, state.params, new_state.params),
            opt_state=_member_where(keep_old, state.opt_state, new_state.opt_state),
        )
        dead_at = jnp.where(newly, state.count, dead_at)
        return EnsembleCarry(new_state, dead_now, dead_at), record

    return step


def draw(
    key: jax.Array, init_params: Callable, n_ic: int, ics: tuple | None = None
) -> tuple[PyTree, jax.Array, jax.Array]:
    """The ensembles' random draws from ``key``: ``(initial conditions, perturbation keys, batch keys)``.

    One layout for every runner (finite, tangent, curvature, post-learning), so the same
    ``key`` gives the same initial conditions and mini-batches everywhere. ``ics = (start,
    stop)`` returns only those initial conditions, equal to the same slice of the whole draw.
    """
    start, stop = ics or (0, n_ic)
    k_ic, perturb_keys, batch_keys = (jax.random.split(k, n_ic)[start:stop] for k in jax.random.split(key, 3))
    return jax.vmap(init_params)(k_ic), perturb_keys, batch_keys


def reference_states(tmap: TrainingMap, init_params: Callable, key: jax.Array, n_ic: int) -> TrainState:
    """``tmap`` states of the ``n_ic`` initial conditions of :func:`draw` (the ensembles' members 0)."""
    params, _, batch_keys = draw(key, init_params, n_ic)
    return jax.vmap(tmap.init)(params, batch_keys)


@functools.lru_cache(maxsize=32)
def _compiled_init(tmap: TrainingMap, init_params, n_ic: int, n_perturb: int, include_bias: bool, ics: tuple | None = None):
    """Set-up program; ``ics = (start, stop)`` draws only those initial conditions (same draws as the whole run)."""
    start, stop = ics or (0, n_ic)

    def init(key, eta, eps):
        params, perturb_keys, batch_keys = draw(key, init_params, n_ic, ics)

        def group(e, k_p, k_b, p):
            members = box(k_p, p, e, n_perturb, include_bias)
            return jax.vmap(tmap.init, in_axes=(0, None))(members, k_b)

        per_eps = jax.vmap(jax.vmap(group, in_axes=(None, 0, 0, 0)), in_axes=(0, None, None, None))
        state = jax.vmap(lambda _: per_eps(eps, perturb_keys, batch_keys, params))(eta)
        shape = (eta.shape[0], eps.shape[0], stop - start, n_perturb + 1)
        return EnsembleCarry(state, jnp.zeros(shape, bool), jnp.full(shape, -1, jnp.int32))

    return jax.jit(init)


def ensemble_sharding(n_eta: int, n_ic: int, devices: Sequence[jax.Device] | None = None, ic_axis: int = 2) -> NamedSharding | None:
    """How to split an (η, ..., ic, ...) carry over ``devices`` (η on axis 0, ic on ``ic_axis``).

    Shards the ic axis over as many devices as divide ``n_ic``, or else the η axis;
    returns ``None`` (one device) when no split helps. Results do not depend on it.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    for axis, size in ((ic_axis, n_ic), (0, n_eta)):
        n = max(d for d in range(1, len(devices) + 1) if size % d == 0)
        if n > 1:
            spec = [None] * (axis + 1)
            spec[axis] = "ensemble"
            return NamedSharding(Mesh(np.asarray(devices[:n]), ("ensemble",)), PartitionSpec(*spec))
    return None


def unsplit_on_cpu(devices: Sequence[jax.Device] | None = None) -> list:
    """Devices for the tangent and curvature programs: ``devices`` if given, else every local
    accelerator, or only the first CPU device.

    XLA:CPU host devices (``--xla_force_host_platform_device_count``) stall on these large
    programs when they run side by side; the finite ensemble splits over them well.
    """
    if devices is not None:
        return list(devices)
    local = jax.local_devices()
    return local[:1] if local[0].platform == "cpu" else local


def run_once(jitted: Callable, *args: Any) -> tuple[Any, float]:
    """Compile ``jitted`` for ``args`` with light XLA optimization, run it; return (out, compile seconds).

    For one-shot set-up programs (initial conditions, perturbations): XLA:CPU spends
    seconds optimizing each random-draw site, far more than the program ever runs.
    """
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    try:
        compiled = lowered.compile(compiler_options={"xla_backend_optimization_level": 0})
    except Exception:  # a backend without this option: default optimization
        compiled = lowered.compile()
    return compiled(*args), time.perf_counter() - t0


def eta_hyper(eta: jax.Array, hyper: dict | None) -> dict:
    """Per-η hyperparameters: ``learning_rate`` = η and every fixed value broadcast along η."""
    fixed = {k: jnp.broadcast_to(jnp.asarray(v, eta.dtype), eta.shape) for k, v in (hyper or {}).items()}
    return {**fixed, "learning_rate": eta}


def place(
    carry: PyTree, hyper: dict, n_ic: int, devices: Sequence[jax.Device] | None = None, ic_axis: int = 2
) -> tuple[PyTree, dict]:
    """Put an ensemble carry and its per-η hyper on devices (see :func:`ensemble_sharding`)."""
    n_eta = hyper["learning_rate"].shape[0]
    sharding = ensemble_sharding(n_eta, n_ic, devices, ic_axis)
    if sharding is None:
        return carry, hyper
    eta_spec = PartitionSpec(sharding.spec[0])
    return jax.device_put(carry, sharding), jax.device_put(hyper, NamedSharding(sharding.mesh, eta_spec))


def auto_ic_slice(n_ic: int, per_ic_bytes: float, fraction: float = 0.5, device: jax.Device | None = None) -> int | None:
    """Largest IC slice whose state and records fit in ``fraction`` of the device memory; None if all fit.

    ``per_ic_bytes``: device bytes one initial condition needs (all η, ε, members). Devices
    that report no memory limit (CPU) run everything at once.
    """
    device = device or jax.local_devices()[0]
    try:
        limit = (device.memory_stats() or {}).get("bytes_limit")
    except Exception:  # backends without memory statistics
        limit = None
    if not limit or per_ic_bytes * n_ic <= fraction * limit:
        return None
    return max(1, int(fraction * limit // per_ic_bytes))


def check_grid(eta: ArrayLike, n_ic: int, steps: int, chunk: int) -> np.ndarray:
    """Validate the η grid and run sizes shared by every ensemble; return η as float64."""
    eta = np.atleast_1d(np.asarray(eta, dtype=np.float64))
    check(eta.size > 0, "the eta grid is empty; give at least one learning rate, e.g. eta=0.1")
    check(bool(np.all(eta > 0)), f"learning rates must be > 0; got {eta.tolist()}")
    check(n_ic >= 1, f"n_ic must be >= 1; got {n_ic}")
    check(steps >= 1, f"steps must be >= 1; got {steps}")
    check(chunk >= 1, f"chunk must be >= 1; got {chunk}")
    return eta


def drive(
    one: Callable,
    n_axes: int,
    carry: PyTree,
    hyper: dict,
    steps: int,
    chunk: int,
    progress: bool,
    desc: str,
    checkpoint: str | os.PathLike | None = None,
    block: int | str | None = "auto",
) -> tuple[PyTree, dict[str, np.ndarray], float, float]:
    """Advance every group of ``carry`` by ``steps`` in compiled chunks; gather per-step records on host.

    ``one(carry_g, hyper_g) -> (carry_g, record_g)`` advances one group by one step; the
    first ``n_axes`` axes of every carry leaf index groups (η first, as ``hyper``'s). Each
    chunk is one :func:`gdchaos.engine.programs.group_scan` program, compiled once per distinct
    length and input signature (ahead of time, so compile and run times are separate),
    split over the devices the carry lives on, in blocks of ``block`` groups
    (``"auto"``: :func:`gdchaos.engine.programs.choose_block`). The only host transfer is one
    per chunk.

    With ``checkpoint`` (a directory, see :class:`gdchaos.engine.checkpoint.Checkpoint`) every
    finished chunk is saved atomically, and a run started on a directory that holds
    finished chunks continues after the last of them: the results are bitwise those
    of an uninterrupted run.

    Returns ``(carry, records with time as the last axis, compile_seconds, run_seconds)``.
    """
    chunk = min(chunk, steps)
    lengths = [chunk] * (steps // chunk) + ([steps % chunk] if steps % chunk else [])
    pieces: list[dict[str, np.ndarray]] = []
    store = None
    if checkpoint is not None:
        store = Checkpoint(checkpoint)
        carry, pieces = store.restore(carry)
        done = [next(iter(p.values())).shape[0] for p in pieces]
        store.require(done == lengths[: len(done)], f"its {len(done)} chunks do not match steps={steps}, chunk={chunk}")
    if block == "auto":
        block = programs.choose_block(one, carry, hyper, n_axes)
    sharding = programs.carry_sharding(carry)
    compile_seconds, compiled = 0.0, {}
    for length in sorted(set(lengths[len(pieces):])):
        advance = programs.group_scan(one, length, n_axes, block, sharding)
        compiled[length], seconds = programs.compile_program(advance, carry, hyper, donate_argnums=(0,))
        compile_seconds += seconds
    t0 = time.perf_counter()
    with tqdm(total=steps, initial=sum(lengths[: len(pieces)]), desc=desc, unit="step", disable=not progress) as bar:
        for index in range(len(pieces), len(lengths)):
            carry, rec = compiled[lengths[index]](carry, hyper)
            pieces.append(jax.device_get(rec))
            if store is not None:
                store.save(index, carry, pieces[-1])
            bar.update(lengths[index])
    run_seconds = time.perf_counter() - t0
    records = {k: np.moveaxis(np.concatenate([p[k] for p in pieces]), 0, -1) for k in pieces[0]}
    return carry, records, compile_seconds, run_seconds


def check_perturbation(
    eps: ArrayLike, n_perturb: int, distance: str, params: PyTree | None = None, include_bias: bool = False
) -> np.ndarray:
    """Validate the ε grid, member count and distance of a perturbed ensemble; return ε as float64.

    With ``params`` (arrays or the shapes of ``jax.eval_shape(init_params, key)``), also
    check that every perturbed leaf's own dtype resolves ε (:func:`gdchaos.core.perturb.require_resolvable`).
    """
    eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    check(eps.size > 0 and bool(np.all(eps > 0)), f"eps must be > 0; got {eps.tolist()}")
    check(bool(np.all(np.isfinite(eps))), f"eps must be finite; got {eps.tolist()}")
    check(n_perturb >= 1, f"n_perturb must be >= 1; got {n_perturb}")
    check(distance in DISTANCES, f"unknown distance {distance!r}; choose one of {sorted(DISTANCES)}")
    if params is not None:
        require_resolvable(eps, params, include_bias)
    return eps


def advance(tmap: TrainingMap, carry: EnsembleCarry, hyper: dict, *, n_ic: int, steps: int, observe: Callable | None = None,
            distance: str = "l1", chunk: int = 100, progress: bool = True, desc: str = "training ensemble",
            devices: Sequence[jax.Device] | None = None, checkpoint: str | os.PathLike | None = None,
            block: int | str | None = "auto") -> tuple[EnsembleCarry, dict[str, np.ndarray], float, float]:
    """Place an (η, ε, ic, member) carry on devices and run its member dynamics for ``steps`` updates.

    The stepping of :func:`run` from a given carry (e.g. trained states, see
    :func:`gdchaos.analyses.weights.post_learning`). Returns ``(carry, records, compile_seconds, run_seconds)``
    as :func:`drive`.
    """
    carry, hyper = place(carry, hyper, n_ic, devices, ic_axis=2)
    return drive(group_step(tmap, observe, distance), 3, carry, hyper, steps, chunk, progress, desc, checkpoint, block)


def run(
    tmap: TrainingMap,
    init_params: Callable[[jax.Array], object],
    *,
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
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    checkpoint: str | os.PathLike | None = None,
    ic_slice: int | None = None,
    block: int | str | None = "auto",
) -> EnsembleResult:
    """Run the (η, ε, ic, member) ensemble of ``tmap`` for ``steps`` updates.

    Args:
        tmap: training map; ``hyper["learning_rate"]`` is set to each η.
        init_params: ``init_params(key) -> params`` draws one initial condition.
        eta: learning rates, shape ``(n_eta,)``.
        eps: perturbation sizes, shape ``(n_eps,)``.
        n_ic: initial conditions per (η, ε); the same draws are used for every η and ε.
        n_perturb: perturbed members per initial condition (member 0 is the reference).
        steps: number of updates T.
        key: PRNG key for initial conditions, perturbations and mini-batches.
        observe: ``observe(params) -> {name: scalar}`` recorded every step (e.g. test accuracy).
        hyper: further fixed hyperparameters (e.g. ``{"l2": 1e-3}``).
        include_bias: perturb biases too.
        distance: ``"l1"`` (default, as in the papers) or ``"l2"``.
        chunk: steps per compiled scan; the progress bar advances per chunk.
        progress: show a progress bar.
        devices: devices to split the ensemble over (default: all local devices;
            see :func:`ensemble_sharding`). On CPU, expose one device per core with
            ``XLA_FLAGS=--xla_force_host_platform_device_count=N``.
        checkpoint: directory for chunk checkpoints; a run on a directory holding some
            continues from them (see :func:`drive`).
        ic_slice: run the initial conditions in slices of this many, one after another
            (memory: only one slice's state and records live on the device at a time).
            The draws, and the results up to roundoff, are those of the whole run.
        block: (η, ε, ic) groups advanced together through each chunk (see
            :mod:`gdchaos.engine.programs`): ``"auto"`` sizes blocks to the CPU cache and uses one
            block on GPU/TPU; ``None``: one block; an integer: that many groups.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from gdchaos import data, models, maps, losses
        >>> ds = data.iris()
        >>> net = models.mlp((4, 10, 3))
        >>> tmap = maps.gd(maps.supervised_loss(net.apply, losses.cross_entropy), ds.x_train, ds.y_train)
        >>> res = run(tmap, net.init, eta=[0.1, 1.0], eps=[1e-3], n_ic=2, n_perturb=3,
        ...           steps=20, key=jax.random.key(0), progress=False)
        >>> res.records["distance"].shape
        (2, 1, 2, 4, 20)
    """
    eta = check_grid(eta, n_ic, steps, chunk)
    eps = check_perturbation(eps, n_perturb, distance, jax.eval_shape(init_params, key), include_bias)

    dtype = jnp.result_type(float)
    eta_dev, eps_dev = jnp.asarray(eta, dtype), jnp.asarray(eps, dtype)
    size = n_ic if ic_slice is None else int(ic_slice)
    check(size >= 1, f"ic_slice must be >= 1; got {ic_slice}")
    slices = [(a, min(a + size, n_ic)) for a in range(0, n_ic, size)]
    parts, seconds = [], [0.0, 0.0]
    for ics in slices:
        whole = len(slices) == 1
        carry, init_seconds = run_once(
            _compiled_init(tmap, init_params, n_ic, n_perturb, include_bias, None if whole else ics), key, eta_dev, eps_dev
        )
        where = checkpoint if whole or checkpoint is None else os.path.join(checkpoint, f"ics_{ics[0]}_{ics[1]}")
        desc = "training ensemble" if whole else f"training ensemble, ICs {ics[0]}–{ics[1] - 1} of {n_ic}"
        carry, records, compile_seconds, run_seconds = advance(
            tmap, carry, eta_hyper(eta_dev, hyper), n_ic=ics[1] - ics[0], steps=steps, observe=observe,
            distance=distance, chunk=chunk, progress=progress, desc=desc, devices=devices, checkpoint=where,
            block=block,
        )
        parts.append((records, np.asarray(carry.dead), np.asarray(carry.dead_at), carry if whole else jax.device_get(carry)))
        seconds[0] += init_seconds + compile_seconds
        seconds[1] += run_seconds
        del carry
    join = lambda arrays: arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=2)
    join_any = lambda *arrays: (jnp.concatenate(arrays, axis=2) if jax.dtypes.issubdtype(arrays[0].dtype, jax.dtypes.prng_key)
                                else join(arrays))
    return EnsembleResult(
        eta=eta,
        eps=eps,
        records={k: join([p[0][k] for p in parts]) for k in parts[0][0]},
        diverged=join([p[1] for p in parts]),
        diverged_at=join([p[2] for p in parts]),
        final_state=jax.tree.map(join_any, *[p[3] for p in parts]),
        compile_seconds=seconds[0],
        run_seconds=seconds[1],
    )
