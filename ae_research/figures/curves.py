"""Training curves of every logged loss term, from metrics.jsonl."""
import math
from typing import Dict, List

import matplotlib.pyplot as plt

from ae_research.figures import save_figure


def training_curves(records: List[Dict], path: str, title: str = "") -> str:
  """One panel per term: train/<term> per logging point and eval/<term> per epoch, against step."""
  terms = sorted({k.split("/", 1)[1] for r in records for k in r
                  if k.startswith(("train/", "eval/")) and not k.endswith(("samples_per_s", "grad_norm",
                                                                            "learning_rate"))})
  cols = min(3, len(terms))
  rows = math.ceil(len(terms) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
  for ax, term in zip(axes.flat, terms):
    for split, style in (("train", "-"), ("eval", "o-")):
      points = [(r["step"], r[f"{split}/{term}"]) for r in records if isinstance(r.get(f"{split}/{term}"), float)
                and ("eval/loss" in r) == (split == "eval")]
      if points:
        ax.plot(*zip(*points), style, label=split, markersize=3)
    ax.set(title=term, xlabel="step")
    if term == "loss" or term in ("mse", "bce", "sse", "kl"):
      ax.set_yscale("log")
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(terms):]:
    ax.axis("off")
  return save_figure(fig, path, title, dpi=110)
