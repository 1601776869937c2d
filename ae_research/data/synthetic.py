"""The "blocks" data set of SPEC 3a: centred white rectangles of random height and width."""
import numpy as np

from ae_research.data.dataset import ArrayDataset, scale_pixels, split_arrays
from ae_research.errors import ConfigError


def make_blocks(num: int, min_size: int, max_size: int, image_size: int, seed: int):
  """Returns (images (num, S, S) in {0, 1}, heights, widths); deterministic in `seed`."""
  if not 0 < min_size <= max_size <= image_size:
    raise ConfigError(f"blocks: need 0 < min_size <= max_size <= image_size, got "
                      f"{min_size}, {max_size}, {image_size}")
  rng = np.random.default_rng(seed)
  heights, widths = rng.integers(min_size, max_size + 1, size=(2, num))
  top, left = (image_size - heights) // 2, (image_size - widths) // 2
  pos = np.arange(image_size)
  rows = (pos >= top[:, None]) & (pos < (top + heights)[:, None])
  cols = (pos >= left[:, None]) & (pos < (left + widths)[:, None])
  images = (rows[:, :, None] & cols[:, None, :]).astype(np.float32)
  return images, heights, widths


def load_blocks(name: str, batch_size: int, scale: str = "unit", seed: int = 0, num_train: int = 80_000,
                num_test: int = 20_000, min_size: int = 5, max_size: int = 22,
                image_size: int = 28) -> ArrayDataset:
  """Blocks as an `ArrayDataset`; the label is the block height (for colouring plots)."""
  if num_train <= 0 or num_test <= 0:
    raise ConfigError(f"dataset.num_train/num_test must be positive, got {num_train}/{num_test}")
  images, heights, _ = make_blocks(num_train + num_test, min_size, max_size, image_size, seed)
  images = scale_pixels(images, scale, max_value=1.0)
  train, test = split_arrays(images[..., None], heights, num_train)
  return ArrayDataset(name=name, train=train, test=test, batch_size=batch_size, label_name="height",
                      label_kind="ordinal", scale=scale)
