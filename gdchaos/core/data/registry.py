"""One entry point for every dataset name."""

from __future__ import annotations

import inspect
from typing import Any

from gdchaos.core.data.builtin import BUILTIN, IMAGE_SHAPES
from gdchaos.core.data.dataset import Dataset
from gdchaos.core.data.tfds import load_tfds
from gdchaos.core.errors import ConfigError, check


def as_images(ds: Dataset) -> Dataset:
    """Inputs as ``(n, H, W, C)`` images (for CNNs); grayscale ``(n, H, W)`` gains ``C = 1``.

    Flat built-in sets with a known image shape (digits: 8×8×1) are reshaped.

    Example:
        >>> from gdchaos.core.data.builtin import digits
        >>> as_images(digits()).x_train.shape
        (1438, 8, 8, 1)
    """
    x = ds.x_train
    if x.ndim == 4:
        return ds
    if x.ndim == 3:
        return ds._replace(x_train=ds.x_train[..., None], x_test=ds.x_test[..., None])
    shape = IMAGE_SHAPES.get(ds.name)
    check(
        shape is not None and x.ndim == 2 and x.shape[1] == shape[0] * shape[1] * shape[2],
        f"dataset {ds.name!r} has flat features of shape {tuple(x.shape[1:])} and no image shape, so a CNN "
        "cannot read it; use an MLP (model=mlp) or image data (mnist, fashion_mnist, cifar10, digits, "
        "or synthetic with feature_shape=[H,W,C])",
    )
    return ds._replace(x_train=ds.x_train.reshape(-1, *shape), x_test=ds.x_test.reshape(-1, *shape))


def load(name: str, images: bool | None = None, **kwargs: Any) -> Dataset:
    """Load dataset ``name``: built-in (iris, digits, synthetic) or a tensorflow-datasets name.

    ``images``: ``None`` keeps the loader's layout (TFDS: ``(n, H, W, C)``; iris,
    digits: flat), ``False`` flattens to ``(n, features)`` (MLPs), ``True`` gives
    ``(n, H, W, C)`` images (CNNs). Keyword arguments go to the loader (e.g.
    ``n_test``, ``split_seed``; for TFDS names ``data_dir``, ``subset``, ``resize``,
    ``cache_dir``; see :func:`gdchaos.core.data.load_tfds`).

    Example:
        >>> load("iris").n_classes
        3
        >>> load("digits", images=True).x_test.shape
        (359, 8, 8, 1)
    """
    check(isinstance(name, str) and name != "", f"data.name must be a dataset name; got {name!r}")
    loader = BUILTIN.get(name)
    call = loader if loader is not None else load_tfds
    args = kwargs if loader is not None else {"name": name, **kwargs}
    try:
        inspect.signature(call).bind(**args)
    except TypeError:
        valid = [p for p in inspect.signature(call).parameters if p != "name"]
        unknown = sorted(set(kwargs) - set(valid))
        raise ConfigError(
            f"unknown option(s) {unknown} for dataset {name!r}; valid options are {valid} "
            "(to switch datasets pick the config group, e.g. data=mnist, rather than data.name=)"
        ) from None
    ds = call(**args)
    if images is None:
        return ds
    return as_images(ds) if images else ds.flatten()
