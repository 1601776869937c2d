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


def image_rows(rows: Sequence[Tuple[str, np.ndarray]], path: str, value_range: Tuple[float, float] = (0.0, 1.0),
               title: str = "") -> str:
  """One row per (label, images (N, H, W, C)); all rows show the same N examples."""
  n = max(len(images) for _, images in rows)
  fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.3 * len(rows)), squeeze=False)
  for r, (label, images) in enumerate(rows):
    shown = to_displayable(images, value_range)
    for c in range(n):
      ax = axes[r, c]
      ax.axis("off")
      if c < len(shown):
        ax.imshow(shown[c], cmap="gray" if shown.ndim == 3 else None, vmin=0, vmax=1)
    axes[r, 0].set_title(label, fontsize=8, loc="left")
  return save_figure(fig, path, title)
