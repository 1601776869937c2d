"""What a finished run leaves behind: eval.json and figures (process 0), and summary.json's contents."""
import dataclasses
import os
import statistics
import time
from typing import Any, Dict, MutableMapping, Optional

from ae_research import distributed
from ae_research.errors import OutputError, write_error
from ae_research.sharding import local_mesh, put_replicated
from ae_research.training.setup import Setup


_trained_before = False  # Whether a run of this process has already reached its first step.


def seconds_to_first_step(run_start: float) -> Optional[float]:
  """`time/to_first_step_s`: for the process's first run, wall seconds since the process started
  (imports included: what start-up costs); for later runs in the same process (sweeps, studies,
  notebooks), seconds since that run's own start (`run_start`, a `time.perf_counter()` value)."""
  global _trained_before
  if _trained_before:
    return time.perf_counter() - run_start
  _trained_before = True
  return seconds_since_process_start()


def seconds_since_process_start() -> Optional[float]:
  """Wall seconds since this process started (Linux; None elsewhere)."""
  try:
    with open("/proc/self/stat") as f:
      start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])  # Field 22, starttime.
    with open("/proc/uptime") as f:
      return float(f.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):
    return None


def final_evaluation(cfg, s: Setup, state, workdir: str, step: int, writer, seconds: MutableMapping[str, float],
                     by_evaluator: Optional[MutableMapping[str, float]] = None) -> Dict[str, Any]:
  """eval.json and the figures (also to the writer) of the model in `state` (host values), on process 0's
  own devices (no collectives); adds their wall time to `seconds` ("eval", "figures"), and each
  evaluator's to `by_evaluator`."""
  if not (cfg.evaluation.enabled and distributed.is_main_process()):
    return {}
  # Imported here: scikit-learn and matplotlib cost ~2 s of start-up that evaluation-free runs skip.
  from ae_research.evaluation.evaluate import evaluate_and_draw  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  here = dataclasses.replace(s, mesh=local_mesh(s.mesh))
  variables = put_replicated(nnx.merge_state(state.params, state.model_state), here.mesh)
  try:
    metrics, figures = evaluate_and_draw(cfg, here, variables, workdir, step, seconds, by_evaluator=by_evaluator)
  except OSError as e:  # eval.json or a figure the disk refused: the checkpoint is saved, evaluate later.
    if write_error(e) is None:
      raise
    raise OutputError(f"cannot write {e.filename or workdir} ({e.strerror}); training finished and is "
                      f"checkpointed: free space, then evaluate with ae-eval run_dir={workdir}") from None
  writer.write_images(step, figures)
  return {k: v for k, v in metrics.items() if k != "step"}


def periodic_metrics(cfg, s: Setup, state) -> Dict[str, float]:
  """The scalars of `s.periodic_evaluators` on the model in `state` (host values), during training (process 0's
  devices; no eval.json, no figures): logged at their step, e.g. MIG over training."""
  from ae_research.evaluation.evaluate import compute_metrics  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  here = dataclasses.replace(s, mesh=local_mesh(s.mesh))
  variables = put_replicated(nnx.merge_state(state.params, state.model_state), here.mesh)
  metrics = compute_metrics(cfg, here, variables, s.periodic_evaluators)
  return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_summary(cfg, s: Setup, step: int, n_devices: int, compile_s: float, rates, train_loss,
                metrics: Dict[str, Any]) -> Dict[str, Any]:
  """summary.json: where the run ended, its speed (median period after the first) and its metrics."""
  steady = rates[1:] or rates
  return {"name": cfg.name, "dataset": s.data.name, "step": step, "trainer/epochs": cfg.trainer.epochs,
          "trainer/max_steps": cfg.trainer.max_steps, "epoch": s.plan.epoch_of(step), "n_devices": n_devices,
          "time/compile_s": compile_s, "train/samples_per_s": statistics.median(steady) if steady else None,
          "train/loss": train_loss, **metrics}
