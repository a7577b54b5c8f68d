"""Datasets (built in, synthetic, tensorflow-datasets) and MLP models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos.core import data

from gdchaos.core import models
from gdchaos.core.errors import ConfigError, DatasetUnavailableError

from conftest import fast_key

# ---------------------------------------------------------------- built-in data


def test_iris_default_split():
    ds = data.load("iris")
    assert ds.x_train.shape == (120, 4) and ds.x_test.shape == (30, 4)
    assert ds.y_train.shape == (120,) and ds.y_test.shape == (30,)
    assert ds.n_classes == 3 and ds.n_features == 4 and ds.name == "iris"
    assert ds.y_train.dtype == np.int32
    labels = np.concatenate([ds.y_train, ds.y_test])
    assert np.bincount(labels).tolist() == [50, 50, 50]
    assert ds.x_train.max() == pytest.approx(7.9)  # raw features in cm, no scaling
    assert ds.x_train.min() == pytest.approx(0.1)
    other = data.iris(split_seed=1)
    assert not np.array_equal(other.y_test, ds.y_test)
    np.testing.assert_array_equal(data.iris().x_test, ds.x_test)  # the split is reproducible
    assert data.load("iris", n_test=50).x_train.shape == (100, 4)


def test_digits_pixels_in_unit_interval():
    ds = data.load("digits")
    assert ds.n_features == 64 and ds.n_classes == 10
    assert ds.x_train.shape == (1438, 64) and ds.x_test.shape == (359, 64)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.x_test.min() >= 0.0 and ds.x_test.max() <= 1.0
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_synthetic_shapes_and_feature_shape():
    ds = data.synthetic(n_samples=200, n_features=784, n_classes=10, feature_shape=(28, 28, 1))
    assert ds.x_train.shape == (160, 28, 28, 1) and ds.x_test.shape == (40, 28, 28, 1)
    assert ds.n_features == 784 and ds.n_classes == 10
    flat = ds.flatten()
    assert flat.x_train.shape == (160, 784) and flat.x_test.shape == (40, 784)
    np.testing.assert_array_equal(flat.x_train[3], ds.x_train[3].ravel())
    small = data.load("synthetic", n_samples=50, n_features=3, n_classes=2, n_test=10)
    assert small.x_train.shape == (40, 3) and set(np.unique(np.r_[small.y_train, small.y_test])) <= {0, 1}
    assert small.astype(np.float32).x_train.dtype == np.float32


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: data.synthetic(n_features=10, feature_shape=(3, 3)), "feature_shape"),
        (lambda: data.synthetic(n_samples=1), "n_samples >= 2"),
        (lambda: data.synthetic(n_classes=1), "n_classes >= 2"),
        (lambda: data.iris(n_test=150), "test split must leave both sets non-empty"),
        (lambda: data.iris(n_test=0), "test split"),
        (lambda: data.digits(n_test=0.0), "test split"),
        (lambda: data.split(np.zeros((10, 2)), np.zeros(10), n_test=10, seed=0, name="toy"), "n_test=10 of 10"),
    ],
)
def test_split_and_data_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_split_by_count_and_fraction():
    x, y = np.arange(20.0)[:, None], np.arange(20) % 4
    a = data.split(x, y, n_test=0.25, seed=0, name="toy")
    b = data.split(x, y, n_test=5, seed=0, name="toy")
    assert len(a.x_test) == 5 and len(a.x_train) == 15
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert sorted(np.r_[a.x_train[:, 0], a.x_test[:, 0]].tolist()) == x[:, 0].tolist()
    assert a.n_classes == 4


# ---------------------------------------------------------------- models


def test_normal_init_is_standard_normal_with_zero_biases():
    net = models.mlp((200, 300, 3))
    params = jax.jit(net.init)(fast_key(0))
    w = np.asarray(params["layer0"]["kernel"])
    assert w.shape == (200, 300) and params["layer1"]["kernel"].shape == (300, 3)
    assert abs(w.mean()) < 0.01 and w.std() == pytest.approx(1.0, rel=0.01)
    assert np.all(np.asarray(params["layer0"]["bias"]) == 0)
    assert np.all(np.asarray(params["layer1"]["bias"]) == 0)
    scaled = models.mlp((200, 300, 3), weight_std=0.1).init(fast_key(0))
    np.testing.assert_allclose(scaled["layer0"]["kernel"], 0.1 * w, rtol=1e-12)


def test_params_dtype_follows_float64_when_enabled():
    params = models.mlp((4, 10, 3)).init(fast_key(0))
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(params))
    p32 = models.mlp((4, 10, 3), dtype=jnp.float32).init(fast_key(0))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(p32))


def test_torch_and_lecun_init_scales():
    torch_like = jax.jit(models.mlp((100, 400, 2), init="torch").init)(fast_key(0))
    bound = 1 / np.sqrt(100)
    w, b = np.asarray(torch_like["layer0"]["kernel"]), np.asarray(torch_like["layer0"]["bias"])
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)  # U(-a, a) has std a/√3
    assert np.any(b != 0)
    assert np.abs(np.asarray(torch_like["layer1"]["kernel"])).max() <= 1 / np.sqrt(400)
    lecun = jax.jit(models.mlp((400, 200, 2), init="lecun").init)(fast_key(0))
    w = np.asarray(lecun["layer0"]["kernel"])
    assert w.std() == pytest.approx(1 / np.sqrt(400), rel=0.05)
    assert np.abs(w).max() <= 2.3 / np.sqrt(400)  # truncated at two (pre-correction) std
    assert np.all(np.asarray(lecun["layer0"]["bias"]) == 0)


@pytest.mark.parametrize("activation, fn", [("tanh", jnp.tanh), ("sigmoid", jax.nn.sigmoid),
                                            ("relu", jax.nn.relu), ("identity", lambda z: z)])
def test_mlp_apply_matches_hand_computation(activation, fn):
    net = models.mlp((4, 10, 3), activation=activation)
    p = net.init(fast_key(2))
    x = jax.random.normal(fast_key(3), (5, 4))
    by_hand = fn(x @ p["layer0"]["kernel"] + p["layer0"]["bias"]) @ p["layer1"]["kernel"] + p["layer1"]["bias"]
    np.testing.assert_allclose(net.apply(p, x), by_hand, rtol=1e-12)
    assert models.count_params(p) == 4 * 10 + 10 + 10 * 3 + 3


def test_mlp_without_bias():
    p = models.mlp((4, 10, 3), use_bias=False).init(fast_key(0))
    assert sorted(p["layer0"]) == ["kernel"] and models.count_params(p) == 70


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"activation": "swish"}, "unknown activation 'swish'; choose one of"),
        ({"init": "xavier"}, "unknown init scheme 'xavier'; choose one of"),
        ({"sizes": [4]}, "at least input and output"),
        ({"sizes": [4, 0, 3]}, "positive"),
        ({"weight_std": 0.0}, "weight_std must be > 0"),
    ],
)
def test_model_config_errors(kwargs, message):
    args = {"sizes": (4, 10, 3), **kwargs}
    with pytest.raises(ConfigError, match=message):
        models.mlp(**args)


# ---------------------------------------------------------------- tensorflow-datasets (offline only)


def test_tfds_loader_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=16):
        ds = data.load("mnist")
        direct = data.load_tfds("mnist", subset=5)
    assert ds.x_train.shape == (16, 28, 28, 1) and ds.x_test.shape == (16, 28, 28, 1)
    assert ds.x_train.dtype == np.float64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.x_train.max() > 0.5  # scaled from 0..255, not clipped to zero
    assert ds.n_classes == 10 and ds.y_train.dtype == np.int32 and ds.y_train.shape == (16,)
    assert ds.y_train.min() >= 0 and ds.y_train.max() < 10
    assert ds.flatten().n_features == 784 and ds.name == "mnist"
    assert direct.x_train.shape == (5, 28, 28, 1) and direct.x_test.shape == (5, 28, 28, 1)


def test_tfds_missing_data_is_a_clear_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetUnavailableError, match=r"dataset 'mnist' is not available in") as err:
        data.load_tfds("mnist", data_dir=str(tmp_path))  # download=False: never touches the network
    assert str(tmp_path) in str(err.value) and "download_and_prepare" in str(err.value)
    with pytest.raises(DatasetUnavailableError, match="'fashion_mnist'"):
        data.load("fashion_mnist", data_dir=str(tmp_path))


def test_tfds_subset_must_be_positive():
    with pytest.raises(ConfigError, match="subset must be a positive count"):
        data.load_tfds("mnist", subset=0)
