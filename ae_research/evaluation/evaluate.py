"""Evaluation of a trained model: the configured evaluators -> eval.json, their figures -> figures/*.png.

Runs at the end of every training run (per population member) and from `ae-eval run_dir=PATH`.
"""
import concurrent.futures
import os
import time
from typing import Any, Dict, MutableMapping, Optional, Sequence, Tuple

import numpy as np

from ae_research.batched import BatchedApply
from ae_research.evaluation import reconstruction
from ae_research.evaluation.base import EvalContext, Evaluator, run_all
from ae_research.run_dir import write_json


def _limit(split: Dict[str, np.ndarray], n) -> Dict[str, np.ndarray]:
  """The first `n` (all: None) test examples as the arrays evaluators compute on: images kept as bytes
  (`ScaledImages`) are read as their float32 values, once, here."""
  return {k: v[:n] for k, v in split.items()}  # v[:None] is all of it: a view of an ndarray.


def batched_apply(s) -> BatchedApply:
  return BatchedApply(s.graphdef, s.mesh, s.plan.eval_batch_size, s.unroll, s.compiler_options)


def make_context(cfg, s, variables) -> EvalContext:
  """The evaluators' shared context for the model with `variables` (its params and state merged)."""
  return EvalContext(s, variables, batched_apply(s), _limit(s.data.test, cfg.evaluation.max_test), name=cfg.name,
                     seed=cfg.seed, cache=cfg.evaluation.cache, figure_examples=cfg.trainer.figure_examples,
                     test_pass=reconstruction.test_pass)


def compute_metrics(cfg, s, variables, evaluators: Optional[Sequence[Evaluator]] = None) -> Dict[str, Any]:
  """The metrics of `evaluators` (default: the setup's) on the model with `variables`; no figures."""
  return run_all(s.evaluators if evaluators is None else evaluators, make_context(cfg, s, variables))


def evaluate_and_draw(cfg, s, variables, workdir: str, step: int, seconds: Optional[MutableMapping[str, float]] = None,
                      evaluators: Optional[Sequence[Evaluator]] = None,
                      by_evaluator: Optional[MutableMapping[str, float]] = None
                      ) -> Tuple[Dict[str, Any], Dict[str, str]]:
  """Metrics (also written to eval.json, atomically) and figures of a trained model.

  One worker thread draws (matplotlib's pyplot is not thread-safe, so only it draws): each
  evaluator's figures are queued as soon as that evaluator has run, so they are drawn while the
  next ones compute (the codes' scatter while the probes run). Training curves come first.
  Wall times go to `seconds`: "eval" until the metrics are written, "figures" for the wait after;
  each evaluator's own to `by_evaluator[name]`.
  """
  seconds = {} if seconds is None else seconds
  evaluators = s.evaluators if evaluators is None else evaluators
  figures_dir = os.path.join(workdir, "figures")
  os.makedirs(figures_dir, exist_ok=True)
  ctx, draw = make_context(cfg, s, variables), cfg.trainer.figures
  t = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="figures") as pool:
    drawn = [pool.submit(_curves, cfg, workdir, figures_dir)] if draw else []
    after = (lambda e: drawn.append(pool.submit(e.figures, ctx, figures_dir))) if draw else None
    out = run_all(evaluators, ctx, after_each=after, seconds=by_evaluator)
    out["step"] = int(step)
    write_json(os.path.join(workdir, "eval.json"), out)
    seconds["eval"] = seconds.get("eval", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    figures = {name: path for future in drawn for name, path in future.result().items()}
  seconds["figures"] = seconds.get("figures", 0.0) + time.perf_counter() - t
  return out, figures


def _curves(cfg, workdir: str, figures_dir: str) -> Dict[str, str]:
  """Every logged loss term against the step, from metrics.jsonl (not for an evaluation-only run)."""
  from ae_research.figures.curves import training_curves  # pylint: disable=g-import-not-at-top
  from ae_research.writers.jsonl import read_jsonl  # pylint: disable=g-import-not-at-top
  log = os.path.join(workdir, "metrics.jsonl")
  records = read_jsonl(log) if os.path.exists(log) else []
  if not any(k.startswith("train/") for r in records for k in r):
    return {}
  return {"curves": training_curves(records, os.path.join(figures_dir, "curves.png"), title=cfg.name)}
