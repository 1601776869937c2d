"""Evaluation of a trained model: metrics -> eval.json, figures -> figures/*.png (and W&B).

Runs at the end of every training run and from `ae-eval run_dir=PATH` on a saved run.
"""
import os
import time
from typing import Any, Dict, MutableMapping, Optional, Tuple

import jax
import numpy as np

from ae_research import batched
from ae_research.batched import BatchedApply
from ae_research.evaluation import baselines
from ae_research.evaluation import metrics as metrics_lib
from ae_research.evaluation import probes
from ae_research.figures.curves import training_curves
from ae_research.figures.grids import filter_grid, manifold_codes, manifold_grid
from ae_research.figures.images import image_rows
from ae_research.figures.latent import code_scatter
from ae_research.figures.retrieval import retrieval_figure
from ae_research.losses.regularizers import Contractive
from ae_research.run_dir import write_json
from ae_research.writers.jsonl import read_jsonl


# The probes' examples (training subset, retrieval queries, regression halves) do not follow the
# run's seed: runs with different seeds are probed on the same examples, and the raw-pixel
# baselines are one computation per data set (cached, see baselines.py).
PROBE_SEED = 0


def _limit(split: Dict[str, np.ndarray], n) -> Dict[str, np.ndarray]:
  return split if not n else {k: v[:n] for k, v in split.items()}


def batched_apply(s) -> BatchedApply:
  return BatchedApply(s.graphdef, s.mesh, s.plan.eval_batch_size, s.unroll)


def compute_metrics(cfg, s, params) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """All applicable metrics of the model with `params`; also returns the per-example test arrays."""
  ecfg, data, apply = cfg.evaluation, s.data, batched_apply(s)
  test = _limit(data.test, ecfg.max_test)
  contractive = any(isinstance(t, Contractive) for t in s.objective.terms.values())
  per_example = metrics_lib.evaluate_split(
      apply, params, test, s.corruption, data.value_range, iwae_samples=ecfg.iwae_samples if s.model.variational else 0,
      contractive=contractive, seed=cfg.seed)
  out = metrics_lib.summarize(per_example)
  codes = per_example["code"]
  input_dim = int(np.prod(data.image_shape))
  if not data.has_paired_targets and codes.shape[1] < input_dim and s.corruption is None:
    out["baseline/pca_mse"] = baselines.pca_mse(data.train["image"], test["image"], codes.shape[1],
                                                 seed=PROBE_SEED, enabled=ecfg.cache)
    out["test/mse_over_pca_mse"] = out["test/mse"] / out["baseline/pca_mse"]
  if data.has_paired_targets and test["target"].shape[-1] == 3 and test["image"].shape[-1] == 1:
    # Colourisation baseline: the grey input copied to the three channels.
    out["baseline/grey_as_colour_mse"] = float(np.mean(np.square(np.repeat(test["image"], 3, -1) - test["target"])))
  if data.label_kind == "ordinal":  # A quantity (block height): is it a function of the code?
    out[f"codes/knn_r2_{data.label_name}"] = probes.knn_regression_r2(codes, test["label"], seed=PROBE_SEED)
  if data.labels_are_classes and ecfg.probes:
    rows = probes.subset(data.num_train, ecfg.probe_max_train, PROBE_SEED)
    train_x, train_y = data.train["image"][rows], data.train["label"][rows]
    train_codes = apply.images(batched.codes, params, train_x)
    out["probe/linear_codes"] = probes.linear_probe_accuracy(train_codes, train_y, codes, test["label"])
    out[f"probe/knn{ecfg.knn_k}_codes"] = probes.knn_accuracy(train_codes, train_y, codes, test["label"], k=ecfg.knn_k)
    out.update(baselines.pixel_probes(train_x, train_y, test["image"], test["label"], ecfg.knn_k, enabled=ecfg.cache))
    for k, p in probes.retrieval_precision(codes, test["label"], num_queries=ecfg.retrieval_queries,
                                           seed=PROBE_SEED).items():
      out[f"retrieval/precision@{k}"] = p
  return out, per_example


