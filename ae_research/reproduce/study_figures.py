"""Figures across a study's runs: a metric-by-metric heat map, one metric against another per run
(coloured by model), and a run's own figure copied beside them."""
import math
import os
import shutil
from typing import Mapping, Optional, Sequence

from ae_research.reproduce import seeds as sd
from ae_research.reproduce.claims import Metrics


def heat_map(names: Sequence[str], matrix: Sequence[Sequence[float]], path: str, title: str) -> str:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ae_research.figures import save_figure  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  short = [n.split("/")[-1] for n in names]
  fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 1.0 * len(names) + 1.5))
  image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
  ax.set_xticks(range(len(short)), short, rotation=45, ha="right")
  ax.set_yticks(range(len(short)), short)
  for i, row in enumerate(matrix):
    for j, value in enumerate(row):
      ax.text(j, i, "–" if math.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8)
  fig.colorbar(image, ax=ax, shrink=0.8)
  return save_figure(fig, path, title)


def scatter_by_model(metrics: Metrics, x: str, y: str, path: str, title: str) -> str:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ae_research.figures import save_figure  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig, ax = plt.subplots(figsize=(7, 5))
  for model in sd.models_in(metrics):
    points = [(m[x], m[y]) for label, m in metrics.items()
              if label != "derived" and sd.model_of(label) == model and x in m and y in m]
    if points:
      ax.scatter(*zip(*points), label=model, s=30)
  ax.set(xlabel=x, ylabel=y)
  ax.legend(fontsize=8)
  return save_figure(fig, path, title)


def copy_run_figure(run_dirs: Mapping[str, str], label: Optional[str], figure: str, report_dir: str) -> Optional[str]:
  """figures/<label>/<figure>.png of the report, copied from run `label` (None when it has none)."""
  if label is None:
    return None
  src = os.path.join(run_dirs[label], "figures", f"{figure}.png")
  if not os.path.exists(src):
    return None
  dst = os.path.join(report_dir, "figures", f"{label}_{figure}.png")
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  shutil.copyfile(src, dst)
  return dst
