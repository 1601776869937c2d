"""The members of one training program and what each owns: config, setup, run directory (and its
lock), checkpoints, writer, state. Built and opened here; `loop.py` trains them.

A single run is a population of one; members of a population share the data set and the mesh, and
each keeps its own run directory, log, checkpoints and W&B run, written as if it had trained alone.
Opening a member's directory locks it, refuses a resume that changes what the run trains, and only
then writes anything (`run_dir/record.py`).
"""
import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Union

from omegaconf import DictConfig, OmegaConf

from ae_research import distributed, run_dir
from ae_research.run_dir import lock, record
from ae_research.cache import enable_compilation_cache
from ae_research.checkpoint import Checkpointer
from ae_research.errors import UserError
from ae_research.sharding import check_divisible, make_mesh, to_host
from ae_research.training.programs import CannotShare
from ae_research.training.resume import initial_state
from ae_research.training.setup import Setup, prepare_data, setup
from ae_research.writers import create_writer, resolve_mode


@dataclasses.dataclass
class Member:
  cfg: DictConfig
  workdir: str
  setup: Setup
  ckpt: Optional[Checkpointer] = None
  writer: Any = None
  state: Any = None
  error: Optional[Exception] = None
  requested: Optional[DictConfig] = None  # The config as asked for (recorded); `cfg` unless greedy stages ran.
  lock_key: Optional[str] = None
  resumed_step: Optional[int] = None  # The checkpoint's step a resumed member continues from.
  period_loss: float = 0.0  # Sum of the training losses since the last epoch record.
  eval_metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
  train_loss: Optional[float] = None  # Mean training loss of the last period.

  @property
  def asked(self) -> DictConfig:
    """The config the run was asked for: what its directory records and a resume is checked against."""
    return self.cfg if self.requested is None else self.requested


def start_runtime(cfg: DictConfig) -> None:
  """What must happen before anything touches a device: `jax.distributed`, the compilation cache."""
  distributed.initialize(cfg.trainer.get("distributed"))
  enable_compilation_cache(cfg.trainer.compilation_cache)


def checked_setup(cfg: DictConfig, **kwargs) -> Setup:
  """`setup` plus the checks that need no data (W&B mode): all before a run directory is touched."""
  s = setup(cfg, **kwargs)
  resolve_mode(cfg.logger.wandb.mode)
  return s


def build_setups(cfgs: Sequence[DictConfig]) -> List[Union[Setup, Exception]]:
  """Each config's Setup (one data set for all, a mesh for the members that build), or its error."""
  try:
    data = prepare_data(cfgs[0])  # Members share the data set (their configs differ only in numbers).
    mesh = make_mesh(cfgs[0].trainer.devices, members=len(cfgs))
  except UserError as e:
    return [e] * len(cfgs)
  out = []
  for cfg in cfgs:
    try:
      out.append(checked_setup(cfg, data=data, mesh=mesh))
    except UserError as e:
      out.append(e)
  built = [s for s in out if isinstance(s, Setup)]
  if built and len(built) != len(cfgs):  # Fewer members: the population axis may change.
    mesh = make_mesh(cfgs[0].trainer.devices, members=len(built))
    try:
      check_divisible(built[0].data.batch_size, mesh)
    except UserError as e:
      raise CannotShare(str(e)) from None
    out = [dataclasses.replace(s, mesh=mesh) if isinstance(s, Setup) else s for s in out]
  return out


def open_run_directories(members: Sequence[Member]) -> None:
  """Locks and prepares each member's run directory, checks a resume's config, opens its checkpoints and
  restores or initialises its state.

  A refusal of one member's directory is the run's error for a single run; in a population it
  means the members cannot train together (`CannotShare`: each then trains, and reports, alone).
  """
  for m in members:
    try:
      if distributed.is_main_process():  # One owner per run: the processes of a multi-process run share it.
        m.lock_key = lock.acquire(m.workdir)
      m.workdir = run_dir.prepare(m.workdir)
      m.ckpt = Checkpointer(os.path.join(m.workdir, "checkpoints"), keep=m.cfg.trainer.keep_checkpoints)
      if m.ckpt.latest_step() is not None and m.cfg.trainer.resume:
        record.check_resume(m.workdir, m.asked)
      if distributed.is_main_process():
        m.ckpt.remove_partial()
      resumed = m.ckpt.latest_step() is not None
      m.state = initial_state(m.setup, m.cfg, m.ckpt, m.workdir)
      m.resumed_step = int(to_host(m.state.step)) if resumed else None
    except UserError as e:
      if len(members) == 1:
        raise
      raise CannotShare(f"{m.workdir}: {e}") from None
  if len({int(to_host(m.state.step)) for m in members}) > 1:
    raise CannotShare("the members resume from different steps")


def open_writers(members: Sequence[Member]) -> None:
  """The records of the run's config (config.yaml, fingerprint.json, resumes.jsonl) and the metric writers
  (one progress bar, the first member's) of every member."""
  for i, m in enumerate(members):
    if distributed.is_main_process():
      record.record_start(m.workdir, m.cfg, m.asked, m.resumed_step)
    logger = m.cfg.logger if i == 0 else OmegaConf.merge(m.cfg.logger, {"progress": False})
    m.writer = create_writer(logger, m.workdir, OmegaConf.to_container(m.cfg, resolve=True),
                             m.setup.plan.total_steps, int(to_host(m.state.step)),
                             label=f"member {i}" if len(members) > 1 else "")


def close(members: Sequence[Member], quiet: bool = False) -> None:
  """Closes every member's writer and checkpoints and releases its lock, even when one of them fails; raises
  the first user error of closing (a disk full) unless `quiet` (another error is already on its way)."""
  error = None
  for m in members:
    for part in (m.writer, m.ckpt):
      try:
        if part is not None:
          part.close()
      except UserError as e:  # E.g. a disk full: report the first, still close and unlock the rest.
        error = error or e
    m.writer = m.ckpt = None
    if m.lock_key is not None:
      lock.release(m.lock_key)
      m.lock_key = None
  if error is not None and not quiet:
    raise error
