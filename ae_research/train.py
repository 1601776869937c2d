"""`ae-train` / `python -m ae_research.train`: the Hydra app (thin; the work is in training/).

User errors (bad config, missing data, NaN loss, ...) end the run with one line on
stderr and exit status 2; set HYDRA_FULL_ERROR=1 to see tracebacks.
"""
import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ae_research.config import CONFIG_DIR, register_schemas  # CONFIG_DIR: public here too (tests, notebooks).
from ae_research.errors import UserError
from ae_research.process import freeze_collector_at_exit
from ae_research.run_dir import finished_summary

# Hydra instantiates launchers only from the `hydra_plugins` namespace package; ours (the
# population launcher) lives in this folder, which must be on sys.path before Hydra scans.
PLUGIN_PATH = str(Path(__file__).resolve().parent / "population" / "plugins")
if PLUGIN_PATH not in sys.path:
  sys.path.append(PLUGIN_PATH)
log = logging.getLogger("ae_research")

register_schemas()
# orbax reports every checkpoint step at INFO through absl; keep the console for the run.
logging.getLogger("absl").setLevel(logging.WARNING)
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "Unable to initialize backend 'tpu'".


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
  from ae_research.training import train_and_evaluate  # pylint: disable=g-import-not-at-top  (jax after --help)
  freeze_collector_at_exit()
  workdir = HydraConfig.get().runtime.output_dir
  done = finished_summary(workdir, cfg) if cfg.trainer.resume else None
  if done is not None:  # A re-run sweep: this job already finished.
    print(f"{workdir} already finished (trainer.resume=true): skipped")
    return float(done.get(cfg.objective_metric, float("nan")))
  try:
    summary = train_and_evaluate(cfg, workdir)
  except UserError as e:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
      raise
    print(f"error: {e}", file=sys.stderr)
    sys.exit(getattr(e, "exit_code", 2))
  shown = "  ".join(f"{k}={summary[k]:.4g}" for k in ("eval/loss", "train/samples_per_s") if summary.get(k) is not None)
  print(f"{shown}\noutputs in {workdir}: metrics.jsonl, summary.json, eval.json, checkpoints/, figures/, config.yaml")
  return float(summary.get(cfg.objective_metric, float("nan")))


if __name__ == "__main__":
  main()  # pylint: disable=no-value-for-parameter
