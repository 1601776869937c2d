"""A trained run read back from its directory: its config (config.yaml with its resumes' changes), its
setup and its newest intact checkpoint."""
import dataclasses
import os
from typing import Any, Optional

import jax
from flax import nnx
from ae_research.checkpoint import Checkpointer
from ae_research.errors import ConfigError
from ae_research.run_dir import record
from ae_research.sharding import put_replicated
from ae_research.state import create_train_state
from ae_research.training.setup import setup


@dataclasses.dataclass
class LoadedRun:
  cfg: Any  # DictConfig
  setup: Any  # training.setup.Setup
  state: Any  # TrainState

  @property
  def variables(self):
    """The model's parameters and state, merged (what evaluation takes)."""
    return nnx.merge_state(self.state.params, self.state.model_state)

  @property
  def model(self):
    return nnx.merge(self.setup.graphdef, self.variables)


def load_run(run_dir: str, devices: Optional[int] = None) -> LoadedRun:
  """Rebuilds a run from `run_dir/config.yaml` (and `resumes.jsonl`) and restores its newest intact checkpoint.

  `devices`: how many local devices to lay the state out on (default: all).
  """
  path = os.path.join(run_dir, "config.yaml")
  if not os.path.exists(path):
    raise ConfigError(f"{run_dir}: no config.yaml, so not a run directory; pass the directory of a run")
  cfg = record.effective_config(run_dir)
  s = setup(cfg, devices=devices or len(jax.local_devices()))  # Not the devices the run was trained on.
  ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
  try:
    if ckpt.latest_step() is None:
      raise ConfigError(f"{run_dir}: no checkpoint yet; train the run first")
    state = ckpt.restore(put_replicated(create_train_state(s.params, s.model_state, s.tx, cfg.seed), s.mesh))
  finally:
    ckpt.close()
  return LoadedRun(cfg, s, state)
