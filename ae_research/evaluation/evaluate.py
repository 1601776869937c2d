"""Evaluation of a trained model: metrics -> eval.json, figures -> figures/*.png (and W&B).

Runs at the end of every training run and from `ae-eval run_dir=PATH` on a saved run.
"""
import concurrent.futures
import os
import time
from typing import Any, Callable, Dict, MutableMapping, Optional, Tuple

import numpy as np

from ae_research import batched
from ae_research.batched import BatchedApply
from ae_research.evaluation import baselines, drawing, filters
from ae_research.evaluation import metrics as metrics_lib
from ae_research.evaluation import probes
from ae_research.losses.regularizers import Contractive
from ae_research.run_dir import write_json


# The probes' examples (training subset, retrieval queries, regression halves) do not follow the
# run's seed: runs with different seeds are probed on the same examples, and the raw-pixel
# baselines are one computation per data set (cached, see baselines.py).
PROBE_SEED = 0


def _limit(split: Dict[str, np.ndarray], n) -> Dict[str, np.ndarray]:
  return split if not n else {k: v[:n] for k, v in split.items()}


def batched_apply(s) -> BatchedApply:
  return BatchedApply(s.graphdef, s.mesh, s.plan.eval_batch_size, s.unroll)


PerExampleHook = Callable[[Dict[str, np.ndarray]], None]


def compute_metrics(cfg, s, params, on_per_example: Optional[PerExampleHook] = None) -> Dict[str, Any]:
  """All applicable metrics of the model with `params`. A reconstructing model's per-example test
  arrays (codes among them) go to `on_per_example` as soon as they exist, before the probes."""
  apply, test = batched_apply(s), _limit(s.data.test, cfg.evaluation.max_test)
  if s.model.predicts == "classes":
    out = metrics_lib.classification(apply, params, test)
  else:
    out = reconstruction_metrics(cfg, s, params, apply, test, on_per_example)
  kernel = drawing.first_layer_filters(s, params)
  if kernel is not None:
    out.update(filters.filter_metrics(kernel, s.model.first_layer_filters(), s.data.image_shape))
  return out


def reconstruction_metrics(cfg, s, params, apply: BatchedApply, test,
                           on_per_example: Optional[PerExampleHook] = None) -> Dict[str, Any]:
  ecfg, data = cfg.evaluation, s.data
  jacobian = ecfg.jacobian if ecfg.jacobian is not None else any(
      isinstance(t, Contractive) for t in s.objective.terms.values())
  per_example = metrics_lib.evaluate_split(apply, params, test, s.corruption, data.value_range, jacobian=jacobian,
                                           seed=cfg.seed)
  if on_per_example is not None:
    on_per_example(per_example)
  out = metrics_lib.summarize(per_example)
  noise = metrics_lib.test_noise(cfg.evaluation.noisy_input, s)
  if noise is not None:
    noisy = metrics_lib.evaluate_split(apply, params, test, noise, data.value_range, seed=cfg.seed)
    out.update({"test/noisy_input_psnr": float(noisy["psnr_corrupted"].mean()),
                "test/noisy_reconstruction_psnr": float(noisy["psnr"].mean())})
  if s.model.variational and "test/elbo" in out and ecfg.iwae_samples > 0:
    out.update(metrics_lib.likelihood(apply, params, _limit({"image": test["image"]}, ecfg.iwae_max_test),
                                      ecfg.iwae_samples, seed=cfg.seed))
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
  return out


def evaluate_and_draw(cfg, s, params, workdir: str, step: int,
                      seconds: Optional[MutableMapping[str, float]] = None) -> Tuple[Dict[str, Any], Dict[str, str]]:
  """Metrics (also written to eval.json, atomically) and figures of a trained model.

  One worker thread draws (matplotlib's pyplot is not thread-safe, so only it draws) while the
  metrics are computed: first the model's figures, then the codes' figures, queued as soon as the
  test codes exist, so they overlap the probes, k-NN and retrieval (the warm demo, three
  interleaved pairs: evaluation + figures' wait 3.09-3.28 -> 2.77-2.91 s; 2026-11-24).
  Wall times go to `seconds`: "eval" until the metrics are written, "figures" for the wait after.
  """
  seconds = {} if seconds is None else seconds
  os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
  test, apply, draw = _limit(s.data.test, cfg.evaluation.max_test), batched_apply(s), cfg.trainer.figures
  t = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="figures") as pool:
    drawn = [pool.submit(drawing.model_figures, cfg, s, apply, params, test, workdir)] if draw else []

    def draw_codes(per_example):
      if draw and "code" in per_example:
        drawn.append(pool.submit(drawing.code_figures, cfg, s, apply, params, test, per_example["code"], workdir))

    out = compute_metrics(cfg, s, params, on_per_example=draw_codes)
    out["step"] = int(step)
    write_json(os.path.join(workdir, "eval.json"), out)
    seconds["eval"] = seconds.get("eval", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    figures = {name: path for future in drawn for name, path in future.result().items()}
  seconds["figures"] = seconds.get("figures", 0.0) + time.perf_counter() - t
  return out, figures
