"""Whole-state checkpoints with orbax: atomic (written to a temporary directory, then
renamed), the last `keep` kept, restored into the current (sharded) state's layout."""
import os
import time
from typing import Optional

import jax
import orbax.checkpoint as ocp

from ae_research.errors import CheckpointError
from ae_research.sharding import to_host
from ae_research.state import TrainState


class Checkpointer:

  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
    self._last_save = time.monotonic()  # The run's start counts as a save: the first one waits too.

  def due(self, epochs_done: int, trainer_cfg) -> bool:
    """Whether an epoch end should checkpoint: every `checkpoint_every_epochs` epochs, but not
    within `checkpoint_min_interval_s` seconds of the last save."""
    if epochs_done % trainer_cfg.checkpoint_every_epochs:
      return False
    return time.monotonic() - self._last_save >= trainer_cfg.get("checkpoint_min_interval_s", 0)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, state: TrainState) -> None:
    step = int(to_host(state.step))
    if step != self._manager.latest_step():
      self._manager.save(step, args=ocp.args.StandardSave(state))
    self._last_save = time.monotonic()

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

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
