"""Chunk checkpoints of a driven scan: a killed run resumes where it stopped, bit for bit.

A checkpoint directory holds, for a scan run in chunks (see
:func:`gdchaos.engine.ensemble.drive`):

    records_00000.npz, records_00001.npz, ...   per-chunk records (time leading)
    state.npz                                    the carry after the last finished chunk
                                                 and ``done``, the number of finished chunks

Every file is written to a temporary name, flushed to disk and renamed into place,
so a kill at any instant leaves either the old or the new file, never a torn one.
``state.npz`` is renamed last: it names how many chunk files are valid. Resuming
restores the carry onto the devices and shardings of a freshly initialized carry
(the template), so the remaining chunks run exactly the program an uninterrupted
run would, on exactly the same inputs.

Example:
    >>> import tempfile, jax.numpy as jnp
    >>> ckpt = Checkpoint(tempfile.mkdtemp())
    >>> ckpt.save(0, {"w": jnp.ones(2)}, {"loss": jnp.zeros((5, 2))})
    >>> carry, pieces = ckpt.restore({"w": jnp.zeros(2)})
    >>> carry["w"].tolist(), len(pieces)
    ([1.0, 1.0], 1)
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from jax.typing import ArrayLike

from gdchaos.core.errors import ConfigError
from gdchaos.core.files import atomic_write
from gdchaos.core.tree import PyTree

STATE_FILE = "state.npz"


def _is_key(leaf) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", np.float64), jax.dtypes.prng_key)


def _to_host(leaf) -> np.ndarray:
    return np.asarray(jax.device_get(jax.random.key_data(leaf) if _is_key(leaf) else leaf))


class Checkpoint:
    """Chunk checkpoints in ``directory`` (created on the first save)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _records_path(self, index: int) -> Path:
        return self.directory / f"records_{index:05d}.npz"

    def save(self, index: int, carry: PyTree, records: dict[str, ArrayLike]) -> None:
        """Record that chunk ``index`` finished with ``records`` and left ``carry``."""
        records = {k: np.asarray(v) for k, v in records.items()}
        atomic_write(self._records_path(index), lambda f: np.savez(f, **records))
        leaves = {f"leaf_{i:04d}": _to_host(leaf) for i, leaf in enumerate(jax.tree.leaves(carry))}
        atomic_write(self.directory / STATE_FILE, lambda f: np.savez(f, done=np.int64(index + 1), **leaves))

    def restore(self, template: PyTree) -> tuple[PyTree, list[dict[str, np.ndarray]]]:
        """``(carry, [records of each finished chunk])``, or ``(template, [])`` if nothing was saved.

        ``template`` is a freshly initialized carry: it fixes the tree structure, dtypes,
        key implementations and device placement of the restored one. A checkpoint that
        does not fit it raises :class:`~gdchaos.core.errors.ConfigError`.
        """
        state_path = self.directory / STATE_FILE
        if not state_path.exists():
            return template, []
        leaves, treedef = jax.tree.flatten(template)
        with np.load(state_path) as state:
            done = int(state["done"])
            saved = [state[f"leaf_{i:04d}"] for i in range(len(leaves))] if len(state.files) == len(leaves) + 1 else None
        self.require(saved is not None and all(_to_host_shape(t) == s.shape for t, s in zip(leaves, saved)),
                    "its arrays do not match this run's shapes")
        restored = []
        for t, s in zip(leaves, saved):
            value = jax.random.wrap_key_data(s, impl=jax.random.key_impl(t)) if _is_key(t) else s.astype(t.dtype)
            sharding = getattr(t, "sharding", None)
            restored.append(jax.device_put(value, sharding) if sharding is not None else value)
        pieces = []
        for i in range(done):
            path = self._records_path(i)
            self.require(path.exists(), f"{path.name} is missing")
            with np.load(path) as rec:
                pieces.append({k: rec[k] for k in rec.files})
        return jax.tree.unflatten(treedef, restored), pieces

    def require(self, ok: bool, why: str) -> None:
        """Raise :class:`~gdchaos.core.errors.ConfigError` (this checkpoint cannot be resumed: ``why``) unless ``ok``."""
        if not ok:
            raise ConfigError(
                f"cannot resume from {self.directory}: {why}; delete that directory to start over"
            )


def _to_host_shape(leaf) -> tuple:
    return tuple(np.shape(jax.random.key_data(leaf) if _is_key(leaf) else leaf))
