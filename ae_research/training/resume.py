"""Where a run starts: fresh, resumed from its own checkpoint, or initialised from another run.

Resuming restores the whole state (parameters, optimiser moments, key, step), so the run
continues exactly; the optimiser's hyperparameters come from the current config.
`trainer.init_from` takes only the parameters of another run (trained with any optimiser)
and starts a fresh optimiser, step and key.
"""
import logging
import os
from typing import Optional

import jax
from omegaconf import DictConfig

from ae_research import distributed
from ae_research.checkpoint import Checkpointer, fit_params, path_names
from ae_research.errors import ConfigError
from ae_research.sharding import put_replicated, to_host
from ae_research.state import TrainState, create_train_state, with_hyperparams_of
from ae_research.training.setup import Setup
from ae_research.writers.jsonl import truncate_after

log = logging.getLogger("ae_research")


def initial_state(s: Setup, cfg: DictConfig, ckpt: Checkpointer, workdir: str) -> TrainState:
  """The state to train from, replicated on `s.mesh`; drops log records past a resumed checkpoint.

  Every refusal (no trainer.resume, no readable checkpoint, a run already longer than `cfg` asks
  for) comes before anything in `workdir` is changed.
  """
  tcfg = cfg.trainer
  state = put_replicated(create_train_state(s.params, s.model_state, s.tx, cfg.seed), s.mesh)
  log = os.path.join(workdir, "metrics.jsonl")
  if ckpt.latest_step() is not None:
    if not tcfg.resume:
      raise ConfigError(f"{workdir} already holds a checkpoint (step {ckpt.latest_step()}); pass "
                        "trainer.resume=true to continue it, or choose a new hydra.run.dir")
    restored = ckpt.restore(state)
    step = int(to_host(restored.step))
    if step > s.plan.total_steps:
      epochs = s.plan.epoch_of(step)
      raise ConfigError(f"{workdir}: the run already has {epochs} epoch{'s' * (epochs != 1)} ({step} steps), more than "
                        f"the {s.plan.total_steps} steps trainer.epochs={tcfg.epochs}, trainer.max_steps="
                        f"{tcfg.max_steps} ask for; nothing was changed: ask for at least that many to continue it, "
                        f"or evaluate it with ae-eval run_dir={workdir}")
    if distributed.is_main_process():
      ckpt.set_aside_damaged()
      truncate_after(log, step)
    state = restored.replace(opt_state=with_hyperparams_of(restored.opt_state, state.opt_state))
    return state
  if tcfg.init_from:
    state = state.replace(params=params_from(tcfg.init_from, state.params, s.model.pretrained_part))
  if distributed.is_main_process():  # A fresh start: drop the records of an attempt that died before its first checkpoint.
    truncate_after(log, 0)
  return state


def params_from(run_dir: str, like, part: Optional[str] = None):
  """The latest parameters of the run in `run_dir`, laid out like `like`; a model with a
  `pretrained_part` (a classifier made from an autoencoder) takes an autoencoder run's
  parameters into that part and keeps its own initialisation elsewhere (the head)."""
  source = Checkpointer(os.path.join(run_dir, "checkpoints"))
  what = f"trainer.init_from={run_dir}"
  try:
    if source.latest_step() is None:
      raise ConfigError(f"{what}: no checkpoint there; point it at a trained run")
    saved = source.saved_params()  # Read once: a classifier from an autoencoder run fits it twice.
    try:
      return fit_params(saved, like, what)
    except ConfigError:
      if part is None or part not in like or not set(path_names(like[part])) <= set(saved):
        raise  # Neither a run of this model nor of its pretrained part: report the whole-model mismatch.
      loaded = path_names(fit_params(saved, like[part], what))
      prefix = f"{part}/"
      leaves = [loaded[name[len(prefix):]] if name.startswith(prefix) else leaf
                for name, leaf in path_names(like).items()]
      log.info("%s: initialised %s from it (the rest keeps its initialisation)", what, part)
      return jax.tree.unflatten(jax.tree.structure(like), leaves)
  finally:
    source.close()
