"""Reading a finished (or interrupted) run back from its run directory."""
import dataclasses
import os
from typing import Optional

import jax
from omegaconf import DictConfig, OmegaConf

from ae_research.checkpoint import Checkpointer
from ae_research.errors import ConfigError
from ae_research.loop import Setup, setup
from ae_research.sharding import put_replicated
from ae_research.state import TrainState, create_train_state


@dataclasses.dataclass
class LoadedRun:
  cfg: DictConfig
  setup: Setup
  state: TrainState

  @property
  def model(self):
    from flax import nnx  # pylint: disable=g-import-not-at-top
    return nnx.merge(self.setup.graphdef, self.state.params)


def load_run(run_dir: str, devices: Optional[int] = None) -> LoadedRun:
  """Rebuilds a run from `run_dir/config.yaml` and restores its latest checkpoint.

  `devices`: how many local devices to lay the state out on (default: all).
  """
  path = os.path.join(run_dir, "config.yaml")
  if not os.path.exists(path):
    raise ConfigError(f"{run_dir}: no config.yaml, so not a run directory; pass the directory of a run")
  cfg = OmegaConf.load(path)
  s = setup(cfg, devices=devices or len(jax.local_devices()))  # Not the devices the run was trained on.
  ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
  try:
    if ckpt.latest_step() is None:
      raise ConfigError(f"{run_dir}: no checkpoint yet; train the run first")
    state = ckpt.restore(put_replicated(create_train_state(s.params, s.tx, cfg.seed), s.mesh))
  finally:
    ckpt.close()
  return LoadedRun(cfg, s, state)


__all__ = ["LoadedRun", "load_run"]
