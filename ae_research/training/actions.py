"""What the host loop does between compiled chunks, written once (after CLU's periodic_actions).

Each step-periodic action says when it is next due (`next_due`), so the loop ends its
chunks exactly there, and whether it runs at a chunk end (`due`); the run's last step is
always due. The loop runs the due actions in order: evaluate, write the epoch record,
checkpoint; then `StopOnSignal` ends a preempted run, after the actions due at that step,
so a signal never costs an evaluation or a record.
"""
import signal
import threading
import time
from typing import Optional

from ae_research.errors import Interrupted


class PeriodicAction:
  """Due every `every_steps` optimiser steps and at `last_step`. Subclasses implement `run`."""

  def __init__(self, every_steps: int, last_step: int):
    self.every_steps, self.last_step = every_steps, last_step

  def next_due(self, step: int) -> int:
    return min(self.last_step, (step // self.every_steps + 1) * self.every_steps)

  def due(self, step: int) -> bool:
    return step >= self.last_step or step % self.every_steps == 0

  def __call__(self, run, step: int) -> None:
    if self.due(step):
      self.run(run, step)

  def run(self, run, step: int) -> None:
    raise NotImplementedError


class Evaluate(PeriodicAction):
  """Every `eval_every_epochs`: the compiled evaluation of every member on the test split."""

  def run(self, run, step):
    run.evaluate(step)


class WriteEpochRecord(PeriodicAction):
  """At every epoch end where the host syncs: epoch, mean train loss and speed of the period,
  and the eval/* values computed at this very step (never copies of older ones)."""

  def run(self, run, step):
    run.write_epoch_record(step)


class Checkpoint(PeriodicAction):
  """Every `checkpoint_every_epochs`, but not within `min_interval_s` of the last save (the
  run's start counts as one); the last step always saves. One clock for all members."""

  def __init__(self, every_steps: int, last_step: int, min_interval_s: float):
    super().__init__(every_steps, last_step)
    self.min_interval_s = min_interval_s
    self._last_save = time.monotonic()

  def due(self, step):
    if step >= self.last_step:
      return True
    return step % self.every_steps == 0 and time.monotonic() - self._last_save >= self.min_interval_s

  def run(self, run, step):
    run.save_checkpoints()
    self._last_save = time.monotonic()


class StopOnSignal:
  """Turns SIGTERM/SIGINT into a flag checked after each chunk; when set, the run saves its
  checkpoints and logs and stops with `Interrupted`. A second signal stops at once."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received: Optional[int] = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # Python delivers signals there only.
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:
      raise KeyboardInterrupt
    self.received = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def __call__(self, run, step: int) -> None:
    if self.received is None:
      return
    run.save_checkpoints()
    run.flush()
    name = signal.Signals(self.received).name
    where = run.workdirs_text()
    raise Interrupted(f"stopped by {name} at step {step} (epoch {run.plan.epoch_of(step)}); checkpoint and logs are "
                      f"saved in {where}; continue with trainer.resume=true", self.received)
