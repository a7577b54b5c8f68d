"""One entry point for every dataset name."""

from __future__ import annotations

from gdchaos.data.builtin import BUILTIN
from gdchaos.data.dataset import Dataset
from gdchaos.data.tfds import load_tfds


def load(name: str, **kwargs) -> Dataset:
    """Load dataset ``name``: built-in (iris, digits, synthetic) or a tensorflow-datasets name.

    Keyword arguments go to the loader (e.g. ``n_test``, ``split_seed``; for TFDS
    names also ``data_dir``, ``subset``).

    Example:
        >>> load("iris").n_classes
        3
    """
    if name in BUILTIN:
        return BUILTIN[name](**kwargs)
    return load_tfds(name, **kwargs)
