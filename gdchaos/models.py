"""Models as pure ``(init, apply)`` pairs over plain-dict parameter pytrees.

``init(key) -> params`` and ``apply(params, x) -> logits``. Parameters are nested
dicts ``{"layer0": {"kernel": (n_in, n_out), "bias": (n_out,)}, ...}``; leaves named
``bias`` are biases (perturbations may skip them).

Init schemes:
    normal: W ~ N(0, weight_std²), b = 0 (the papers' default, weight_std = 1).
    lecun:  W ~ N(0, 1/fan_in) truncated (flax default), b = 0.
    torch:  W, b ~ U(-1/√fan_in, 1/√fan_in) (PyTorch ``nn.Linear`` default).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdchaos.errors import check
from gdchaos.numerics import default_float

ACTIVATIONS: dict[str, Callable] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda x: x,
}
INIT_SCHEMES = ("normal", "lecun", "torch")


class Model(NamedTuple):
    """A pure model: ``init(key) -> params``, ``apply(params, x) -> logits``."""

    init: Callable
    apply: Callable


def _uniform_fan_in(fan_in: int):
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _initializers(scheme: str, fan_in: int, weight_std: float):
    if scheme == "normal":
        return nn.initializers.normal(stddev=weight_std), nn.initializers.zeros
    if scheme == "lecun":
        return nn.initializers.lecun_normal(), nn.initializers.zeros
    return _uniform_fan_in(fan_in), _uniform_fan_in(fan_in)


class _MLP(nn.Module):
    sizes: tuple[int, ...]
    activation: str
    init_scheme: str
    weight_std: float
    use_bias: bool
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        x = x.reshape(x.shape[0], -1)
        n_layers = len(self.sizes) - 1
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            kernel_init, bias_init = _initializers(self.init_scheme, fan_in, self.weight_std)
            x = nn.Dense(
                fan_out,
                use_bias=self.use_bias,
                kernel_init=kernel_init,
                bias_init=bias_init,
                param_dtype=self.param_dtype,
                name=f"layer{i}",
            )(x)
            if i < n_layers - 1:
                x = act(x)
        return x


def mlp(
    sizes: Sequence[int],
    activation: str = "sigmoid",
    init: str = "normal",
    weight_std: float = 1.0,
    use_bias: bool = True,
    dtype=None,
) -> Model:
    """Fully connected network with layer sizes ``sizes = (n_in, h1, ..., n_out)``.

    The activation follows every hidden layer; the output is linear (logits).
    Parameters are created in ``dtype`` (default: float64 if enabled, else float32).

    Example:
        >>> import jax
        >>> net = mlp((4, 10, 3), activation="sigmoid")
        >>> params = net.init(jax.random.key(0))
        >>> net.apply(params, jax.numpy.ones((2, 4))).shape
        (2, 3)
    """
    sizes = tuple(int(s) for s in sizes)
    check(len(sizes) >= 2, f"an MLP needs at least input and output sizes; got sizes={list(sizes)}")
    check(all(s > 0 for s in sizes), f"MLP layer sizes must be positive; got {list(sizes)}")
    check(
        activation in ACTIVATIONS,
        f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}",
    )
    check(init in INIT_SCHEMES, f"unknown init scheme {init!r}; choose one of {list(INIT_SCHEMES)}")
    check(weight_std > 0, f"weight_std must be > 0; got {weight_std}")
    module = _MLP(sizes, activation, init, float(weight_std), bool(use_bias), dtype or default_float())
    dummy = jnp.zeros((1, sizes[0]), module.param_dtype)

    def init_fn(key):
        return module.init(key, dummy)["params"]

    def apply_fn(params, x):
        return module.apply({"params": params}, x)

    return Model(init_fn, apply_fn)


def count_params(params) -> int:
    """Number of scalar parameters in a pytree."""
    return sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(params))
