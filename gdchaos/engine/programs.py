r"""Compiled ensemble programs: group steps scanned in time, in cache-sized blocks, on devices.

An ensemble carry has leading *group* axes (η first, then e.g. ε and ic). Every
group advances on its own by ``one(carry_g, hyper_η) -> (carry_g, record_g)``;
:func:`group_scan` runs ``length`` such steps for all groups as one program.

How the groups share the hardware is a performance choice with no effect on the
mathematics (results agree to roundoff):

* ``block=None``: one ``vmap`` over every group per step. Best on GPU/TPU, which
  want the widest arrays.
* ``block=B``: groups are taken B at a time, and each block runs all ``length``
  steps before the next starts (``lax.map`` over blocks of a ``lax.scan`` of the
  vmapped step). A CPU then keeps the block's state and intermediates in cache
  instead of streaming the whole ensemble through memory every step: on Iris
  (6000 members) the full-width step is memory-bound.
  :func:`choose_block` sizes B from the step's intermediates.
* ``sharding``: each device runs its shard of the groups (``jax.shard_map``).

:func:`compile_program` compiles ahead of time, once per function and input
signature, and passes the arrays the program closes over (training and test
data) as arguments: embedded as XLA constants, a 60000-sample training set costs
seconds of compile time and a second copy in memory.

Every cache here is bounded (:data:`CACHE_SIZE` entries, least recently used out
first). Their keys are step functions, which close over a training map and so over
its training data: an unbounded cache would keep every dataset a process ever
trained on alive. Once a function has left these caches, nothing here refers to it
or to its data (JAX's own trace and compile caches are bounded by JAX, see
:func:`jax.clear_caches`).
"""

from __future__ import annotations

import collections
import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.extend.core import Jaxpr, jaxpr_as_fun, jaxprs_in_params
from jax.sharding import NamedSharding, PartitionSpec

from gdchaos.core.tree import PyTree

CACHE_SIZE = 16
"""Entries each cache of this module keeps (:func:`group_scan`, :func:`choose_block`, :func:`compile_program`)."""

WORKING_SET_BYTES = 32 * 2**20
"""Target of :func:`choose_block`: bytes of step intermediates per block (about a CPU's last-level cache)."""


def _vmap_groups(one: Callable, n_axes: int) -> Callable:
    """``one`` over ``n_axes`` leading group axes; hyper varies along the first (η) only."""
    f = one
    for _ in range(n_axes - 1):
        f = jax.vmap(f, in_axes=(0, None))
    return jax.vmap(f, in_axes=(0, 0))


def _flat_groups(carry, hyper, n_axes: int):
    lead = jax.tree.leaves(carry)[0].shape[:n_axes]
    n = math.prod(lead)
    flat = jax.tree.map(lambda a: a.reshape((n,) + a.shape[n_axes:]), carry)

    def per_group(v):  # (n_eta, ...) -> (n_groups, ...)
        v = v.reshape(v.shape[:1] + (1,) * (n_axes - 1) + v.shape[1:])
        return jnp.broadcast_to(v, lead + v.shape[n_axes:]).reshape((n,) + v.shape[n_axes:])

    return lead, flat, jax.tree.map(per_group, hyper)


@functools.lru_cache(maxsize=CACHE_SIZE)
def group_scan(one: Callable, length: int, n_axes: int, block: int | None = None, sharding: NamedSharding | None = None) -> Callable:
    """``advance(carry, hyper) -> (carry, records)``: ``length`` steps of ``one`` for every group.

    Args:
        one: ``one(carry_g, hyper_g) -> (carry_g, record_g)`` for a single group.
        length: steps.
        n_axes: leading group axes of every carry leaf (η first); ``hyper`` leaves are ``(n_eta, ...)``.
        block: groups per block (see the module docstring); ``None``: all at once.
        sharding: a :class:`~jax.sharding.NamedSharding` of the carry's leading axes; each
            device then runs its own groups (``hyper`` sharded along η as the carry is).

    ``records`` leaves are ``(length, *group axes, ...)``.

    Example:
        >>> import jax.numpy as jnp
        >>> one = lambda x, h: (h["a"] * x, x)  # x_{t+1} = a x_t, record x_t
        >>> advance = group_scan(one, 3, n_axes=2, block=2)
        >>> x, rec = advance(jnp.ones((2, 3)), {"a": jnp.array([2.0, 3.0])})
        >>> x[:, 0].tolist(), rec.shape
        ([8.0, 27.0], (3, 2, 3))
    """
    vmapped = _vmap_groups(one, n_axes)

    def whole(carry, hyper):
        return jax.lax.scan(lambda c, _: vmapped(c, hyper), carry, None, length=length)

    def blocked(carry, hyper):
        lead, flat, flat_hyper = _flat_groups(carry, hyper, n_axes)

        def run_group(args):
            c, h = args
            return jax.lax.scan(lambda c, _: one(c, h), c, None, length=length)

        new, rec = jax.lax.map(run_group, (flat, flat_hyper), batch_size=min(block, math.prod(lead)))
        new = jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), new)
        rec = jax.tree.map(lambda a: jnp.moveaxis(a.reshape(lead + a.shape[1:]), n_axes, 0), rec)
        return new, rec

    local = whole if block is None else blocked
    if sharding is None:
        return local
    spec = sharding.spec
    return jax.shard_map(local, mesh=sharding.mesh, in_specs=(spec, PartitionSpec(spec[0] if spec else None)),
                         out_specs=(spec, PartitionSpec(None, *spec)), check_vma=False)


