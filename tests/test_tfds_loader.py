"""tensorflow-datasets loader on mock data (offline): preprocessing, layout, subsets, cache, errors."""

import numpy as np
import pytest

from gdchaos.core import data
from gdchaos.core.data import tfds as tfds_loader
from gdchaos.core.errors import ConfigError, DatasetUnavailableError

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory (and never touches ~/.cache)."""
    monkeypatch.setenv(tfds_loader.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_pixels_in_unit_interval_and_images_kept(isolated_cache):
    with tfds.testing.mock_data(num_examples=16):
        ds = data.load_tfds("fashion_mnist")
    assert ds.x_train.shape == (16, 28, 28, 1) and ds.x_test.shape == (16, 28, 28, 1)
    assert ds.x_train.dtype == np.float64
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0 and ds.x_train.max() > 0.5
    # exactly p / 255 for 8-bit p
    np.testing.assert_allclose(ds.x_train * 255, np.round(ds.x_train * 255), atol=1e-9)
    assert ds.n_classes == 10 and ds.y_train.dtype == np.int32 and ds.name == "fashion_mnist"


def test_cifar10_rgb_and_float32():
    with tfds.testing.mock_data(num_examples=8):
        ds = data.load("cifar10", dtype="float32")
    assert ds.x_train.shape == (8, 32, 32, 3) and ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.n_classes == 10


def test_flattening_for_mlps_and_images_for_cnns():
    with tfds.testing.mock_data(num_examples=16):
        flat = data.load("mnist", images=False)
        images = data.load("mnist", images=True)
        native = data.load("mnist")
    assert flat.x_train.shape == (16, 784) and flat.x_test.shape == (16, 784)
    assert images.x_train.shape == (16, 28, 28, 1) and native.x_train.shape == (16, 28, 28, 1)
    np.testing.assert_array_equal(flat.x_train[3], images.x_train[3].ravel())


def test_build_task_picks_the_layout_from_the_model_kind():
    from gdchaos.experiments.task import build_task

    with tfds.testing.mock_data(num_examples=16):
        mlp_task = build_task({"name": "mnist"}, {"hidden": [8], "activation": "tanh"}, {"name": "sgd"})
        cnn_task = build_task({"name": "mnist", "subset": 8}, {"kind": "cnn"}, {"name": "sgd"})
    assert mlp_task.dataset.x_train.shape == (16, 784) and mlp_task.name == "mnist/mlp-784-8-10-tanh/sgd"
    assert cnn_task.dataset.x_train.shape == (8, 28, 28, 1) and cnn_task.name == "mnist/cnn-8-16-relu/sgd"


def test_subset_is_deterministic_and_seeded():
    with tfds.testing.mock_data(num_examples=64):
        full = data.load_tfds("mnist", cache=False)
        a = data.load_tfds("mnist", subset=10, cache=False)
        b = data.load_tfds("mnist", subset=10, cache=False)
        c = data.load_tfds("mnist", subset=10, subset_seed=1, cache=False)
        d = data.load_tfds("mnist", subset=10, test_subset=4, cache=False)
        big = data.load_tfds("mnist", subset=1000, cache=False)
    assert a.x_train.shape == (10, 28, 28, 1) and a.x_test.shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert d.x_train.shape[0] == 10 and d.x_test.shape[0] == 4
    assert big.x_train.shape[0] == 64  # a subset larger than the split keeps the split
    # the subset is a sample of the split's records, not new ones
    rows = {r.tobytes() for r in full.x_train.reshape(64, -1)}
    assert all(r.tobytes() in rows for r in a.x_train.reshape(10, -1))


def test_second_load_is_a_cache_hit_that_never_calls_tfds(isolated_cache, monkeypatch):
    with tfds.testing.mock_data(num_examples=16):
        first = data.load_tfds("mnist", subset=12)
    files = list(isolated_cache.glob("*.npz"))
    assert [f.name for f in files] == ["mnist_train_test_n12-12_s0_rnative.npz"]

    def refuse(*args, **kwargs):
        raise AssertionError("tensorflow-datasets was called on a cache hit")

    monkeypatch.setattr(tfds, "data_source", refuse)
    monkeypatch.setattr(tfds, "builder", refuse)
    again = data.load_tfds("mnist", subset=12)
    np.testing.assert_array_equal(again.x_train, first.x_train)
    np.testing.assert_array_equal(again.y_test, first.y_test)
    assert again.n_classes == first.n_classes == 10
    # another key, or cache=False, goes to tensorflow-datasets (whose failure is reported as unavailable data)
    with pytest.raises(DatasetUnavailableError, match="called on a cache hit"):
        data.load_tfds("mnist", subset=13)
    with pytest.raises(DatasetUnavailableError, match="called on a cache hit"):
        data.load_tfds("mnist", subset=12, cache=False)


def test_explicit_cache_dir_and_unreadable_cache_file(tmp_path):
    where = tmp_path / "elsewhere"
    with tfds.testing.mock_data(num_examples=16):
        ds = data.load_tfds("mnist", subset=4, cache_dir=str(where))
        path = tfds_loader.cache_path("mnist", str(where), subset=4)
        assert path.exists()
        path.write_bytes(b"not an npz file")
        again = data.load_tfds("mnist", subset=4, cache_dir=str(where))  # converted again
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    with np.load(path) as f:
        assert f["x_train"].dtype == np.uint8  # cached as 8-bit pixels


def test_mock_records_never_reach_the_default_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(tfds_loader.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with tfds.testing.mock_data(num_examples=16):
        data.load_tfds("mnist")
    assert not (tmp_path / "home").exists()


def test_resize_to_16x16():
    with tfds.testing.mock_data(num_examples=8):
        ds = data.load("fashion_mnist", resize=[16, 16])
        flat = data.load("fashion_mnist", resize=[16, 16], images=False)
    assert ds.x_train.shape == (8, 16, 16, 1) and flat.x_train.shape == (8, 256)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    constant = tfds_loader.resize_images(np.full((1, 28, 28, 1), 200, np.uint8), (16, 16))
    assert np.all(constant == 200)
    rgb = tfds_loader.resize_images(np.zeros((2, 32, 32, 3), np.uint8), (8, 8))
    assert rgb.shape == (2, 8, 8, 3)


def test_missing_data_is_a_one_line_error_naming_the_fix(tmp_path):
    with pytest.raises(DatasetUnavailableError) as err:
        data.load_tfds("mnist", data_dir=str(tmp_path / "nothing"))  # download=False: no network
    message = str(err.value)
    assert "\n" not in message
    assert "'mnist'" in message and str(tmp_path / "nothing") in message
    assert "tfds.builder('mnist'" in message and "download_and_prepare()" in message
    assert "data.data_dir=" in message
    assert not list(tmp_path.glob("cache/*.npz"))  # nothing cached on failure


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subset": 0}, "subset must be a positive count"),
        ({"test_subset": -1}, "test_subset must be a positive count"),
        ({"resize": [16]}, "resize must be null or"),
        ({"dtype": "int32"}, "dtype must be a floating dtype"),
    ],
)
def test_option_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        data.load_tfds("mnist", **kwargs)


def test_unknown_options_and_images_of_flat_data():
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['n_test'\] for dataset 'mnist'"):
        data.load("mnist", n_test=0.2)
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['subset'\] for dataset 'iris'"):
        data.load("iris", subset=10)
    with pytest.raises(ConfigError, match="has flat features of shape"):
        data.load("iris", images=True)
    assert data.load("digits", images=True).x_train.shape[1:] == (8, 8, 1)
    assert data.load("synthetic", n_features=12, feature_shape=(2, 2, 3), images=True).x_train.shape[1:] == (2, 2, 3)
