"""Which figures a run gets, drawn from its parameters and its test codes.

`model_figures` need only the parameters (reconstructions, denoising, filters, curves), so
they are drawn while the metrics are computed; `code_figures` need the test codes (scatter,
decoded manifold, retrieval). Every figure is a PNG in `<run>/figures/` (and, through the
writer, an image on W&B).
"""
import os
from typing import Dict

import jax
import numpy as np

from ae_research import batched
from ae_research.evaluation import metrics as metrics_lib
from ae_research.evaluation import probes
from ae_research.figures.curves import training_curves
from ae_research.figures.grids import filter_grid, manifold_codes, manifold_grid
from ae_research.figures.images import image_rows
from ae_research.figures.latent import code_scatter
from ae_research.figures.retrieval import retrieval_figure
from ae_research.writers.jsonl import read_jsonl


def _path(workdir: str, name: str) -> str:
  return os.path.join(workdir, "figures", f"{name}.png")


def first_layer_filters(s, params):
  """The model's first-layer kernel as a host array (None where the model has none)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  kernel = nnx.merge(s.graphdef, params).first_layer_filters()
  return None if kernel is None else np.asarray(kernel)


def model_figures(cfg, s, apply, params, test, workdir: str) -> Dict[str, str]:
  """Figures of the model itself: inputs and outputs, denoising, first-layer filters, training curves."""
  data, n, figures = s.data, cfg.trainer.figure_examples, {}
  shown = test["image"][:n]
  recon = apply.images(batched.reconstruct, params, shown) if s.model.predicts == "reconstruction" else None
  if recon is None:
    pass  # A classifier: no output images.
  elif data.has_paired_targets:
    figures["colorization"] = image_rows([("grey input", shown), ("predicted colour", recon),
                                          ("true colour", test["target"][:n])], _path(workdir, "colorization"),
                                         data.value_range, title=cfg.name)
  else:
    figures["reconstructions"] = image_rows([("input", shown), ("reconstruction", recon)],
                                            _path(workdir, "reconstructions"), data.value_range, title=cfg.name)
  noise = (s.corruption if s.corruption is not None and not data.has_paired_targets
           else metrics_lib.test_noise(cfg.evaluation.noisy_input, s))
  if noise is not None and recon is not None:
    noisy = np.asarray(noise(jax.random.PRNGKey(cfg.seed), shown))
    figures["denoising"] = image_rows([("clean", shown), ("noisy" if s.corruption is None else "corrupted", noisy),
                                       ("reconstructed", apply.images(batched.reconstruct, params, noisy))],
                                      _path(workdir, "denoising"), data.value_range, title=f"{cfg.name}: denoising")
  kernel = first_layer_filters(s, params)
  if kernel is not None:
    figures["filters"] = filter_grid(kernel, data.image_shape, _path(workdir, "filters"),
                                     title=f"{cfg.name}: first-layer filters (each normalised)")
  log = os.path.join(workdir, "metrics.jsonl")
  records = read_jsonl(log) if os.path.exists(log) else []
  if any(k.startswith("train/") for r in records for k in r):  # Not for an evaluation-only run (epochs=0).
    figures["curves"] = training_curves(records, _path(workdir, "curves"), title=cfg.name)
  return figures


def code_figures(cfg, s, apply, params, test, codes: np.ndarray, workdir: str) -> Dict[str, str]:
  """Figures of the test codes: the scatter, the decoded 2-D manifold, retrieval by cosine distance."""
  data = s.data
  figures = {"codes": code_scatter(codes, test["label"], _path(workdir, "codes"), data.label_name,
                                   title=f"{cfg.name}: test-set codes", class_names=data.class_names)}
  code_rank = len(jax.eval_shape(s.model.encode, jax.ShapeDtypeStruct((1, *data.image_shape), np.float32)).shape)
  if codes.shape[1] == 2 and code_rank == 2 and s.model.stage == 0:
    extent = (-3.0, 3.0, -3.0, 3.0) if s.model.variational else tuple(
        v for d in range(2) for v in np.percentile(codes[:, d], [1, 99]))
    decoded = apply.images(batched.decode, params, manifold_codes(30, *extent))
    figures["manifold"] = manifold_grid(decoded, 30, extent, _path(workdir, "manifold"), data.value_range,
                                        title=f"{cfg.name}: decoder over a 30x30 code grid")
  if data.labels_are_classes:
    queries = np.arange(5)
    neighbours, distances = probes.cosine_neighbours(codes, queries, 4)
    figures["retrieval"] = retrieval_figure(test["image"][queries], test["image"][neighbours], distances,
                                            _path(workdir, "retrieval"), data.value_range,
                                            [data.class_name(y) for y in test["label"][queries]],
                                            [[data.class_name(y) for y in row] for row in test["label"][neighbours]])
  return figures
