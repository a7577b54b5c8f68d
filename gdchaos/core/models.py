"""Models as pure ``(init, apply)`` pairs over plain-dict parameter pytrees.

``init(key) -> params`` and ``apply(params, x) -> logits``. Parameters are nested
dicts ``{"layer0": {"kernel": (n_in, n_out), "bias": (n_out,)}, ...}``; leaves named
``bias`` are biases (perturbations may skip them). Both functions are pure, so
``jax.vmap(model.apply, (0, None))`` evaluates a whole ensemble of parameter sets.

Architectures:
    :func:`mlp`: fully connected, ``sizes = (n_in, h1, ..., n_out)``.
    :func:`cnn`: [conv 3×3 "SAME" → activation → 2×2 max-pool]* → dense → logits.

Init schemes (fan_in = inputs per output unit; k·k·c_in for a k×k convolution):
    normal:  W ~ N(0, weight_std²), b = 0 (the papers' default, weight_std = 1).
    fan_in:  W ~ N(0, weight_std²/fan_in), b = 0 (mean-field scaling: weight_std is the
             J of W_ij = J z_ij/√N in the edge-of-chaos analysis).
    lecun:   W ~ N(0, 1/fan_in) truncated (flax default), b = 0.
    torch:   W, b ~ U(-1/√fan_in, 1/√fan_in) (PyTorch ``nn.Linear``/``nn.Conv2d`` default).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from gdchaos.core.errors import check
from gdchaos.core.precision import default_float
from gdchaos.core.tree import count_params as count_params  # re-exported: models.count_params is public

ACTIVATIONS: dict[str, Callable] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda x: x,
}
INIT_SCHEMES = ("normal", "fan_in", "lecun", "torch")


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
    if scheme == "fan_in":
        return nn.initializers.normal(stddev=weight_std / float(fan_in) ** 0.5), nn.initializers.zeros
    if scheme == "lecun":
        return nn.initializers.lecun_normal(), nn.initializers.zeros
    return _uniform_fan_in(fan_in), _uniform_fan_in(fan_in)


class _MLP(nn.Module):
    sizes: tuple[int, ...]
    activation: str
    init_scheme: str
    weight_std: float
    use_bias: bool
    output_bias: bool
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
                use_bias=self.output_bias if i == n_layers - 1 else self.use_bias,
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
    output_bias: bool | None = None,
    dtype: DTypeLike | None = None,
) -> Model:
    """Fully connected network with layer sizes ``sizes = (n_in, h1, ..., n_out)``.

    h_0 = x (flattened), h_l = σ(h_{l-1} W_l + b_l) for hidden layers, logits = h_{L-1} W_L + b_L.
    ``use_bias`` switches the hidden biases, ``output_bias`` the output bias (default:
    same as ``use_bias``). Parameters are created in ``dtype`` (default: float64 if
    enabled, else float32).

    The square tanh layer of the edge-of-chaos analysis (784-784-10, hidden
    h = tanh(W x) without bias, W_ij ~ N(0, J²/N) with J = 0.5) is
    ``mlp((784, 784, 10), "tanh", init="fan_in", weight_std=0.5, use_bias=False, output_bias=True)``.

    Example:
        >>> import jax
        >>> net = mlp((4, 10, 3), activation="sigmoid")
        >>> params = net.init(jax.random.key(0))
        >>> net.apply(params, jax.numpy.ones((2, 4))).shape
        (2, 3)
        >>> square = mlp((16, 16, 3), "tanh", init="fan_in", weight_std=0.5, use_bias=False, output_bias=True)
        >>> shapes = jax.eval_shape(square.init, jax.random.key(0))
        >>> sorted(shapes["layer0"]), sorted(shapes["layer1"]), count_params(shapes)
        (['kernel'], ['bias', 'kernel'], 307)
    """
    sizes = tuple(int(s) for s in sizes)
    check(len(sizes) >= 2, f"an MLP needs at least input and output sizes; got sizes={list(sizes)}")
    check(all(s > 0 for s in sizes), f"MLP layer sizes must be positive; got {list(sizes)}")
    _check_common(activation, init, weight_std)
    output_bias = use_bias if output_bias is None else output_bias
    module = _MLP(sizes, activation, init, float(weight_std), bool(use_bias), bool(output_bias), dtype or default_float())
    dummy = jnp.zeros((1, sizes[0]), module.param_dtype)

    def init_fn(key):
        return module.init(key, dummy)["params"]

    def apply_fn(params, x):
        return module.apply({"params": params}, x)

    return Model(init_fn, apply_fn)


def _check_common(activation: str, init: str, weight_std: float) -> None:
    check(
        activation in ACTIVATIONS,
        f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}",
    )
    check(init in INIT_SCHEMES, f"unknown init scheme {init!r}; choose one of {list(INIT_SCHEMES)}")
    check(weight_std > 0, f"weight_std must be > 0; got {weight_std}")


def conv2d_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """2-D cross-correlation with "SAME" zero padding, as ``lax.conv`` in NHWC/HWIO layout.

    y[n, i, j, o] = Σ_{a, b, c} x_pad[n, i + a, j + b, c] · kernel[a, b, c, o], with
    (k_h − 1)//2 zeros before and the rest after each spatial axis. Built from shifted
    slices and one matrix product, which XLA compiles and batches (``vmap`` over
    kernels) much faster than a grouped convolution.

    Example:
        >>> import jax.numpy as jnp
        >>> conv2d_same(jnp.ones((1, 3, 3, 1)), jnp.ones((3, 3, 1, 1)))[0, :, :, 0].tolist()
        [[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]
    """
    kh, kw = kernel.shape[:2]
    height, width = x.shape[-3], x.shape[-2]
    pad = [(0, 0)] * (x.ndim - 3) + [((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)]
    xp = jnp.pad(x, pad)
    patches = jnp.concatenate(
        [xp[..., a : a + height, b : b + width, :] for a in range(kh) for b in range(kw)], axis=-1
    )
    return patches @ kernel.reshape(-1, kernel.shape[-1])


def max_pool(x: jax.Array, p: int) -> jax.Array:
    """Non-overlapping p×p max pooling of ``(..., H, W, C)``; rows/columns beyond a multiple of p are dropped.

    Example:
        >>> import jax.numpy as jnp
        >>> max_pool(jnp.arange(16.0).reshape(1, 4, 4, 1), 2)[0, :, :, 0].tolist()
        [[5.0, 7.0], [13.0, 15.0]]
    """
    height, width, c = x.shape[-3:]
    x = x[..., : height // p * p, : width // p * p, :]
    x = x.reshape(*x.shape[:-3], height // p, p, width // p, p, c)
    return x.max(axis=(-4, -2))


class _Conv(nn.Module):
    features: int
    kernel_size: int
    use_bias: bool
    kernel_init: Callable
    bias_init: Callable
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), self.param_dtype)
        y = conv2d_same(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return y


class _CNN(nn.Module):
    input_shape: tuple[int, ...]
    channels: tuple[int, ...]
    hidden: tuple[int, ...]
    n_out: int
    kernel_size: int
    pool: int
    activation: str
    init_scheme: str
    weight_std: float
    use_bias: bool
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        x = x.reshape(-1, *self.input_shape)
        k = self.kernel_size
        for i, c in enumerate(self.channels):
            kernel_init, bias_init = _initializers(self.init_scheme, k * k * x.shape[-1], self.weight_std)
            x = _Conv(c, k, self.use_bias, kernel_init, bias_init, self.param_dtype, name=f"conv{i}")(x)
            x = act(x)
            if self.pool > 1:
                x = max_pool(x, self.pool)
        x = x.reshape(x.shape[0], -1)
        widths = (*self.hidden, self.n_out)
        for i, width in enumerate(widths):
            kernel_init, bias_init = _initializers(self.init_scheme, x.shape[-1], self.weight_std)
            x = nn.Dense(
                width,
                use_bias=self.use_bias,
                kernel_init=kernel_init,
                bias_init=bias_init,
                param_dtype=self.param_dtype,
                name=f"dense{i}",
            )(x)
            if i < len(widths) - 1:
                x = act(x)
        return x


def cnn(
    input_shape: Sequence[int],
    n_out: int,
    channels: Sequence[int] = (8, 16),
    hidden: Sequence[int] = (),
    kernel_size: int = 3,
    pool: int = 2,
    activation: str = "relu",
    init: str = "normal",
    weight_std: float = 0.01,
    use_bias: bool = True,
    dtype: DTypeLike | None = None,
) -> Model:
    """Convolutional network: per entry c of ``channels``, h ← maxpool_p(σ(conv_{k×k, SAME}(h) + b)).

    Then the feature map is flattened, passed through optional dense ``hidden`` layers
    (with σ) and a dense output layer giving logits. Inputs are ``(n, H, W, C)``
    images (flat ``(n, H·W·C)`` inputs are reshaped to ``input_shape``). Each pool
    divides H and W by ``pool`` (rounding down).

    The defaults are the MNIST CNN of jimenez-gonzalez2026 (App. B): two 3×3 conv layers
    with 8 and 16 kernels, padding 1 ("SAME"), each followed by 2×2 max pooling, ReLU,
    a dense output; on 28×28×1 inputs 80 + 1168 + 7850 = 9098 parameters, as in the
    paper. The paper's "weights initialized from N(0, 0.01)" is read as standard
    deviation 0.01 (the ``normal_(mean=0, std=0.01)`` convention of PyTorch code);
    it is applied to every kernel, biases start at zero. For the variance reading
    use ``weight_std=0.1``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> net = cnn((28, 28, 1), 10)
        >>> shapes = jax.eval_shape(net.init, jax.random.key(0))
        >>> count_params(shapes), shapes["conv1"]["kernel"].shape
        (9098, (3, 3, 8, 16))
        >>> jax.eval_shape(net.apply, shapes, jnp.zeros((2, 28, 28, 1))).shape
        (2, 10)
    """
    input_shape = tuple(int(s) for s in input_shape)
    channels = tuple(int(c) for c in channels)
    hidden = tuple(int(h) for h in hidden)
    check(
        len(input_shape) == 3 and all(s > 0 for s in input_shape),
        f"a CNN needs image inputs of shape (height, width, channels); got input_shape={list(input_shape)}. "
        "Use image data (mnist, fashion_mnist, cifar10, digits, or synthetic with feature_shape) or an MLP",
    )
    check(int(n_out) > 0, f"n_out must be positive; got {n_out}")
    check(len(channels) >= 1 and all(c > 0 for c in channels), f"CNN channels must be positive counts; got {list(channels)}")
    check(all(h > 0 for h in hidden), f"CNN hidden dense widths must be positive; got {list(hidden)}")
    check(int(kernel_size) >= 1, f"kernel_size must be >= 1; got {kernel_size}")
    check(int(pool) >= 1, f"pool must be >= 1 (1 = no pooling); got {pool}")
    side = min(input_shape[:2]) // int(pool) ** len(channels)
    check(
        side >= 1,
        f"{len(channels)} poolings by {pool} shrink a {input_shape[0]}x{input_shape[1]} input to nothing; "
        "use fewer conv layers, a smaller pool, or larger images",
    )
    _check_common(activation, init, weight_std)
    module = _CNN(
        input_shape, channels, hidden, int(n_out), int(kernel_size), int(pool), activation, init,
        float(weight_std), bool(use_bias), dtype or default_float(),
    )
    dummy = jnp.zeros((1, *input_shape), module.param_dtype)

    def init_fn(key):
        return module.init(key, dummy)["params"]

    def apply_fn(params, x):
        return module.apply({"params": params}, x)

    return Model(init_fn, apply_fn)
