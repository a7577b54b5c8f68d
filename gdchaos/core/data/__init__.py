"""Datasets as device-ready arrays: built-in offline sets and tensorflow-datasets names.

``load("iris")`` and ``load("digits")`` work offline (the data ship with gdchaos);
``load("synthetic", ...)`` makes a Gaussian-mixture task of any shape; any other
name goes to tensorflow-datasets (optional extra ``gdchaos[tfds]``).
"""

from gdchaos.core.data.builtin import BUILTIN, digits, iris, synthetic
from gdchaos.core.data.dataset import Dataset, split
from gdchaos.core.data.registry import load
from gdchaos.core.data.tfds import load_tfds

__all__ = ["BUILTIN", "Dataset", "digits", "iris", "load", "load_tfds", "split", "synthetic"]
