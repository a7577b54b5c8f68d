"""tensorflow-datasets image-classification loaders (``mnist``, ``fashion_mnist``, ``cifar10``, ...).

Any TFDS name with ``image`` and ``label`` features works. Records are read through
``tfds.data_source`` (random-access numpy records; TensorFlow itself is not needed),
converted once to arrays and kept in an ``.npz`` cache, so later loads read one file
and do not touch tensorflow-datasets at all.

Preprocessing (the papers'): pixels x = p / 255 ∈ [0, 1], no mean/std normalization,
images kept as ``(n, H, W, C)`` (:func:`gdchaos.core.data.load` flattens them for MLPs).
Options: a deterministic random ``subset`` per split for quick runs, and ``resize``
(e.g. FashionMNIST at 16×16, the size of USPS digits) with bilinear, antialiased
resampling of the 8-bit images (PIL), done before the cache.

Cache: one file per (name, splits, subset, subset_seed, resize, data_dir) under
``cache_dir`` (default ``$GDCHAOS_CACHE_DIR``, else ``~/.cache/gdchaos/tfds``). Fake
records from ``tfds.testing.mock_data`` are cached only in an explicitly chosen
directory (``cache_dir`` or ``$GDCHAOS_CACHE_DIR``), never in ``~/.cache``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from gdchaos.core.data.dataset import Dataset
from gdchaos.core.errors import DatasetUnavailableError, check
from gdchaos.core.files import atomic_write

CACHE_ENV = "GDCHAOS_CACHE_DIR"
"""Environment variable naming the default cache directory."""


def default_cache_dir() -> Path:
    """``$GDCHAOS_CACHE_DIR`` if set, else ``~/.cache/gdchaos/tfds``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gdchaos" / "tfds"


def cache_path(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    train_split: str = "train",
    test_split: str = "test",
    subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    resize: Sequence[int] | None = None,
    data_dir: str | None = None,
) -> Path:
    """The ``.npz`` file that holds (or will hold) the converted arrays of one configuration.

    Example:
        >>> cache_path("mnist", "/tmp/c", subset=1000, resize=(16, 16)).name
        'mnist_train_test_n1000-1000_s0_r16x16.npz'
    """
    test_subset = subset if test_subset is None else test_subset
    parts = [
        name,
        train_split,
        test_split,
        f"n{subset or 'all'}-{test_subset or 'all'}",
        f"s{subset_seed}",
        f"r{'x'.join(str(int(s)) for s in resize) if resize else 'native'}",
    ]
    if data_dir:
        parts.append(hashlib.sha1(str(Path(data_dir).expanduser().resolve()).encode()).hexdigest()[:8])
    stem = re.sub(r"[^A-Za-z0-9_.\-]+", "-", "_".join(parts))
    return Path(cache_dir if cache_dir else default_cache_dir()).expanduser() / f"{stem}.npz"


def _indices(n_records: int, subset: int | None, seed: int) -> np.ndarray:
    """All indices, or ``subset`` of them drawn without replacement with ``seed`` (sorted)."""
    if subset is None or subset >= n_records:
        return np.arange(n_records)
    return np.sort(np.random.default_rng(seed).choice(n_records, int(subset), replace=False))


def _is_mock(source) -> bool:
    """Whether ``source`` serves fake records from ``tfds.testing.mock_data``."""
    from unittest import mock

    return isinstance(getattr(source, "data_source", None), mock.Mock)


def _read(source, indices: np.ndarray):
    try:
        records = list(source.__getitems__([int(i) for i in indices]))
    except Exception:  # some sources (e.g. mock data) only support one record at a time
        records = [source[int(i)] for i in indices]
    images = np.stack([np.asarray(r["image"]) for r in records])
    labels = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
    if images.ndim == 3:  # (n, H, W) grayscale without a channel axis
        images = images[..., None]
    return images, labels


