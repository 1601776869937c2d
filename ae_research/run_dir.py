"""The run directory: preparing it, writing JSON atomically, telling whether a run finished,
and reading a run back (`load_run`).

Light to import (no JAX at module level): the CLI asks `finished_summary` before it
imports the trainer.
"""
import dataclasses
import json
import os
from typing import Any, Dict, Optional

from ae_research.errors import ConfigError


def prepare(workdir: str) -> str:
  """Creates `workdir` (and figures/) and checks it is writable; returns its absolute path."""
  import jax  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
    probe = os.path.join(workdir, f".write_test.{jax.process_index()}")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f"cannot write to the run directory {workdir} ({e.strerror}); "
                      "choose a writable hydra.run.dir") from None
  return workdir


def write_json(path: str, obj: Dict[str, Any]) -> None:
  """Writes `obj` to `path` atomically: a crash leaves the old file or the new one, never half."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def read_json(path: str) -> Dict[str, Any]:
  """The JSON object at `path`, or {} when there is none."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def finished_summary(workdir: str, cfg: Any) -> Optional[Dict[str, Any]]:
  """The run's summary.json if it finished the training `cfg` asks for, else None.

  A run writes summary.json only when it ends; it counts as finished for `cfg` when it
  trained for the same `trainer.epochs` and `trainer.max_steps` (asking for more epochs
  on a resumed run trains on).
  """
  try:
    summary = read_json(os.path.join(workdir, "summary.json"))
  except (OSError, ValueError):
    return None  # Unreadable: train (resume) again rather than trust it.
  planned = {"trainer/epochs": cfg.trainer.epochs, "trainer/max_steps": cfg.trainer.max_steps}
  return summary if summary and all(summary.get(k, "missing") == v for k, v in planned.items()) else None


@dataclasses.dataclass
class LoadedRun:
  cfg: Any  # DictConfig
  setup: Any  # training.setup.Setup
  state: Any  # TrainState

  @property
  def variables(self):
    """The model's parameters and state, merged (what evaluation takes)."""
    from flax import nnx  # pylint: disable=g-import-not-at-top
    return nnx.merge_state(self.state.params, self.state.model_state)

  @property
  def model(self):
    from flax import nnx  # pylint: disable=g-import-not-at-top
    return nnx.merge(self.setup.graphdef, self.variables)


def load_run(run_dir: str, devices: Optional[int] = None) -> LoadedRun:
  """Rebuilds a run from `run_dir/config.yaml` and restores its latest checkpoint.

  `devices`: how many local devices to lay the state out on (default: all).
  """
  import jax  # pylint: disable=g-import-not-at-top
  from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top
  from ae_research.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  from ae_research.sharding import put_replicated  # pylint: disable=g-import-not-at-top
  from ae_research.state import create_train_state  # pylint: disable=g-import-not-at-top
  from ae_research.training.setup import setup  # pylint: disable=g-import-not-at-top
  path = os.path.join(run_dir, "config.yaml")
  if not os.path.exists(path):
    raise ConfigError(f"{run_dir}: no config.yaml, so not a run directory; pass the directory of a run")
  cfg = OmegaConf.load(path)
  s = setup(cfg, devices=devices or len(jax.local_devices()))  # Not the devices the run was trained on.
  ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
  try:
    if ckpt.latest_step() is None:
      raise ConfigError(f"{run_dir}: no checkpoint yet; train the run first")
    state = ckpt.restore(put_replicated(create_train_state(s.params, s.model_state, s.tx, cfg.seed), s.mesh))
  finally:
    ckpt.close()
  return LoadedRun(cfg, s, state)
