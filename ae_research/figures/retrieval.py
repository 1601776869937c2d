"""Retrieval figure (SPEC 3c): each query image followed by its nearest neighbours in code space."""
import matplotlib.pyplot as plt
import numpy as np

from ae_research.figures import save_figure
from ae_research.figures.images import to_displayable


def retrieval_figure(queries: np.ndarray, neighbours: np.ndarray, distances: np.ndarray, path: str,
                     value_range=(0.0, 1.0), query_labels=None, neighbour_labels=None) -> str:
  """queries (Q, H, W, C); neighbours (Q, K, H, W, C); distances (Q, K) cosine distances."""
  q, k = neighbours.shape[:2]
  fig, axes = plt.subplots(q, k + 1, figsize=(1.5 * (k + 1), 1.6 * q), squeeze=False)
  for i in range(q):
    shown = to_displayable(np.concatenate([queries[i:i + 1], neighbours[i]]), value_range)
    for j in range(k + 1):
      ax = axes[i, j]
      ax.imshow(shown[j], cmap="gray" if shown.ndim == 3 else None, vmin=0, vmax=1)
      ax.set_xticks([]), ax.set_yticks([])
      if j == 0:
        ax.set_title("query" + (f" ({query_labels[i]})" if query_labels is not None else ""), fontsize=7)
      else:
        label = f" ({neighbour_labels[i][j - 1]})" if neighbour_labels is not None else ""
        ax.set_title(f"d={distances[i, j - 1]:.3f}{label}", fontsize=7)
  return save_figure(fig, path, "nearest neighbours by cosine distance of codes")
