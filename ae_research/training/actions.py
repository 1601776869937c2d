"""What the host loop does between compiled chunks, written once (after CLU's periodic_actions).

Each step-periodic action says when it is next due (`next_due`), so the loop ends its chunks
exactly there, and whether it runs at a chunk end (`due`); the run's last step is always due.
An action is given the function it runs (`callback(step)`), so it knows nothing of the loop. The
loop runs the due actions in order: evaluate, write the epoch record, checkpoint; then
`StopOnSignal` ends a preempted run, after the actions due at that step, so a signal never costs
an evaluation or a record.
"""
import signal
import threading
import time
from typing import Callable, Optional


class PeriodicAction:
  """Runs `callback(step)` every `every_steps` optimiser steps and at `last_step`."""

  def __init__(self, every_steps: int, last_step: int, callback: Callable[[int], None]):
    self.every_steps, self.last_step, self.callback = every_steps, last_step, callback

  def next_due(self, step: int) -> int:
    return min(self.last_step, (step // self.every_steps + 1) * self.every_steps)

  def due(self, step: int) -> bool:
    return step >= self.last_step or step % self.every_steps == 0

  def __call__(self, step: int) -> None:
    if self.due(step):
      self.callback(step)


class Checkpoint(PeriodicAction):
  """Every `every_steps`, but not within `min_interval_s` of the last save (the run's start counts as
  one); the last step always saves. One clock for all members."""

  def __init__(self, every_steps: int, last_step: int, callback: Callable[[int], None], min_interval_s: float):
    super().__init__(every_steps, last_step, callback)
    self.min_interval_s = min_interval_s
    self._last_save = time.monotonic()

  def due(self, step):
    if step >= self.last_step:
      return True
    return step % self.every_steps == 0 and time.monotonic() - self._last_save >= self.min_interval_s

  def __call__(self, step):
    if self.due(step):
      self.callback(step)
      self._last_save = time.monotonic()


class StopOnSignal:
  """Turns SIGTERM/SIGINT into a flag checked after each chunk; when set, `on_stop(signal name, step)`
  runs (it saves and raises `Interrupted`).

  A second signal stops at once, and so does any signal once `nothing_to_save` is set (the final
  evaluation: training and its checkpoints are done): the handler raises the exception
  `stop_now(signal name)` returns (an `Interrupted` whose line says what is kept and how to go on).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self, on_stop: Callable[[str, int], None], stop_now: Callable[[str], BaseException]):
    self.on_stop, self.stop_now = on_stop, stop_now
    self.received: Optional[int] = None
    self.nothing_to_save = False
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # Python delivers signals there only.
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.received is not None or self.nothing_to_save:
      self.received = signum
      raise self.stop_now(signal.Signals(signum).name)
    self.received = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def __call__(self, step: int) -> None:
    if self.received is not None:
      self.on_stop(signal.Signals(self.received).name, step)
