"""Datasets that need no network: Iris and 8x8 digits (shipped), and synthetic tasks.

Iris (Fisher 1936) and the 8x8 handwritten digits (Alpaydin & Kaynak 1998) come from
the UCI Machine Learning Repository (CC BY 4.0).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from gdchaos.core.data.dataset import Dataset, split
from gdchaos.core.errors import check


def _shipped(name: str):
    with resources.files("gdchaos.core.data").joinpath(f"_builtin/{name}.npz").open("rb") as f:
        arrays = np.load(f)
        return arrays["x"], arrays["y"]


def iris(n_test: int | float = 30, split_seed: int = 0) -> Dataset:
    """Iris: 150 samples, 4 raw features (cm), 3 classes; default 120/30 split.

    Example:
        >>> ds = iris()
        >>> ds.x_train.shape, ds.x_test.shape, ds.n_classes
        ((120, 4), (30, 4), 3)
    """
    x, y = _shipped("iris")
    return split(x.astype(np.float64), y, n_test, split_seed, "iris", n_classes=3)


def digits(n_test: int | float = 0.2, split_seed: int = 0) -> Dataset:
    """8x8 handwritten digits: 1797 samples, 64 pixels scaled to [0, 1], 10 classes.

    The offline stand-in for MNIST. Default split 1438/359.

    Example:
        >>> ds = digits()
        >>> ds.x_train.shape[1], float(ds.x_train.max())
        (64, 1.0)
    """
    x, y = _shipped("digits")
    return split(x.astype(np.float64) / 16.0, y, n_test, split_seed, "digits", n_classes=10)


def synthetic(
    n_samples: int = 1000,
    n_features: int = 20,
    n_classes: int = 3,
    n_test: int | float = 0.2,
    split_seed: int = 0,
    noise: float = 1.0,
    feature_shape: tuple[int, ...] | None = None,
) -> Dataset:
    """Gaussian-mixture classification of any size: class means N(0, 1), spread ``noise``.

    ``feature_shape`` reshapes the features (e.g. ``(28, 28, 1)`` for MNIST-shaped input).

    Example:
        >>> synthetic(n_samples=100, n_features=8, n_classes=2).x_train.shape
        (80, 8)
    """
    check(n_samples >= 2, f"synthetic data needs n_samples >= 2; got {n_samples}")
    check(n_features >= 1, f"synthetic data needs n_features >= 1; got {n_features}")
    check(n_classes >= 2, f"synthetic data needs n_classes >= 2; got {n_classes}")
    rng = np.random.default_rng(split_seed)
    means = rng.normal(size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n_samples)
    x = means[y] + noise * rng.normal(size=(n_samples, n_features))
    if feature_shape is not None:
        feature_shape = tuple(feature_shape)
        check(
            int(np.prod(feature_shape)) == n_features,
            f"feature_shape {feature_shape} must hold n_features={n_features} values",
        )
        x = x.reshape(n_samples, *feature_shape)
    return split(x, y, n_test, split_seed, "synthetic", n_classes=n_classes)


BUILTIN = {"iris": iris, "digits": digits, "synthetic": synthetic}
"""Loaders that work offline, by name."""

IMAGE_SHAPES = {"digits": (8, 8, 1)}
"""Image shape ``(H, W, C)`` of built-in sets stored flat (for CNNs)."""
