"""`ae-eval run_dir=PATH [evaluation.KEY=VALUE ...]`: evaluate a saved run's latest checkpoint.

Writes eval.json and figures/ into the run directory, and logs them to the run's W&B run
when it had one. Overrides use the run config's dotted keys (e.g. evaluation.likelihood.samples=500, or
'evaluation.evaluators=[reconstruction,likelihood]' to run a subset). A checkpoint whose
parameters hold NaN or inf (a run that diverged) is refused: every metric would be NaN.
"""
import os
import sys

from omegaconf import OmegaConf

from ae_research.errors import CheckpointError, ConfigError, OutputError, UserError, write_error
from ae_research.process import freeze_collector_at_exit


def evaluate_run(run_dir: str, overrides=()) -> dict:
  from ae_research.config import build  # pylint: disable=g-import-not-at-top
  from ae_research.evaluation import base as evaluation  # pylint: disable=g-import-not-at-top
  from ae_research.evaluation.evaluate import evaluate_and_draw  # pylint: disable=g-import-not-at-top
  from ae_research.training.saved import load_run  # pylint: disable=g-import-not-at-top
  from ae_research.writers import WandbWriter, resolve_mode  # pylint: disable=g-import-not-at-top
  from ae_research.checkpoint import all_finite  # pylint: disable=g-import-not-at-top
  run = load_run(run_dir)
  cfg = OmegaConf.merge(run.cfg, OmegaConf.from_dotlist(list(overrides)))
  step = int(run.state.step)
  if not all_finite(run.variables):
    raise CheckpointError(f"{run_dir}: the parameters of its checkpoint (step {step}) hold NaN or inf values, so "
                          "every metric would be NaN; the run diverged: train it again with a lower "
                          "optimizer.learning_rate")
  evaluators = evaluation.resolve(cfg.evaluation, run.setup, build)  # As the overrides choose them.
  metrics, figures = evaluate_and_draw(cfg, run.setup, run.variables, run_dir, step, evaluators=evaluators)
  wb = cfg.logger.wandb
  if os.path.exists(os.path.join(run_dir, "wandb_run_id.txt")) and resolve_mode(wb.mode) != "disabled":
    writer = WandbWriter(run_dir, OmegaConf.to_container(cfg, resolve=True), mode=resolve_mode(wb.mode),
                         project=wb.project, entity=wb.entity, group=wb.group, tags=wb.tags, job_type=wb.job_type,
                         name=wb.name)
    writer.write_images(step, figures)
    writer.write_summary({f"final/{k}": v for k, v in metrics.items()})
    writer.close()
  return metrics


def main(argv=None) -> None:
  args = list(sys.argv[1:] if argv is None else argv)
  freeze_collector_at_exit()
  run_dirs = [a.split("=", 1)[1] for a in args if a.startswith("run_dir=")]
  overrides = [a for a in args if not a.startswith("run_dir=")]
  try:
    if len(run_dirs) != 1 or any("=" not in a for a in overrides):
      raise ConfigError("usage: ae-eval run_dir=PATH [evaluation.KEY=VALUE ...]")
    try:
      metrics = evaluate_run(run_dirs[0], overrides)
    except OSError as e:  # eval.json or a figure the disk refused.
      if write_error(e) is None:
        raise
      raise OutputError(f"cannot write {e.filename or run_dirs[0]} ({e.strerror}); free space or fix the "
                        "permissions, then run ae-eval again") from None
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  width = max(len(k) for k in metrics)
  print("\n".join(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                  for k, v in sorted(metrics.items())))
  print(f"wrote {os.path.join(run_dirs[0], 'eval.json')} and {os.path.join(run_dirs[0], 'figures')}/")


if __name__ == "__main__":
  main()
