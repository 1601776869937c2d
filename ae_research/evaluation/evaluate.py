"""Evaluation of a trained model: metrics -> eval.json, figures -> figures/*.png (and W&B).

Runs at the end of every training run and from `ae-eval run_dir=PATH` on a saved run.
"""
import json
import os
from typing import Any, Dict, Tuple

import numpy as np
from flax import nnx

from ae_research import inference
from ae_research.evaluation import metrics as metrics_lib
from ae_research.evaluation import probes
from ae_research.figures.curves import training_curves
from ae_research.figures.grids import filter_grid, manifold_codes, manifold_grid
from ae_research.figures.images import image_rows
from ae_research.figures.latent import code_scatter
from ae_research.figures.retrieval import retrieval_figure
from ae_research.losses.regularizers import Contractive
from ae_research.writers.jsonl import read_jsonl


def _first_kernel(model):
  for name in ("encoder", "trunk", "encoders"):
    layers = getattr(model, name, None)
    if layers is not None and len(layers):
      return np.asarray(layers[0].kernel[...])
  return None


def _limit(split: Dict[str, np.ndarray], n) -> Dict[str, np.ndarray]:
  return split if not n else {k: v[:n] for k, v in split.items()}


def compute_metrics(cfg, s, params) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """All applicable metrics of the model with `params`; also returns the per-example test arrays."""
  ecfg, data = cfg.evaluation, s.data
  model = nnx.merge(s.graphdef, params)
  test = _limit(data.test, ecfg.max_test)
  is_vae = hasattr(model, "posterior")
  contractive = any(isinstance(t, Contractive) for t in s.objective.terms.values())
  per_example = metrics_lib.evaluate_split(
      s.graphdef, params, test, s.mesh, s.plan.eval_batch_size, s.corruption, data.value_range,
      iwae_samples=ecfg.iwae_samples if is_vae else 0, contractive=contractive, unroll=s.unroll, seed=cfg.seed)
  out = metrics_lib.summarize(per_example)
  codes = per_example["code"]
  input_dim = int(np.prod(data.image_shape))
  if "target" not in test and codes.shape[1] < input_dim and s.corruption is None:
    out["baseline/pca_mse"] = probes.pca_reconstruction_mse(data.train["image"], test["image"], codes.shape[1],
                                                            seed=cfg.seed)
    out["test/mse_over_pca_mse"] = out["test/mse"] / out["baseline/pca_mse"]
  if "target" in test and test["target"].shape[-1] == 3 and test["image"].shape[-1] == 1:
    # Colourisation baseline: the grey input copied to the three channels.
    out["baseline/grey_as_colour_mse"] = float(np.mean(np.square(np.repeat(test["image"], 3, -1) - test["target"])))
  if data.label_name not in ("class", "photo"):  # An ordinal label (block height): is it a function of the code?
    out[f"codes/knn_r2_{data.label_name}"] = probes.knn_regression_r2(codes, test["label"], seed=cfg.seed)
  if data.label_name == "class" and ecfg.probes:
    rows = np.random.default_rng(cfg.seed).permutation(data.num_train)[:ecfg.probe_max_train]
    train_x, train_y = data.train["image"][rows], data.train["label"][rows]
    train_codes = inference.codes(s.graphdef, params, train_x, s.plan.eval_batch_size, s.mesh, s.unroll)
    for name, (tr, te) in {"codes": (train_codes, codes), "pixels": (train_x, test["image"])}.items():
      out[f"probe/linear_{name}"] = probes.linear_probe_accuracy(tr, train_y, te, test["label"], seed=cfg.seed)
      out[f"probe/knn{ecfg.knn_k}_{name}"] = probes.knn_accuracy(tr, train_y, te, test["label"], k=ecfg.knn_k,
                                                                  seed=cfg.seed)
    for k, p in probes.retrieval_precision(codes, test["label"], num_queries=ecfg.retrieval_queries,
                                           seed=cfg.seed).items():
      out[f"retrieval/precision@{k}"] = p
  return out, per_example