def intermediate_bytes(jaxpr: Jaxpr) -> int:
    """Bytes of every value a jaxpr computes, sub-jaxprs (loop bodies, calls) included once."""
    total = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            aval = var.aval
            if hasattr(aval, "shape") and not jax.dtypes.issubdtype(aval.dtype, jax.dtypes.prng_key):
                total += math.prod(aval.shape) * aval.dtype.itemsize
        for sub in jaxprs_in_params(eqn.params):
            total += intermediate_bytes(getattr(sub, "jaxpr", sub))
    return total


def _abstract(tree, drop: int):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[drop:], a.dtype), tree)


_BLOCKS: collections.OrderedDict = collections.OrderedDict()


def _remember(cache: collections.OrderedDict, key, value):
    """Put ``key: value`` in ``cache``, dropping the least recently used entries beyond :data:`CACHE_SIZE`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def choose_block(one: Callable, carry: PyTree, hyper: dict, n_axes: int, platform: str | None = None) -> int | None:
    """Groups per block for :func:`group_scan` on this backend.

    GPU/TPU: ``None`` (every group at once). CPU: as many groups as fit
    :data:`WORKING_SET_BYTES` of step intermediates (counted from the traced step, once
    per step function and shape), at least 1; ``None`` when the whole ensemble fits.
    """
    platform = platform or next(iter(jax.tree.leaves(carry)[0].devices())).platform
    if platform != "cpu":
        return None
    group, h = _abstract(carry, n_axes), _abstract(hyper, 1)
    key = (one, jax.tree.structure((group, h)), tuple((s.shape, str(s.dtype)) for s in jax.tree.leaves((group, h))))
    per_group = _BLOCKS[key] if key in _BLOCKS else max(1, intermediate_bytes(jax.make_jaxpr(one)(group, h).jaxpr))
    _remember(_BLOCKS, key, per_group)
    n_groups = math.prod(jax.tree.leaves(carry)[0].shape[:n_axes])
    block = max(1, WORKING_SET_BYTES // per_group)
    return None if block >= n_groups else int(block)


def carry_sharding(carry: PyTree) -> NamedSharding | None:
    """The carry's :class:`NamedSharding` when it is split over several devices, else None."""
    sharding = getattr(jax.tree.leaves(carry)[0], "sharding", None)
    if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1:
        return sharding
    return None


def _place_like(arrays: list, leaf) -> list:
    """``arrays`` on ``leaf``'s devices: its device, or replicated over its mesh."""
    sharding = getattr(leaf, "sharding", None)
    if not isinstance(sharding, NamedSharding):
        return jax.device_put(arrays, sharding) if sharding is not None else arrays
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    # through the host: a one-device array does not reshard onto a mesh in one step
    host = [a if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else jax.device_get(a) for a in arrays]
    return jax.device_put(host, replicated)


_PROGRAMS: collections.OrderedDict = collections.OrderedDict()


def _signature(args) -> tuple:
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((tuple(leaf.shape), str(leaf.dtype), getattr(leaf, "sharding", None)) for leaf in leaves)


def compile_program(fn: Callable, *args: Any, donate_argnums: tuple = ()) -> tuple[Callable, float]:
    """Compile ``jax.jit(fn)`` for ``args`` (ahead of time); return ``(call, compile_seconds)``.

    Arrays ``fn`` closes over become arguments of the compiled program, placed like
    ``args`` (replicated over their mesh). Programs are cached per ``fn`` and the
    shapes, dtypes and shardings of ``args``: a second call with new values of the
    same shapes neither traces nor compiles (compile_seconds 0). The cache keeps the
    last :data:`CACHE_SIZE` programs; an evicted program releases ``fn`` and the
    arrays it closed over.

    Example:
        >>> import jax.numpy as jnp
        >>> data = jnp.arange(3.0)  # closed over: an argument of the program, not a constant
        >>> call, seconds = compile_program(lambda w: w * data, jnp.asarray(2.0))
        >>> call(jnp.asarray(2.0)).tolist(), len(call.consts)
        ([0.0, 2.0, 4.0], 1)
    """
    key = (fn, donate_argnums, _signature(args))
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key], 0.0
    t0 = time.perf_counter()
    traced = jax.jit(fn).trace(*args)
    closed, out_tree = traced.jaxpr, traced.out_tree
    consts = list(closed.consts)

    def with_consts(consts, *args):
        out = jaxpr_as_fun(closed.replace(consts=consts))(*jax.tree.leaves(args))
        return jax.tree.unflatten(out_tree, out)

    consts = _place_like(consts, jax.tree.leaves(args)[0])
    compiled = (
        jax.jit(with_consts, donate_argnums=tuple(i + 1 for i in donate_argnums)).lower(consts, *args).compile()
    )

    def call(*args):
        return compiled(consts, *args)

    call.compiled, call.consts = compiled, consts
    return _remember(_PROGRAMS, key, call), time.perf_counter() - t0
