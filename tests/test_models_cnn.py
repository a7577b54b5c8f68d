"""The CNN and the square tanh layer: shapes, parameter counts, init scales, a GD step, vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.core import data

from gdchaos.core import losses

from gdchaos.core import maps

from gdchaos.core import models
from gdchaos.core.errors import ConfigError
from gdchaos.experiments.task import build_model, build_task

from conftest import fast_key


def mnist_cnn():
    return models.cnn((28, 28, 1), 10)


@pytest.fixture(scope="module")
def mnist_cnn_params():
    return jax.jit(mnist_cnn().init)(fast_key(0))


def test_mnist_cnn_layer_shapes_and_parameter_count(mnist_cnn_params):
    p = mnist_cnn_params
    assert sorted(p) == ["conv0", "conv1", "dense0"]
    assert p["conv0"]["kernel"].shape == (3, 3, 1, 8) and p["conv0"]["bias"].shape == (8,)
    assert p["conv1"]["kernel"].shape == (3, 3, 8, 16) and p["conv1"]["bias"].shape == (16,)
    assert p["dense0"]["kernel"].shape == (7 * 7 * 16, 10) and p["dense0"]["bias"].shape == (10,)
    by_hand = (3 * 3 * 1 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (7 * 7 * 16 * 10 + 10)
    assert by_hand == 9098  # the count jimenez-gonzalez2026 reports
    assert models.count_params(p) == by_hand


@pytest.mark.parametrize("shape, count", [
    ((32, 32, 3), (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (8 * 8 * 16 * 10 + 10)),  # CIFAR-10
    ((8, 8, 1), (3 * 3 * 1 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (2 * 2 * 16 * 10 + 10)),  # digits
    ((7, 7, 1), (3 * 3 * 1 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (1 * 1 * 16 * 10 + 10)),  # pools round down
])
def test_cnn_parameter_count_for_other_inputs(shape, count):
    net = models.cnn(shape, 10)
    params = jax.eval_shape(net.init, fast_key(0))
    assert models.count_params(params) == count
    out = jax.eval_shape(net.apply, params, jax.ShapeDtypeStruct((3, *shape), jnp.float64))
    assert out.shape == (3, 10)


def test_cnn_init_std_is_0_01_with_zero_biases(mnist_cnn_params):
    p = mnist_cnn_params
    for layer in ("conv0", "conv1", "dense0"):
        w = np.asarray(p[layer]["kernel"])
        assert w.dtype == np.float64
        assert np.all(np.asarray(p[layer]["bias"]) == 0)
    dense = np.asarray(p["dense0"]["kernel"])  # 7840 draws
    assert dense.std() == pytest.approx(0.01, rel=0.03) and abs(dense.mean()) < 5e-4
    conv1 = np.asarray(p["conv1"]["kernel"])  # 1152 draws
    assert conv1.std() == pytest.approx(0.01, rel=0.08)
    wide = models.cnn((28, 28, 1), 10, weight_std=0.1).init(fast_key(0))
    np.testing.assert_allclose(wide["dense0"]["kernel"], 10 * dense, rtol=1e-12)


def test_cnn_init_schemes_scale_with_fan_in():
    p = jax.jit(models.cnn((8, 8, 1), 10, channels=(64, 64), init="fan_in", weight_std=2.0).init)(fast_key(1))
    conv1 = np.asarray(p["conv1"]["kernel"])  # fan_in = 3·3·64
    assert conv1.std() == pytest.approx(2.0 / np.sqrt(9 * 64), rel=0.03)
    t = jax.jit(models.cnn((8, 8, 1), 10, channels=(64, 64), init="torch").init)(fast_key(1))
    bound = 1 / np.sqrt(9 * 64)
    assert np.abs(np.asarray(t["conv1"]["kernel"])).max() <= bound
    assert np.abs(np.asarray(t["conv1"]["bias"])).max() <= bound and np.any(np.asarray(t["conv1"]["bias"]) != 0)


def reference_cnn(params, x):
    """The same network from XLA's own convolution and window max: conv → ReLU → pool, twice; dense."""
    for layer in ("conv0", "conv1"):
        x = jax.lax.conv_general_dilated(
            x, params[layer]["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jax.nn.relu(x + params[layer]["bias"])
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return x.reshape(x.shape[0], -1) @ params["dense0"]["kernel"] + params["dense0"]["bias"]


def test_cnn_matches_xla_convolution_and_pooling():
    net = models.cnn((10, 10, 2), 4, weight_std=1.0)
    p = jax.jit(net.init)(fast_key(3))
    p = jax.tree.map(lambda b: b + 0.1, p)  # nonzero biases too
    x = jax.random.uniform(fast_key(4), (5, 10, 10, 2))
    apply = jax.jit(net.apply)
    np.testing.assert_allclose(apply(p, x), jax.jit(reference_cnn)(p, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(apply(p, x.reshape(5, -1)), apply(p, x), rtol=0)  # flat input


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_conv2d_same_matches_lax(k):
    x = jax.random.normal(fast_key(5), (2, 6, 7, 3))
    w = jax.random.normal(fast_key(6), (k, k, 3, 4))
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(models.conv2d_same(x, w), ref, rtol=1e-12, atol=1e-12)


def test_square_tanh_layer_has_no_hidden_bias():
    net = models.mlp((784, 784, 10), "tanh", init="fan_in", weight_std=0.5, use_bias=False, output_bias=True)
    p = jax.jit(net.init)(fast_key(0))
    assert sorted(p["layer0"]) == ["kernel"] and sorted(p["layer1"]) == ["bias", "kernel"]
    assert p["layer0"]["kernel"].shape == (784, 784)
    assert models.count_params(p) == 784 * 784 + 784 * 10 + 10
    w = np.asarray(p["layer0"]["kernel"])  # W_ij = J z_ij / √N, J = 0.5
    assert w.std() * np.sqrt(784) == pytest.approx(0.5, rel=0.01)
    x = jax.random.uniform(fast_key(1), (3, 784))
    by_hand = jnp.tanh(x @ p["layer0"]["kernel"]) @ p["layer1"]["kernel"] + p["layer1"]["bias"]
    np.testing.assert_allclose(net.apply(p, x), by_hand, rtol=1e-12)


def test_square_tanh_from_the_model_config():
    model, name = build_model(
        {"kind": "mlp", "hidden": ["input"], "activation": "tanh", "init": "fan_in", "weight_std": 0.5,
         "use_bias": False, "output_bias": True},
        (16, 16, 1),
        10,
    )
    assert name == "mlp-256-256-10-tanh"
    p = model.init(fast_key(0))
    assert "bias" not in p["layer0"] and p["layer0"]["kernel"].shape == (256, 256) and "bias" in p["layer1"]


def digits_images(n=32):
    ds = data.load("digits", images=True)
    return jnp.asarray(ds.x_train[:n]), jnp.asarray(ds.y_train[:n])


def test_gd_step_through_maps_decreases_the_loss():
    x, y = digits_images()
    net = models.cnn((8, 8, 1), 10, weight_std=0.3)
    loss_fn = maps.supervised_loss(net.apply, losses.cross_entropy)
    tmap = maps.gd(loss_fn, x, y)
    state = tmap.init(jax.jit(net.init)(fast_key(0)))
    losses_seen = []
    step = jax.jit(tmap.step)
    for _ in range(3):
        state, info = step(state, {"learning_rate": 0.05})
        losses_seen.append(float(info.loss))
        assert not bool(info.diverged)
    assert losses_seen[2] < losses_seen[1] < losses_seen[0]
    assert int(state.count) == 3


def test_vmap_over_params_matches_members():
    x, _ = digits_images(4)
    net = models.cnn((8, 8, 1), 10, weight_std=0.3)
    keys = jax.random.split(fast_key(2), 3)
    stacked = jax.jit(jax.vmap(net.init))(keys)
    assert stacked["conv1"]["kernel"].shape == (3, 3, 3, 8, 16)
    out = jax.jit(jax.vmap(net.apply, (0, None)))(stacked, x)
    assert out.shape == (3, 4, 10)
    apply = jax.jit(net.apply)
    for i in range(3):
        member = jax.tree.map(lambda leaf: leaf[i], stacked)
        np.testing.assert_allclose(out[i], apply(member, x), rtol=1e-12, atol=1e-14)


def test_build_task_gives_images_to_cnns_and_vectors_to_mlps():
    cnn_task = build_task({"name": "digits"}, {"kind": "cnn"}, {"name": "sgd"})
    assert cnn_task.dataset.x_train.shape[1:] == (8, 8, 1)
    assert cnn_task.name == "digits/cnn-8-16-relu/sgd"
    mlp_task = build_task({"name": "digits"}, {"hidden": [10]}, {"name": "sgd"})
    assert mlp_task.dataset.x_train.shape[1:] == (64,)
    with pytest.raises(ConfigError, match="a CNN cannot read it"):
        build_task({"name": "iris"}, {"kind": "cnn"}, {"name": "sgd"})
    with pytest.raises(ConfigError, match="unknown model kind 'resnet'"):
        build_task({"name": "iris"}, {"kind": "resnet"}, {"name": "sgd"})


def test_l2_hyperparameter_reaches_the_training_map():
    task = build_task({"name": "digits", "n_test": 0.9}, {"kind": "cnn", "weight_std": 0.3}, {"name": "sgd", "l2": 1e-3})
    assert task.hyper == {"l2": 1e-3}
    state = task.tmap.init(jax.jit(task.model.init)(fast_key(0)))
    step = jax.jit(task.tmap.step)
    plain, _ = step(state, {"learning_rate": 0.1, "l2": 0.0})
    decayed, _ = step(state, {"learning_rate": 0.1, **task.hyper})
    # θ' = θ − η(∇L + λθ): the L2 term shifts the update by −η λ θ exactly
    for a, b, theta in zip(jax.tree.leaves(decayed.params), jax.tree.leaves(plain.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(a - b, -0.1 * 1e-3 * theta, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (784,)}, "needs image inputs"),
        ({"input_shape": (8, 8, 1), "channels": (4, 4, 4, 4)}, "shrink a 8x8 input to nothing"),
        ({"channels": (8, 0)}, "channels must be positive"),
        ({"pool": 0}, "pool must be >= 1"),
        ({"activation": "swish"}, "unknown activation"),
        ({"init": "xavier"}, "unknown init scheme"),
        ({"weight_std": -1.0}, "weight_std must be > 0"),
    ],
)
def test_cnn_config_errors(kwargs, message):
    args = {"input_shape": (28, 28, 1), "n_out": 10, **kwargs}
    with pytest.raises(ConfigError, match=message):
        models.cnn(**args)