def draw_figures(cfg, s, params, per_example, workdir: str) -> Dict[str, str]:
  """Every figure that applies to this model and data; returns {name: png path}."""
  data, figdir, n = s.data, os.path.join(workdir, "figures"), cfg.trainer.figure_examples
  test = _limit(data.test, cfg.evaluation.max_test)
  apply = batched_apply(s)
  path = lambda name: os.path.join(figdir, f"{name}.png")
  figures = {"codes": code_scatter(per_example["code"], test["label"], path("codes"), data.label_name,
                                   title=f"{cfg.name}: test-set codes", class_names=data.class_names)}
  codes = per_example["code"]
  code_rank = len(jax.eval_shape(s.model.encode, jax.ShapeDtypeStruct((1, *data.image_shape), np.float32)).shape)
  if codes.shape[1] == 2 and code_rank == 2 and s.model.stage == 0:
    extent = (-3.0, 3.0, -3.0, 3.0) if s.model.variational else tuple(
        v for d in range(2) for v in np.percentile(codes[:, d], [1, 99]))
    decoded = apply.images(batched.decode, params, manifold_codes(30, *extent))
    figures["manifold"] = manifold_grid(decoded, 30, extent, path("manifold"), data.value_range,
                                        title=f"{cfg.name}: decoder over a 30x30 code grid")
  shown = test["image"][:n]
  recon = apply.images(batched.reconstruct, params, shown)
  if data.has_paired_targets:
    figures["colorization"] = image_rows([("grey input", shown), ("predicted colour", recon),
                                          ("true colour", test["target"][:n])], path("colorization"),
                                         data.value_range, title=cfg.name)
  else:
    figures["reconstructions"] = image_rows([("input", shown), ("reconstruction", recon)], path("reconstructions"),
                                            data.value_range, title=cfg.name)
  if s.corruption is not None and not data.has_paired_targets:
    noisy = np.asarray(s.corruption(jax.random.PRNGKey(cfg.seed), shown))
    figures["denoising"] = image_rows([("clean", shown), ("corrupted", noisy),
                                       ("reconstructed", apply.images(batched.reconstruct, params, noisy))],
                                      path("denoising"), data.value_range, title=f"{cfg.name}: denoising")
  kernel = first_layer_filters(s, params)
  if kernel is not None:
    figures["filters"] = filter_grid(kernel, data.image_shape, path("filters"),
                                     title=f"{cfg.name}: first-layer filters (each normalised)")
  if data.labels_are_classes:
    queries = np.arange(5)
    neighbours, distances = probes.cosine_neighbours(codes, queries, 4)
    figures["retrieval"] = retrieval_figure(test["image"][queries], test["image"][neighbours], distances,
                                            path("retrieval"), data.value_range,
                                            [data.class_name(y) for y in test["label"][queries]],
                                            [[data.class_name(y) for y in row] for row in test["label"][neighbours]])
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    figures["curves"] = training_curves(read_jsonl(os.path.join(workdir, "metrics.jsonl")), path("curves"),
                                        title=cfg.name)
  return figures


def first_layer_filters(s, params):
  """The model's first-layer kernel as a host array (None where the model has none)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  kernel = nnx.merge(s.graphdef, params).first_layer_filters()
  return None if kernel is None else np.asarray(kernel)


def evaluate_and_draw(cfg, s, params, workdir: str, step: int,
                      seconds: Optional[MutableMapping[str, float]] = None) -> Tuple[Dict[str, Any], Dict[str, str]]:
  """Metrics (also written to eval.json, atomically) and figures of a trained model; their wall
  times are added to `seconds` ("eval", "figures") when given."""
  seconds = {} if seconds is None else seconds
  os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
  t = time.perf_counter()
  out, per_example = compute_metrics(cfg, s, params)
  out["step"] = int(step)
  write_json(os.path.join(workdir, "eval.json"), out)
  seconds["eval"] = seconds.get("eval", 0.0) + time.perf_counter() - t
  t = time.perf_counter()
  figures = draw_figures(cfg, s, params, per_example, workdir) if cfg.trainer.figures else {}
  seconds["figures"] = seconds.get("figures", 0.0) + time.perf_counter() - t
  return out, figures
