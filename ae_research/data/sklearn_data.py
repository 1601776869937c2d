"""Small real data sets shipped inside scikit-learn (no download)."""
import importlib.util
import os
from typing import Tuple

import numpy as np

from ae_research.data.dataset import DIGIT_NAMES, ArrayDataset, scale_pixels, split_arrays, with_channel_axis


def load_digits(name: str, batch_size: int, scale: str = "unit", seed: int = 0,
                test_fraction: float = 0.2) -> ArrayDataset:
  """The 1,797 8x8 UCI digits; a fixed shuffle (independent of `seed`) makes the split."""
  del seed  # The split stays fixed so runs with different seeds are comparable.
  digits, targets = digits_arrays()
  order = np.random.RandomState(0).permutation(len(digits))
  images = with_channel_axis(scale_pixels(digits[order], scale, max_value=16.0))
  num_train = int(round(len(order) * (1 - test_fraction)))
  train, test = split_arrays(images, targets[order], num_train)
  return ArrayDataset(name=name, train=train, test=test, batch_size=batch_size, scale=scale, class_names=DIGIT_NAMES)


def shipped_file(*parts: str) -> str:
  """The path of a data file scikit-learn ships (e.g. "datasets", "data", "digits.csv.gz"), found without
  importing scikit-learn: `import sklearn.datasets` (scipy, pandas) was 1.4 s of the start-up of every run
  on its data, more than loading and training many of them (measured 2026-11-24). "" if it is not there."""
  spec = importlib.util.find_spec("sklearn")  # Locates the package without running it.
  path = os.path.join(os.path.dirname(spec.origin), *parts) if spec and spec.origin else ""
  return path if os.path.exists(path) else ""


def digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
  """`sklearn.datasets.load_digits()`'s images (1797, 8, 8) and targets, read from the file it reads."""
  path = shipped_file("datasets", "data", "digits.csv.gz")
  if path:
    data = np.loadtxt(path, delimiter=",")  # What load_digits does with this file.
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
  import sklearn.datasets  # pylint: disable=g-import-not-at-top  (a scikit-learn that keeps the file elsewhere)
  digits = sklearn.datasets.load_digits()
  return digits.images, digits.target
