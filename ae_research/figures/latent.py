"""Code-space figures: the 2-D scatter coloured by label (SPEC 1a, 3a, 3b)."""
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from ae_research.metrics.pca import pca_project
from ae_research.figures import save_figure


def code_scatter(codes: np.ndarray, labels: np.ndarray, path: str, label_name: str = "class",
                 title: Optional[str] = None, class_names: Optional[Sequence[str]] = None) -> str:
  """Scatter of 2-D codes (codes of higher dimension are projected on their first two PCs);
  with `class_names`, the colour bar names the classes."""
  codes = codes.reshape(len(codes), -1)
  axes = ("z[0]", "z[1]")
  if codes.shape[1] > 2:
    codes = pca_project(codes, 2)
    axes = ("PC 1 of codes", "PC 2 of codes")
  elif codes.shape[1] == 1:
    codes = np.concatenate([codes, np.zeros_like(codes)], axis=1)
  fig, ax = plt.subplots(figsize=(7.5 if class_names is not None else 6.5, 5.5))
  if class_names is not None:
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20", len(class_names))
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=2, cmap=cmap, vmin=-0.5, vmax=len(class_names) - 0.5)
    bar = fig.colorbar(points, ax=ax, ticks=range(len(class_names)))
    bar.ax.set_yticklabels(class_names)
  else:
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=2, cmap="viridis")
    fig.colorbar(points, ax=ax, label=label_name)
  ax.set(xlabel=axes[0], ylabel=axes[1], title=title or "test-set codes")
  return save_figure(fig, path)