def resize_images(images: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize 8-bit ``(n, H, W, C)`` images to ``size = (height, width)``; bilinear, antialiased.

    Example:
        >>> import numpy as np
        >>> resize_images(np.full((2, 28, 28, 1), 255, np.uint8), (16, 16)).shape
        (2, 16, 16, 1)
    """
    from PIL import Image

    height, width = (int(s) for s in size)
    check(height > 0 and width > 0, f"resize must be two positive sizes [height, width]; got {list(size)}")
    images = np.asarray(images)
    check(images.dtype == np.uint8, f"resize_images expects uint8 pixels; got {images.dtype}")
    out = np.empty((len(images), height, width, images.shape[-1]), np.uint8)
    for i, img in enumerate(images):
        img = img[..., 0] if img.shape[-1] == 1 else img
        small = np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR))
        out[i] = small.reshape(height, width, -1)
    return out


def _unavailable(name: str, data_dir: str | None, err: Exception) -> DatasetUnavailableError:
    where = data_dir or "~/tensorflow_datasets"
    detail = str(err).splitlines()[0] if str(err) else ""
    dir_arg = f", data_dir={data_dir!r}" if data_dir else ""
    return DatasetUnavailableError(
        f"dataset {name!r} is not available in {where} ({type(err).__name__}: {detail}). "
        "Prepare it once on a machine with a network: python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{name}'{dir_arg}).download_and_prepare()\", "
        "then copy the folder here and pass data.data_dir=PATH, or pass download=True (data.download=true)."
    )


def _convert(name, data_dir, download, train_split, test_split, subset, test_subset, subset_seed, resize):
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not built in (iris, digits, synthetic) and loading it from "
            "tensorflow-datasets needs the extra: pip install 'gdchaos[tfds]'"
        ) from err
    try:
        kwargs = {"data_dir": data_dir, "download": download}
        train = tfds.data_source(name, split=train_split, **kwargs)
        test = tfds.data_source(name, split=test_split, **kwargs)
    except Exception as err:  # tfds raises several types for missing or unknown data
        raise _unavailable(name, data_dir, err) from err
    x_train, y_train = _read(train, _indices(len(train), subset, subset_seed))
    x_test, y_test = _read(test, _indices(len(test), test_subset, subset_seed + 1))
    check(
        x_train.dtype == np.uint8,
        f"dataset {name!r} has {x_train.dtype} images; gdchaos loads 8-bit image classification sets",
    )
    if resize:
        x_train, x_test = resize_images(x_train, resize), resize_images(x_test, resize)
    n_classes = int(max(y_train.max(), y_test.max()) + 1)
    try:
        n_classes = int(tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes)
    except Exception:  # info unavailable: fall back to the labels seen
        pass
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "n_classes": n_classes}
    return arrays, _is_mock(train) or _is_mock(test)


def load_tfds(
    name: str,
    data_dir: str | None = None,
    subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    resize: Sequence[int] | None = None,
    train_split: str = "train",
    test_split: str = "test",
    cache: bool = True,
    cache_dir: str | None = None,
    dtype: str = "float64",
    download: bool = False,
) -> Dataset:
    """Load TFDS dataset ``name`` as a :class:`Dataset` of ``(n, H, W, C)`` images with pixels in [0, 1].

    Args:
        name: a TFDS image-classification name with ``image`` and ``label`` features.
        data_dir: where TFDS keeps prepared data (default ``~/tensorflow_datasets``).
        subset: keep ``subset`` records of each split, drawn without replacement with
            ``subset_seed`` (deterministic; the whole split if larger). ``test_subset``
            overrides the count for the test split.
        resize: ``[height, width]`` to resample the images to (e.g. ``[16, 16]``).
        train_split, test_split: TFDS split names (slicing like ``"train[:10%]"`` works).
        cache: read and write the converted arrays in ``cache_dir`` (see :func:`cache_path`).
        dtype: floating dtype of the returned pixels (``float32`` halves host memory).
        download: fetch and prepare the data if missing (needs a network).

    Raises:
        DatasetUnavailableError: tensorflow-datasets is not installed, or the data is
            not prepared locally and cannot be downloaded.

    Example (needs the data prepared locally)::

        ds = load_tfds("mnist", subset=1000)   # x_train: (1000, 28, 28, 1) in [0, 1]
    """
    for key, value in (("subset", subset), ("test_subset", test_subset)):
        check(value is None or int(value) > 0, f"{key} must be a positive count or null; got {value}")
    check(
        resize is None or (len(resize) == 2 and all(int(s) > 0 for s in resize)),
        f"resize must be null or [height, width] with positive sizes; got {resize}",
    )
    check(np.dtype(dtype).kind == "f", f"dtype must be a floating dtype such as float32 or float64; got {dtype!r}")
    subset = None if subset is None else int(subset)
    test_subset = subset if test_subset is None else int(test_subset)
    resize = None if resize is None else tuple(int(s) for s in resize)
    path = cache_path(name, cache_dir, train_split, test_split, subset, test_subset, subset_seed, resize, data_dir)
    arrays = None
    if cache and path.exists():
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, KeyError):  # unreadable cache file: convert again
            arrays = None
    if arrays is None:
        arrays, mocked = _convert(name, data_dir, download, train_split, test_split, subset, test_subset, subset_seed, resize)
        if cache and not (mocked and not (cache_dir or os.environ.get(CACHE_ENV))):
            atomic_write(path, lambda f: np.savez(f, **arrays))  # parallel jobs never read a half-written file
    scale = np.asarray(255.0, dtype)
    return Dataset(
        x_train=arrays["x_train"].astype(dtype) / scale,
        y_train=arrays["y_train"].astype(np.int32),
        x_test=arrays["x_test"].astype(dtype) / scale,
        y_test=arrays["y_test"].astype(np.int32),
        n_classes=int(arrays["n_classes"]),
        name=name,
    )
