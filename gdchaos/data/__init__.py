"""Datasets as device-ready arrays: built-in offline sets and tensorflow-datasets names.

``load("iris")`` and ``load("digits")`` work offline (the data ship with gdchaos);
``load("synthetic", ...)`` makes a Gaussian-mixture task of any shape; any other
name goes to tensorflow-datasets (optional extra ``gdchaos[tfds]``).
"""

from gdchaos.data.builtin import BUILTIN, digits, iris, synthetic
from gdchaos.data.dataset import Dataset, split
from gdchaos.data.registry import load
from gdchaos.data.tfds import load_tfds

__all__ = ["BUILTIN", "Dataset", "digits", "iris", "load", "load_tfds", "split", "synthetic"]
