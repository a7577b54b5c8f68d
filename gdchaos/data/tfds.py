"""tensorflow-datasets image-classification loaders (``mnist``, ``fashion_mnist``, ``cifar10``, ...).

Uses ``tfds.data_source`` (random-access numpy records; TensorFlow itself is not
needed). Pixels are scaled to [0, 1] with no further normalization, as in the
papers. The data must already be in ``data_dir`` unless ``download=True``.
"""

from __future__ import annotations

import numpy as np

from gdchaos.data.dataset import Dataset
from gdchaos.errors import DatasetUnavailableError, check


def _records_to_arrays(source, subset: int | None):
    n = len(source) if subset is None else min(int(subset), len(source))
    records = [source[i] for i in range(n)]
    x = np.stack([np.asarray(r["image"]) for r in records]).astype(np.float64) / 255.0
    y = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
    return x, y


def load_tfds(
    name: str,
    data_dir: str | None = None,
    subset: int | None = None,
    train_split: str = "train",
    test_split: str = "test",
    download: bool = False,
    **_ignored,
) -> Dataset:
    """Load TFDS dataset ``name`` as a :class:`Dataset` with pixels in [0, 1].

    Args:
        name: a TFDS image-classification name with ``image`` and ``label`` features.
        data_dir: where TFDS keeps prepared data (default ``~/tensorflow_datasets``).
        subset: keep only the first ``subset`` records of each split (quick runs).
        download: fetch and prepare the data if missing (needs a network).

    Raises:
        DatasetUnavailableError: tensorflow-datasets is not installed, or the data is
            not prepared locally and cannot be downloaded.

    Example (needs the data prepared locally)::

        ds = load_tfds("mnist", subset=1000)
    """
    check(subset is None or int(subset) > 0, f"subset must be a positive count; got {subset}")
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
        where = data_dir or "~/tensorflow_datasets"
        raise DatasetUnavailableError(
            f"dataset {name!r} is not available in {where} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Prepare it once on a machine with "
            f"a network: python -c \"import tensorflow_datasets as tfds; "
            f"tfds.builder('{name}', data_dir={data_dir!r}).download_and_prepare()\", "
            "or pass download=True (data.download=true)."
        ) from err
    x_train, y_train = _records_to_arrays(train, subset)
    x_test, y_test = _records_to_arrays(test, subset)
    n_classes = int(max(y_train.max(), y_test.max()) + 1)
    try:
        n_classes = int(tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes)
    except Exception:  # info unavailable: fall back to the labels seen
        pass
    return Dataset(x_train, y_train, x_test, y_test, n_classes, name)
