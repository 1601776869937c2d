"""Are the first-layer filters structured, and did they move? Measured, not judged from a figure.

- `neighbour_correlation`: for each filter, reshaped to its image and standardised, the
  Pearson correlation of horizontally adjacent pixels and of vertically adjacent pixels,
  averaged. About 0 for white noise, about 0.5 or more for smooth edges and strokes.
  (Measures of how concentrated a filter's energy is would reward noise: the share of
  energy in a white-noise filter's strongest pixels is higher than in a smooth edge's.)
- `frac_noise_like`: the share of filters whose neighbour correlation is below `NOISE_LIKE`,
  i.e. that still look like (random) noise.
- `relative_change`: ||w - w0|| / ||w0|| of each unit's weights from its initialisation;
  a unit whose weights moved less than `UNMOVED` kept its random initial filter.
"""
from typing import Dict, Optional, Sequence

import numpy as np

UNMOVED = 0.1  # A unit whose weights changed by less than 10% of their initial norm "barely moved".
NOISE_LIKE = 0.2  # Neighbour correlation of white noise: ~0 +- 0.04 for 28x28 filters, +- 0.13 for 8x8.


def filter_stack(kernel: np.ndarray, input_shape: Sequence[int]) -> Optional[np.ndarray]:
  """One image per unit, (units, H, W, C): dense kernels (prod(input_shape), units) take the input's
  shape; conv kernels (k, k, C_in, C_out) give k x k images. None where filters are not images."""
  kernel = np.asarray(kernel, np.float64)
  if kernel.ndim == 2 and kernel.shape[0] == int(np.prod(input_shape)) and len(input_shape) == 3:
    return kernel.T.reshape(kernel.shape[1], *input_shape)
  if kernel.ndim == 4 and kernel.shape[0] >= 3:
    return np.moveaxis(kernel, -1, 0)
  return None


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Correlation of a[i] and b[i] over their remaining axes, for every i."""
  a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
  b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
  return (a * b).sum(axis=1) / np.maximum(np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)), 1e-12)


def neighbour_correlation(filters: np.ndarray) -> np.ndarray:
  """Per filter (units, H, W[, C]): mean of the horizontal and vertical neighbour-pixel correlations."""
  f = filters if filters.ndim == 4 else filters[..., None]
  f = (f - f.mean(axis=(1, 2, 3), keepdims=True)) / np.maximum(f.std(axis=(1, 2, 3), keepdims=True), 1e-12)
  return 0.5 * (_pearson(f[:, :, :-1], f[:, :, 1:]) + _pearson(f[:, :-1, :], f[:, 1:, :]))


def relative_change(kernel: np.ndarray, initial: np.ndarray) -> np.ndarray:
  """||w - w0|| / ||w0|| per unit (the kernel's last axis)."""
  kernel, initial = np.asarray(kernel, np.float64), np.asarray(initial, np.float64)
  units = lambda k: k.reshape(-1, k.shape[-1])
  return (np.linalg.norm(units(kernel - initial), axis=0) / np.maximum(np.linalg.norm(units(initial), axis=0), 1e-12))


def filter_metrics(kernel: np.ndarray, initial: Optional[np.ndarray], input_shape: Sequence[int]) -> Dict[str, float]:
  out = {}
  stack = filter_stack(kernel, input_shape)
  if stack is not None:
    correlation = neighbour_correlation(stack)
    out["filters/neighbour_correlation"] = float(np.mean(correlation))
    out["filters/frac_noise_like"] = float(np.mean(correlation < NOISE_LIKE))
  if initial is not None and np.shape(initial) == np.shape(kernel):
    change = relative_change(kernel, initial)
    out.update({"filters/median_relative_change": float(np.median(change)),
                "filters/frac_unmoved": float(np.mean(change < UNMOVED))})
  return out
