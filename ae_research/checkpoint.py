"""Whole-state checkpoints with orbax: atomic (written to a temporary directory, then
renamed), the last `keep` kept, restored into the current (sharded) state's layout.

When to save is the trainer's periodic checkpoint action (`training/actions.py`); this
module only reads and writes.
"""
import os
from typing import Any, Dict, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from ae_research.errors import CheckpointError, ConfigError
from ae_research.sharding import put, to_host
from ae_research.state import TrainState


def path_names(tree: Any) -> Dict[str, Any]:
  """{"encoder/0/kernel/value": leaf, ...}: leaves by a path that restored and live trees share."""
  def name(key):
    return str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key))))
  return {"/".join(name(k) for k in path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


class Checkpointer:

  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, state: TrainState) -> None:
    step = int(to_host(state.step))
    if step != self._manager.latest_step():
      self._manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, like: TrainState) -> TrainState:
    """The latest checkpoint, laid out like `like` (shapes, dtypes and shardings)."""
    step = self._manager.latest_step()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, TypeError) as e:
      raise CheckpointError(
          f"{self.directory}/{step} does not fit the current config ({str(e).splitlines()[0][:160]}); "
          "resume with the config the run was started with, or start a new run directory") from None

  def saved_params(self) -> Dict[str, Any]:
    """The latest checkpoint's parameters as host arrays, by path name (as `path_names` spells them)."""
    return path_names(self._manager.restore(self._manager.latest_step(), args=ocp.args.StandardRestore())["params"])

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def fit_params(saved: Dict[str, Any], like: Any, what: str) -> Any:
  """`saved` (from `Checkpointer.saved_params`) laid out like `like`; names every parameter that
  is missing or differs in shape."""
  wanted = path_names(like)
  problems = [f"{k} missing" for k in wanted if k not in saved]
  problems += [f"{k} {tuple(np.shape(saved[k]))} vs {tuple(v.shape)}" for k, v in wanted.items()
               if k in saved and tuple(np.shape(saved[k])) != tuple(v.shape)]
  problems += [f"{k} not in this model" for k in saved if k not in wanted]
  if problems:
    shown = "; ".join(p.replace("/value", "") for p in problems[:4]) + (" ..." if len(problems) > 4 else "")
    raise ConfigError(f"{what}: its parameters do not fit this model ({shown}); use a run of the same "
                      "architecture")
  leaves = [saved[k] for k in wanted]
  return jax.tree.map(lambda new, old: put(np.asarray(new, old.dtype), old.sharding),
                      jax.tree.unflatten(jax.tree.structure(like), leaves), like)
