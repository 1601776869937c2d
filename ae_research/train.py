"""`ae-train` / `python -m ae_research.train`: the Hydra app (thin; the work is in training/).

User errors (bad config, missing data, NaN loss, a run directory another process holds, a
disk that is full, ...) end the run with one line on stderr and a non-zero exit status (2;
128+N for signal N); set HYDRA_FULL_ERROR=1 to see tracebacks. In a multirun, a job's user
error ends that job only: it is recorded in the sweep directory (`run_dir/failures.py`), the
other jobs run, and the multirun exits non-zero when it ends (`compare.CompareCallback`).

Before anything is written, the run directory is locked (`run_dir/lock.py`) and its record is
checked: a finished run is reused only under the same config, a resume is refused when it
changes what the run trains (`run_dir/record.py`). Only then is `.hydra/` written.
"""
import contextlib
import logging
import math
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ae_research.config import CONFIG_DIR, register_schemas  # CONFIG_DIR: public here too (tests, notebooks).
from ae_research.errors import Interrupted, OutputError, UserError, write_error
from ae_research.process import freeze_collector_at_exit
from ae_research.run_dir import failures, finished_summary, hydra_files, lock, record

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


def _owned(workdir: str, cfg: DictConfig):
  """The run directory's lock for this job (a multi-process run's trainer takes it on process 0 only)."""
  return contextlib.nullcontext() if cfg.trainer.distributed.enabled else lock.hold(workdir)


@contextlib.contextmanager
def _forgetting(workdir: str):
  try:
    yield
  finally:
    hydra_files.forget(workdir)  # A job refused after this point never writes its .hydra/.


def _train(cfg: DictConfig, workdir: str) -> float:
  with _owned(workdir, cfg), _forgetting(workdir):
    done = finished_summary(workdir, cfg) if cfg.trainer.resume else None
    if done is not None:  # A re-run sweep: this job already finished, under the same config.
      print(f"{workdir} already finished (trainer.resume=true): skipped")
      return float(done.get(cfg.objective_metric, float("nan")))
    if cfg.trainer.resume and record.has_checkpoint(workdir):
      record.check_resume(workdir, cfg)
    hydra_files.save(workdir, cfg, HydraConfig.instance().cfg, record.holds_run(workdir))
    from ae_research.training import train_and_evaluate  # pylint: disable=g-import-not-at-top  (jax after --help)
    summary = train_and_evaluate(cfg, workdir)
  shown = "  ".join(f"{k}={summary[k]:.4g}" for k in ("eval/loss", "train/samples_per_s") if summary.get(k) is not None)
  print(f"{shown}\noutputs in {workdir}: {', '.join(written_outputs(workdir))}")
  return float(summary.get(cfg.objective_metric, float("nan")))


OUTPUTS = ("metrics.jsonl", "summary.json", "eval.json", "checkpoints/", "figures/", "config.yaml")


def written_outputs(workdir: str):
  """The run's outputs that exist (evaluation and figures are optional; a figures/ left empty is not listed)."""
  def there(name):
    path = os.path.join(workdir, name.rstrip("/"))
    return os.path.isdir(path) and bool(os.listdir(path)) if name.endswith("/") else os.path.exists(path)
  return [name for name in OUTPUTS if there(name)]


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> float:
  freeze_collector_at_exit()
  hc = HydraConfig.get()
  workdir = hc.runtime.output_dir
  try:
    try:
      return _train(cfg, workdir)
    except OSError as e:  # A write no module turned into a message (a figure, Hydra's job log): still one line.
      cause = write_error(e)
      if cause is None:
        raise
      raise OutputError(f"cannot write {cause.filename or workdir} ({cause.strerror}); free space or fix the "
                        "permissions, then continue with trainer.resume=true (the checkpoints are intact)") from None
  except UserError as e:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
      raise
    if hc.mode == RunMode.MULTIRUN and not isinstance(e, Interrupted):  # This job only: the sweep goes on.
      print(f"error: job #{hc.job.num} ({workdir}): {e}", file=sys.stderr)
      failures.record(hc.sweep.dir, hc.job.num, workdir, list(hc.overrides.task), str(e))
      return math.nan
    print(f"error: {e}", file=sys.stderr)
    sys.exit(getattr(e, "exit_code", 2))


def main() -> None:
  """The `ae-train` entry point: the Hydra app, with `.hydra/` written by us once the job is accepted."""
  sys.argv = hydra_files.with_own_record(sys.argv)
  _app()  # pylint: disable=no-value-for-parameter


if __name__ == "__main__":
  main()
