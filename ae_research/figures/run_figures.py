"""The figures every run draws at its end: code scatter (SPEC 1a) and reconstructions."""
import os
from typing import Dict

import numpy as np

from ae_research import inference
from ae_research.figures.images import image_rows
from ae_research.figures.latent import code_scatter


def draw_run_figures(graphdef, params, data, mesh, figdir: str, batch_size: int, examples: int,
                     title: str = "", unroll: bool = False) -> Dict[str, str]:
  """Writes PNGs under `figdir`; returns {figure name: path}."""
  test = data.test
  codes = inference.encode(graphdef, params, test["image"], batch_size, mesh, unroll)
  figures = {"codes": code_scatter(codes, test["label"], os.path.join(figdir, "codes.png"),
                                   label_name=data.label_name, title=f"{title}: test-set codes")}
  shown = test["image"][:examples]
  recon = inference.reconstruct(graphdef, params, shown, batch_size, mesh, unroll)
  rows = [("input", shown), ("reconstruction", np.asarray(recon))]
  if "target" in test:
    rows.insert(1, ("target", test["target"][:examples]))
  figures["reconstructions"] = image_rows(rows, os.path.join(figdir, "reconstructions.png"),
                                          value_range=data.value_range, title=title)
  return figures
