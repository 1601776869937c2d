"""Figures as PNG files (matplotlib, Agg backend); the trainer logs them to W&B too."""
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def save_figure(fig, path: str, title: Optional[str] = None, dpi: int = 120,
                rect: Optional[Sequence[float]] = None) -> str:
  """The one way every figure ends: optional suptitle, tight layout, PNG at `path`, figure closed."""
  if title:
    fig.suptitle(title)
  fig.tight_layout(rect=rect)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path
