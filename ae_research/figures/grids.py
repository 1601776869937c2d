"""Tiled-image figures: the decoded 2-D manifold (SPEC 3a/3b) and encoder filters (SPEC 4)."""
import math

import matplotlib.pyplot as plt
import numpy as np

from ae_research.figures import save_figure
from ae_research.figures.images import tile, to_displayable


def manifold_grid(images: np.ndarray, n: int, extent, path: str, value_range=(0.0, 1.0), title: str = "") -> str:
  """Decoder outputs on an n x n grid of 2-D codes; `images` are row-major with z[1] decreasing down."""
  mosaic = tile(to_displayable(images, value_range), n, n, pad=0)
  fig, ax = plt.subplots(figsize=(8, 8))
  ax.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1,
            extent=(extent[0], extent[1], extent[2], extent[3]))
  ax.set(xlabel="z[0]", ylabel="z[1]", title=title or "decoded 2-D code grid")
  return save_figure(fig, path)


def manifold_codes(n: int, lo0: float, hi0: float, lo1: float, hi1: float) -> np.ndarray:
  """(n*n, 2) codes, row-major: rows go from high z[1] (top) to low, columns from low z[0]."""
  z0, z1 = np.linspace(lo0, hi0, n), np.linspace(hi1, lo1, n)
  return np.stack(np.meshgrid(z0, z1), axis=-1).reshape(-1, 2).astype(np.float32)


def filter_images(kernel: np.ndarray, input_shape) -> np.ndarray:
  """First-layer weights -> one image per filter, each normalised to [0, 1] on its own.

  Dense kernels (D_in, H) give H images of the input's shape; conv kernels
  (k, k, C_in, C_out) give C_out k x k images (grey, or colour when C_in = 3).
  """
  if kernel.ndim == 2:
    filters = kernel.T.reshape(kernel.shape[1], *input_shape)
  else:
    filters = np.moveaxis(kernel, -1, 0)
    filters = filters.mean(axis=-1, keepdims=True) if filters.shape[-1] not in (1, 3) else filters
  lo = filters.reshape(len(filters), -1).min(axis=1).reshape(-1, *([1] * (filters.ndim - 1)))
  hi = filters.reshape(len(filters), -1).max(axis=1).reshape(-1, *([1] * (filters.ndim - 1)))
  filters = (filters - lo) / np.maximum(hi - lo, 1e-12)
  return filters[..., 0] if filters.shape[-1] == 1 else filters


def filter_grid(kernel: np.ndarray, input_shape, path: str, max_filters: int = 100, title: str = "") -> str:
  images = filter_images(np.asarray(kernel), input_shape)[:max_filters]
  cols = math.ceil(math.sqrt(len(images)))
  rows = math.ceil(len(images) / cols)
  fig, ax = plt.subplots(figsize=(7, 7 * rows / cols))
  mosaic = tile(images, rows, cols)
  ax.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1)
  ax.axis("off")
  ax.set_title(title or f"{len(images)} first-layer filters (each normalised)")
  return save_figure(fig, path)


def labelled_grid(images: np.ndarray, rows: int, cols: int, path: str, value_range=(0.0, 1.0), title: str = "",
                  row_labels=None, col_labels=None) -> str:
  """`images` (rows * cols, H, W, C), row-major, as one mosaic with optional row and column labels
  (prior samples, latent traversals, interpolations)."""
  images = to_displayable(images, value_range)
  h, w = images.shape[1:3]
  mosaic = tile(images, rows, cols)
  fig, ax = plt.subplots(figsize=(min(0.55 * cols + 1.2, 14), min(0.55 * rows * h / w + 0.8, 14)))
  ax.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
  ax.set_xticks([c * (w + 1) + w / 2 for c in range(cols)] if col_labels is not None else [])
  ax.set_yticks([r * (h + 1) + h / 2 for r in range(rows)] if row_labels is not None else [])
  if col_labels is not None:
    ax.set_xticklabels(col_labels, fontsize=7)
  if row_labels is not None:
    ax.set_yticklabels(row_labels, fontsize=7)
  ax.tick_params(length=0)
  return save_figure(fig, path, title)
