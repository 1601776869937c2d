"""Retrieval figure (SPEC 3c): each query image followed by its nearest neighbours in code space."""
import matplotlib.pyplot as plt
import numpy as np

from ae_research.figures import save_figure
from ae_research.figures.images import show_strip, to_displayable

PAD = 4  # Pixels between images, scaled to the image size below.


def retrieval_figure(queries: np.ndarray, neighbours: np.ndarray, distances: np.ndarray, path: str,
                     value_range=(0.0, 1.0), query_labels=None, neighbour_labels=None) -> str:
  """queries (Q, H, W, C); neighbours (Q, K, H, W, C); distances (Q, K) cosine distances."""
  q, k = neighbours.shape[:2]
  width = queries.shape[2]
  pad = max(1, width * PAD // 28)
  fig, axes = plt.subplots(q, 1, figsize=(1.5 * (k + 1), 1.6 * q), squeeze=False)
  for i, ax in enumerate(axes[:, 0]):
    show_strip(ax, to_displayable(np.concatenate([queries[i:i + 1], neighbours[i]]), value_range), k + 1, pad)
    captions = ["query" + (f" ({query_labels[i]})" if query_labels is not None else "")]
    captions += [f"d={distances[i, j]:.3f}" + (f" ({neighbour_labels[i][j]})" if neighbour_labels is not None else "")
                 for j in range(k)]
    for j, caption in enumerate(captions):  # Above each image, centred on it.
      ax.text(j * (width + pad) + width / 2 - 0.5, -0.5, caption, fontsize=7, ha="center", va="bottom")
  return save_figure(fig, path, "nearest neighbours by cosine distance of codes")