def draw_figures(cfg, s, params, per_example, workdir: str) -> Dict[str, str]:
  """Every figure that applies to this model and data; returns {name: png path}."""
  data, figdir, n = s.data, os.path.join(workdir, "figures"), cfg.trainer.figure_examples
  test = _limit(data.test, cfg.evaluation.max_test)
  model = nnx.merge(s.graphdef, params)
  path = lambda name: os.path.join(figdir, f"{name}.png")
  apply = lambda x, fn: inference.apply_in_batches(s.graphdef, params, x, fn, s.plan.eval_batch_size, s.mesh,
                                                   s.unroll)
  figures = {"codes": code_scatter(per_example["code"], test["label"], path("codes"), data.label_name,
                                   title=f"{cfg.name}: test-set codes")}
  codes = per_example["code"]
  if codes.shape[1] == 2 and model.encode(test["image"][:1]).ndim == 2:
    extent = (-3.0, 3.0, -3.0, 3.0) if hasattr(model, "posterior") else tuple(
        v for d in range(2) for v in np.percentile(codes[:, d], [1, 99]))
    grid = manifold_codes(30, *extent)
    pad = -len(grid) % s.mesh.devices.size
    decoded = inference.apply_in_batches(s.graphdef, params, np.concatenate([grid, grid[:pad]]),
                                         lambda m, z: m.decode(z), len(grid) + pad, s.mesh)[:len(grid)]
    figures["manifold"] = manifold_grid(decoded, 30, extent, path("manifold"), data.value_range,
                                        title=f"{cfg.name}: decoder over a 30x30 code grid")
  shown = test["image"][:n]
  recon = apply(shown, lambda m, x: m(x)[0])
  if "target" in test:
    figures["colorization"] = image_rows([("grey input", shown), ("predicted colour", recon),
                                          ("true colour", test["target"][:n])], path("colorization"),
                                         data.value_range, title=cfg.name)
  else:
    figures["reconstructions"] = image_rows([("input", shown), ("reconstruction", recon)], path("reconstructions"),
                                            data.value_range, title=cfg.name)
  if s.corruption is not None and "target" not in test:
    import jax  # pylint: disable=g-import-not-at-top
    noisy = np.asarray(s.corruption(jax.random.PRNGKey(cfg.seed), shown))
    figures["denoising"] = image_rows([("clean", shown), ("corrupted", noisy),
                                       ("reconstructed", apply(noisy, lambda m, x: m(x)[0]))],
                                      path("denoising"), data.value_range, title=f"{cfg.name}: denoising")
  kernel = _first_kernel(model)
  if kernel is not None:
    figures["filters"] = filter_grid(kernel, data.image_shape, path("filters"),
                                     title=f"{cfg.name}: first-layer filters (each normalised)")
  if data.label_name == "class":
    queries = np.arange(5)
    neighbours, distances = probes.cosine_neighbours(codes, queries, 4)
    figures["retrieval"] = retrieval_figure(test["image"][queries], test["image"][neighbours], distances,
                                            path("retrieval"), data.value_range, test["label"][queries],
                                            test["label"][neighbours])
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    figures["curves"] = training_curves(read_jsonl(os.path.join(workdir, "metrics.jsonl")), path("curves"),
                                        title=cfg.name)
  return figures


def evaluate_and_draw(cfg, s, params, workdir: str, step: int) -> Tuple[Dict[str, Any], Dict[str, str]]:
  """Metrics (also written to eval.json, atomically) and figures of a trained model."""
  os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
  out, per_example = compute_metrics(cfg, s, params)
  out["step"] = int(step)
  tmp = os.path.join(workdir, "eval.json.tmp")
  with open(tmp, "w") as f:
    json.dump(out, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(workdir, "eval.json"))
  figures = draw_figures(cfg, s, params, per_example, workdir) if cfg.trainer.figures else {}
  return out, figures
