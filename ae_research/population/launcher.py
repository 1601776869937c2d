"""`hydra/launcher=population`: a Hydra launcher that trains a whole sweep as populations.

`ae-train -m population=on seed=0,1,2,3 optimizer.learning_rate=1e-4,1e-3` (the
`population` config group selects this launcher) composes every job exactly as Hydra's
basic launcher does (same run directories, `.hydra/` files and overrides), then hands
all of them to `train_runs`, which trains the jobs that differ only in numbers in one
compiled program and the rest one after another. Each job's return value is its
objective (`objective_metric`), so sweepers see the same results as from separate runs.

As with `ae-train`, each job's run directory is locked and its record checked before its
`.hydra/` is written; a job that fails (refused, bad config, a member whose loss turned NaN)
fails alone: it is recorded in the sweep directory and the other jobs train.
"""
import logging
import math
import sys
from typing import List, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("ae_research")


class PopulationLauncher(Launcher):

  def __init__(self) -> None:
    super().__init__()
    self.config: Optional[DictConfig] = None
    self.hydra_context: Optional[HydraContext] = None

  def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
    del task_function  # The jobs are trained together below, not one call each.
    self.config, self.hydra_context = config, hydra_context

  def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    from ae_research.errors import Interrupted, UserError  # pylint: disable=g-import-not-at-top
    from ae_research.population.runs import train_runs  # pylint: disable=g-import-not-at-top  (jax import)
    from ae_research.run_dir import finished_summary, hydra_files, lock, record  # pylint: disable=g-import-not-at-top
    setup_globals()
    configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
    returns: List[JobReturn] = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
      log.info("#%d : %s", idx, " ".join(filter_overrides(overrides)))
      sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
      with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
      # Hydra's own job set-up (run directory); the task only resolves the config while this job's
      # HydraConfig is current (run names and W&B groups come from it).
      returns.append(run_job(hydra_context=self.hydra_context, task_function=OmegaConf.resolve, config=sweep_config,
                             job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir"))
    workdirs = [r.hydra_cfg.hydra.runtime.output_dir for r in returns]
    todo, held = [], []
    try:
      for i, (ret, workdir) in enumerate(zip(returns, workdirs)):
        try:
          if not ret.cfg.trainer.distributed.enabled:
            held.append(lock.acquire(workdir))
          done = finished_summary(workdir, ret.cfg) if ret.cfg.trainer.resume else None
          if done is not None:
            log.info("#%d already finished in %s (trainer.resume=true): skipped", initial_job_idx + i, workdir)
            ret.return_value = float(done.get(ret.cfg.objective_metric, float("nan")))
            ret.status = JobStatus.COMPLETED
            continue
          if ret.cfg.trainer.resume and record.has_checkpoint(workdir):
            record.check_resume(workdir, ret.cfg)
          hydra_files.save(workdir, ret.cfg, ret.hydra_cfg, record.holds_run(workdir))
          todo.append(i)
        except UserError as e:
          self._failed(ret, initial_job_idx + i, workdir, e)
      try:
        results = train_runs([returns[i].cfg for i in todo], [workdirs[i] for i in todo])
      except Interrupted as e:  # Preempted: every member saved its checkpoint; re-run with trainer.resume=true.
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    finally:
      for key in held:
        lock.release(key)
      for workdir in workdirs:
        hydra_files.forget(workdir)
    for i, result in zip(todo, results):
      ret = returns[i]
      if isinstance(result, Exception):
        self._failed(ret, initial_job_idx + i, workdirs[i], result)
      else:
        ret.return_value = float(result.get(ret.cfg.objective_metric, float("nan")))
        ret.status = JobStatus.COMPLETED
    configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
    return returns

  def _failed(self, ret: JobReturn, job: int, workdir: str, error: Exception) -> None:
    """Job `job` failed with the user error `error`: reported and recorded; the sweep goes on."""
    from ae_research.run_dir import failures  # pylint: disable=g-import-not-at-top
    print(f"error: job #{job} ({workdir}): {error}", file=sys.stderr)
    failures.record(self.config.hydra.sweep.dir, job, workdir, list(ret.overrides), str(error))
    # COMPLETED with a NaN objective, not FAILED: a sweeper raises the error of a FAILED job and ends the
    # multirun, before the other jobs' results and the comparison (the failure is in failed_jobs/).
    ret.return_value, ret.status = math.nan, JobStatus.COMPLETED
