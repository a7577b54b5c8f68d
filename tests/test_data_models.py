"""Datasets (built in and tensorflow-datasets) and models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdchaos import data, models
from gdchaos.errors import ConfigError, DatasetUnavailableError


def test_iris_default_split():
    ds = data.load("iris")
    assert ds.x_train.shape == (120, 4) and ds.x_test.shape == (30, 4)
    assert ds.n_classes == 3 and set(np.unique(ds.y_train)) == {0, 1, 2}
    assert ds.x_train.max() == pytest.approx(7.9)  # raw features, no scaling
    other = data.iris(split_seed=1)
    assert not np.array_equal(other.y_test, ds.y_test)


def test_digits_pixels_in_unit_interval():
    ds = data.load("digits")
    assert ds.n_features == 64 and ds.n_classes == 10
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert len(ds.x_train) + len(ds.x_test) == 1797


def test_synthetic_any_shape():
    ds = data.synthetic(n_samples=200, n_features=784, n_classes=10, feature_shape=(28, 28, 1))
    assert ds.x_train.shape == (160, 28, 28, 1)
    assert ds.flatten().x_train.shape == (160, 784)
    with pytest.raises(ConfigError, match="feature_shape"):
        data.synthetic(n_features=10, feature_shape=(3, 3))
    with pytest.raises(ConfigError, match="test split"):
        data.iris(n_test=150)


def test_normal_init_is_standard_normal_with_zero_biases():
    net = models.mlp((200, 300, 3))
    params = net.init(jax.random.key(0))
    w = np.asarray(params["layer0"]["kernel"])
    assert w.shape == (200, 300)
    assert abs(w.mean()) < 0.01 and w.std() == pytest.approx(1.0, rel=0.01)
    assert np.all(np.asarray(params["layer0"]["bias"]) == 0)
    assert params["layer0"]["kernel"].dtype == jnp.float64  # follows x64


def test_torch_and_lecun_init_scales():
    torch_like = models.mlp((100, 50, 2), init="torch").init(jax.random.key(0))
    bound = 1 / np.sqrt(100)
    assert np.abs(torch_like["layer0"]["kernel"]).max() <= bound
    assert np.abs(torch_like["layer0"]["bias"]).max() <= bound
    assert np.any(torch_like["layer0"]["bias"] != 0)
    lecun = models.mlp((400, 200, 2), init="lecun").init(jax.random.key(0))
    assert np.asarray(lecun["layer0"]["kernel"]).std() == pytest.approx(1 / np.sqrt(400), rel=0.1)


def test_mlp_apply_matches_hand_computation():
    net = models.mlp((4, 10, 3), activation="tanh")
    p = net.init(jax.random.key(2))
    x = jax.random.normal(jax.random.key(3), (5, 4))
    by_hand = jnp.tanh(x @ p["layer0"]["kernel"] + p["layer0"]["bias"]) @ p["layer1"]["kernel"] + p["layer1"]["bias"]
    np.testing.assert_allclose(net.apply(p, x), by_hand, rtol=1e-12)
    assert models.count_params(p) == 4 * 10 + 10 + 10 * 3 + 3


@pytest.mark.parametrize(
    "kwargs, message",
    [({"activation": "swish"}, "unknown activation"), ({"init": "xavier"}, "unknown init"), ({"sizes": [4]}, "at least")],
)
def test_model_config_errors(kwargs, message):
    args = {"sizes": (4, 10, 3), **kwargs}
    with pytest.raises(ConfigError, match=message):
        models.mlp(**args)


def test_tfds_loader_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=16):
        ds = data.load("mnist")
    assert ds.x_train.shape == (16, 28, 28, 1) and ds.x_test.shape == (16, 28, 28, 1)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.n_classes == 10 and ds.y_train.dtype == np.int32
    assert ds.flatten().n_features == 784
    with tfds.testing.mock_data(num_examples=16):
        assert len(data.load("mnist", subset=5).x_train) == 5


def test_tfds_missing_data_is_a_clear_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetUnavailableError, match="'mnist' is not available") as err:
        data.load("mnist", data_dir=str(tmp_path))
    assert "download_and_prepare" in str(err.value)
