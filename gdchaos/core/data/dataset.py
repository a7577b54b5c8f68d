"""The :class:`Dataset` container and train/test splitting."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from gdchaos.core.errors import check


class Dataset(NamedTuple):
    """A supervised classification task held as host arrays.

    Attributes:
        x_train: ``(n_train, *feature_shape)`` floating inputs.
        y_train: ``(n_train,)`` integer labels in ``[0, n_classes)``.
        x_test: ``(n_test, *feature_shape)``.
        y_test: ``(n_test,)``.
        n_classes: number of classes.
        name: dataset name, for provenance.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str

    @property
    def n_features(self) -> int:
        """Number of input features after flattening."""
        return int(np.prod(self.x_train.shape[1:]))

    def flatten(self) -> "Dataset":
        """Inputs reshaped to ``(n, n_features)`` (for MLPs)."""
        return self._replace(
            x_train=self.x_train.reshape(len(self.x_train), -1),
            x_test=self.x_test.reshape(len(self.x_test), -1),
        )

    def astype(self, dtype: DTypeLike) -> "Dataset":
        """Inputs cast to ``dtype``; labels stay integers."""
        return self._replace(x_train=self.x_train.astype(dtype), x_test=self.x_test.astype(dtype))


def split(x: ArrayLike, y: ArrayLike, n_test: int | float, seed: int, name: str, n_classes: int | None = None) -> Dataset:
    """Shuffle ``(x, y)`` with ``seed`` and hold out ``n_test`` samples (count or fraction).

    Example:
        >>> import numpy as np
        >>> ds = split(np.zeros((10, 2)), np.arange(10) % 2, n_test=0.2, seed=0, name="toy")
        >>> len(ds.x_train), len(ds.x_test)
        (8, 2)
    """
    n = len(x)
    n_test = int(round(n_test * n)) if isinstance(n_test, float) and n_test < 1 else int(n_test)
    check(0 < n_test < n, f"test split must leave both sets non-empty; got n_test={n_test} of {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    y = np.asarray(y).astype(np.int32)
    return Dataset(
        x_train=np.asarray(x[train]),
        y_train=y[train],
        x_test=np.asarray(x[test]),
        y_test=y[test],
        n_classes=int(n_classes if n_classes is not None else y.max() + 1),
        name=name,
    )
