"""Small real data sets shipped inside scikit-learn (no download)."""
import numpy as np
import sklearn.datasets

from ae_research.data.dataset import DIGIT_NAMES, ArrayDataset, scale_pixels, split_arrays, with_channel_axis


def load_digits(name: str, batch_size: int, scale: str = "unit", seed: int = 0,
                test_fraction: float = 0.2) -> ArrayDataset:
  """The 1,797 8x8 UCI digits; a fixed shuffle (independent of `seed`) makes the split."""
  del seed  # The split stays fixed so runs with different seeds are comparable.
  digits = sklearn.datasets.load_digits()
  order = np.random.RandomState(0).permutation(len(digits.images))
  images = with_channel_axis(scale_pixels(digits.images[order], scale, max_value=16.0))
  num_train = int(round(len(order) * (1 - test_fraction)))
  train, test = split_arrays(images, digits.target[order], num_train)
  return ArrayDataset(name=name, train=train, test=test, batch_size=batch_size, scale=scale, class_names=DIGIT_NAMES)
