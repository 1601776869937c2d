"""Image-grid figures: rows of images such as inputs above reconstructions (SPEC 1b, 2, 5)."""
from typing import Sequence, Tuple

import matplotlib.pyplot as plt
import numpy as np

from ae_research.figures import save_figure


def to_displayable(images: np.ndarray, value_range: Tuple[float, float]) -> np.ndarray:
  """(N, H, W, C) in `value_range` -> (N, H, W) or (N, H, W, 3) in [0, 1]."""
  lo, hi = value_range
  images = np.clip((np.asarray(images, np.float32) - lo) / (hi - lo), 0.0, 1.0)
  return images[..., 0] if images.shape[-1] == 1 else images


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
  """(N, H, W[, 3]) in [0, 1] -> one (rows*(H+pad), cols*(W+pad)[, 3]) mosaic, row-major."""
  n, h, w = images.shape[:3]
  canvas = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad, *images.shape[3:]), np.float32)
  for i in range(min(n, rows * cols)):
    r, c = divmod(i, cols)
    canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = images[i]
  return canvas


def show_strip(ax, images: np.ndarray, n: int, pad: int = 2) -> None:
  """`images` side by side on one axes (one axes per row, not per image: drawing stays fast)."""
  row = tile(images, 1, n, pad)
  ax.imshow(row, cmap="gray" if row.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
  ax.axis("off")


def image_rows(rows: Sequence[Tuple[str, np.ndarray]], path: str, value_range: Tuple[float, float] = (0.0, 1.0),
               title: str = "") -> str:
  """One row per (label, images (N, H, W, C)); all rows show the same N examples."""
  n = max(len(images) for _, images in rows)
  h, w = rows[0][1].shape[1:3]
  fig, axes = plt.subplots(len(rows), 1, figsize=(1.2 * n, (1.2 * h / w + 0.35) * len(rows)), squeeze=False)
  for ax, (label, images) in zip(axes[:, 0], rows):
    show_strip(ax, to_displayable(images, value_range), n)
    ax.set_title(label, fontsize=8, loc="left")
  return save_figure(fig, path, title)
