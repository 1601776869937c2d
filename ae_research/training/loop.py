"""The one host loop: K >= 1 members in one compiled program (a single run is K = 1).

    build setups -> Programs (device programs, built once) -> prepare run directories,
    restore or initialise states -> loop: dispatch chunk k+1, then fetch and write chunk
    k's metrics (the only host sync) -> at the steps the periodic actions are due:
    evaluate, write the epoch record, checkpoint, stop on signal -> per member: eval.json,
    figures and summary.json.

Every member keeps its own run directory, log, checkpoints, W&B run and summary, written
as if it had trained alone; a member whose loss turns NaN stops alone (its state is never
saved again). Only process 0 writes files other than checkpoints (which orbax writes
collectively).
"""
import collections
import logging
import os
import signal
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from omegaconf import DictConfig

from ae_research import distributed, run_dir
from ae_research.config.flatten import differing_keys
from ae_research.errors import Interrupted, NonFiniteLossError
from ae_research.sharding import to_host
from ae_research.training.actions import Checkpoint, PeriodicAction, StopOnSignal
from ae_research.training.members import (Member, build_setups, close, open_run_directories, open_writers,
                                          start_runtime)
from ae_research.training.programs import Programs
from ae_research.training.setup import Setup
from ae_research.training.summary import final_evaluation, periodic_metrics, run_summary, seconds_to_first_step

log = logging.getLogger("ae_research")
Result = Union[Dict[str, Any], Exception]


def train(cfgs: Sequence[DictConfig], workdirs: Sequence[str], setups: Optional[Sequence[Setup]] = None,
          stacked: Optional[bool] = None, requested: Optional[Sequence[DictConfig]] = None) -> List[Result]:
  """Trains the runs `cfgs` in one program; returns each run's summary, or the user error that stopped it.

  Configs must differ only in numbers (see `training/sharing.py`); raises `CannotShare`
  when they turn out not to fit one program, before any of them has trained, and
  `Interrupted` on SIGTERM/SIGINT after saving every member's checkpoint. `requested`: the
  configs as asked for, recorded in each run directory (default `cfgs`; see `greedy.py`).
  """
  t_start = time.perf_counter()
  start_runtime(cfgs[0])
  built = list(setups) if setups is not None else build_setups(cfgs)
  results: List[Result] = [s if isinstance(s, Exception) else None for s in built]
  index = [i for i, s in enumerate(built) if isinstance(s, Setup)]
  members = [Member(cfgs[i], workdirs[i], built[i], requested=requested[i] if requested else None) for i in index]
  if not members:
    return results
  programs = Programs([m.setup for m in members], [m.cfg.seed for m in members], stacked)
  if len(members) > 1:
    differ = [k for k in differing_keys([m.cfg for m in members]) if not k.startswith("logger.")]
    log.info("population of %d members in one program on a %s mesh; they differ in %s", len(members),
             dict(programs.mesh.shape), ", ".join(differ))
  try:
    open_run_directories(members)
    loop = _Loop(members, programs, t_start)
    loop.compile()  # Before any writer exists: a program that cannot be shared fails here.
    open_writers(members)
    with StopOnSignal(loop.stop, loop.stop_now) as stop:
      loop.run(stop)
      loop.finishing = stop.nothing_to_save = True  # Training and its checkpoints are done: a signal stops at once.
      summaries = loop.finish()
      total_s = time.perf_counter() - t_start  # The population's wall time: every member's, to the bit.
      for i, m, summary in zip(index, members, summaries):
        results[i] = m.error or summary
        if summary is not None:
          summary["time/total_s"] = total_s
          if distributed.is_main_process():  # Written before the lock is released.
            run_dir.write_json(os.path.join(m.workdir, "summary.json"), summary)
  except BaseException:
    close(members, quiet=True)  # The error that stopped the run is the one to report.
    raise
  close(members)
  return results


class _Loop:
  """The host side of one run: chunks, their metrics, and the periodic actions."""

  def __init__(self, members: List[Member], programs: Programs, t_start: float):
    self.members, self.programs, self.t_start = members, programs, t_start
    self.plan, self.cfg = programs.plan, members[0].cfg
    self.states = programs.place([m.state for m in members])
    self.step = int(to_host(members[0].state.step))
    tcfg, last = self.cfg.trainer, self.plan.total_steps
    self.actions = [PeriodicAction(self.plan.eval_every_steps, last, self.evaluate),
                    PeriodicAction(self.plan.sync_every_steps, last, self.write_epoch_record),
                    Checkpoint(self.plan.checkpoint_every_steps, last, lambda _: self.save_checkpoints(),
                               tcfg.checkpoint_min_interval_s)]
    every = self.cfg.evaluation.get("every_steps") if self.cfg.evaluation.enabled else None
    if every:  # The last step is the final evaluation's.
      self.actions.append(PeriodicAction(every, last, self.evaluate_periodically))
    self.rates: List[float] = []  # Samples/s of each period between syncs (compilation excluded).
    self.seconds = collections.Counter()  # Wall time by phase: train, eval, checkpoint, figures.
    self.evaluator_seconds = collections.Counter()  # The final evaluation's "eval", by evaluator.
    self.to_first_step_s: Optional[float] = None
    self.evaluated_at: Optional[int] = None
    self.finishing = False  # Training is over, the final evaluation runs (set by `train`).
    self._start_period()  # self._period: (first step, start time, compile seconds so far).

  @property
  def alive(self) -> List[int]:
    return [i for i, m in enumerate(self.members) if m.error is None]

  def _next_end(self) -> int:
    return min([self.step + self.plan.log_every_steps] + [a.next_due(self.step) for a in self.actions])

  def compile(self) -> None:
    """Compiles the first chunk (other lengths compile when first met; compilation is never timed as steps)."""
    if self.step < self.plan.total_steps:
      self.orders = self.programs.orders(self.states, self.step)
      self.programs.compile_chunk(self.step, self._next_end() - self.step, self.states, self.orders)
    self.programs.compile_evaluate(self.states)
    self._start_period()

  def run(self, stop: StopOnSignal) -> None:
    t_run, compiled, outside = time.perf_counter(), self.programs.compile_s, sum(self.seconds.values())
    self.to_first_step_s = seconds_to_first_step(self.t_start)
    try:
      self._run(stop)
    finally:  # Training time: the loop's wall time but compilation, evaluation and checkpoints.
      self.seconds["train"] += (time.perf_counter() - t_run - (self.programs.compile_s - compiled)
                                - (sum(self.seconds.values()) - outside))

  def _run(self, stop: StopOnSignal) -> None:
    pending = None  # The chunk in flight: (metrics on device, first step, length).
    while self.step < self.plan.total_steps and self.alive:
      end = self._next_end()
      # Dispatch the next chunk before fetching the last one's metrics: the device never waits for the host.
      self.states, self.orders, metrics = self.programs.run_chunk(self.states, self.orders, self.step, end - self.step)
      if pending is not None:
        self._log_chunk(*pending)
      pending, self.step = (metrics, self.step, end - self.step), end
      if stop.received is not None or any(a.due(self.step) for a in self.actions):
        self._log_chunk(*pending)  # Checked for NaN before anything is saved.
        pending = None
        if not self.alive:
          break
        self._close_period()
        for action in self.actions:
          action(self.step)
        stop(self.step)
        self._start_period()  # Evaluation and checkpoints are not training time.
    if pending is not None:
      self._log_chunk(*pending)
    if self.evaluated_at is None and self.alive:  # Nothing left to train (a finished run resumed, or epochs=0).
      self.evaluate(self.step)
      self.save_checkpoints()

  def _log_chunk(self, metrics, first: int, length: int) -> None:
    """Fetches a finished chunk's metrics (the only host sync), checks them and writes them.

    Its samples/s is the period's so far (from the period's start to this fetch, compilation excluded), the
    figure the period's own record ends with. Not the chunk's alone: the next chunk is dispatched before
    this one is fetched, and on the CPU a dispatch may wait for, or itself run, the chunk before it, so
    no host clock sees one chunk's start and end (timed from its dispatch, chunks were logged at anything
    from half to 35x their period's samples/s).
    """
    per_member = self.programs.per_member(metrics, axis=1)
    end = first + length
    steps, seconds = self._period_so_far(end)
    rate = steps * self.plan.batch_size / max(seconds, 1e-9)
    for i in self.alive:
      m, values = self.members[i], {k: v[:length] for k, v in per_member[i].items()}
      losses = values["loss"]
      bad = np.flatnonzero(~np.isfinite(losses))
      if bad.size:
        at = first + bad[0] + 1
        self._fail(i, f"training loss became {losses[bad[0]]} at step {at} (epoch {self.plan.epoch_of(at)})")
        continue
      m.period_loss += float(losses.sum())
      m.writer.write_scalars(end, {"epoch": self.plan.epoch_of(end),
                                   **{f"train/{k}": float(v.mean()) for k, v in values.items()},
                                   "train/samples_per_s": rate})

  def _close_period(self) -> None:
    """Ends the timing period at a sync: steady samples/s (compilation excluded), mean loss per member."""
    steps, seconds = self._period_so_far(self.step)
    self.period = {"time/epoch_s": seconds * self.plan.steps_per_epoch / steps,
                   "train/samples_per_s": steps * self.plan.batch_size / seconds}
    self.rates.append(self.period["train/samples_per_s"])
    for i in self.alive:
      m = self.members[i]
      m.train_loss, m.period_loss = m.period_loss / steps, 0.0

  def _period_so_far(self, step: int) -> Tuple[int, float]:
    """(steps, wall seconds but compilation) from the period's start to `step`, now."""
    first, t0, compiled = self._period
    return step - first, time.perf_counter() - t0 - (self.programs.compile_s - compiled)

  def _start_period(self) -> None:
    self._period = (self.step, time.perf_counter(), self.programs.compile_s)

  # --- What the actions call. ---
  def evaluate(self, step: int) -> None:
    t = time.perf_counter()
    for m, metrics in zip(self.members, self.programs.evaluate(self.states)):
      m.eval_metrics = metrics
    self.evaluated_at = step
    self.seconds["eval"] += time.perf_counter() - t

  def evaluate_periodically(self, step: int) -> None:
    """`evaluation.periodic` of every member at `step`, logged at the step (process 0)."""
    if step >= self.plan.total_steps:
      return
    t = time.perf_counter()
    for i in self.alive:
      m = self.members[i]
      state = to_host(self.programs.member_state(self.states, i))  # On every process: it may gather.
      if distributed.is_main_process():
        m.writer.write_scalars(step, periodic_metrics(m.cfg, m.setup, state))
    self.seconds["eval"] += time.perf_counter() - t

  def write_epoch_record(self, step: int) -> None:
    for i in self.alive:
      m = self.members[i]
      record = {"epoch": self.plan.epoch_of(step), "train/loss": m.train_loss, **self.period}
      m.writer.write_scalars(step, {**record, **(m.eval_metrics if self.evaluated_at == step else {})})

  def _fail(self, i: int, what: str) -> None:
    """Stops member i, which diverged (`what`), naming its last checkpoint: every saved one is finite."""
    m, last = self.members[i], self.members[i].ckpt.latest_step()
    kept = (f"the last finite checkpoint is step {last}" if last is not None
            else "no checkpoint was written before it")
    m.error = NonFiniteLossError(f"{what}; {kept}; lower optimizer.learning_rate or check the loss/data config")
    if len(self.members) > 1:
      log.error("population member %d (%s): %s", i, m.workdir, m.error)

  def save_checkpoints(self) -> None:
    t = time.perf_counter()
    for i in self.alive:
      try:
        self.members[i].ckpt.save(self.programs.member_state(self.states, i))
      except NonFiniteLossError:  # Poisoned by the last update though the losses were finite: never saved.
        self._fail(i, f"training diverged by step {self.step} (epoch {self.plan.epoch_of(self.step)}): the "
                      "parameters hold NaN or inf values though the logged losses were finite")
    self.seconds["checkpoint"] += time.perf_counter() - t

  def stop(self, signal_name: str, step: int) -> None:
    """A preempted run: every member's checkpoint and logs saved, then `Interrupted`."""
    self.save_checkpoints()
    for i in self.alive:
      self.members[i].ckpt.wait()
      self.members[i].writer.flush()
    dirs = [self.members[i].workdir for i in self.alive]
    where = dirs[0] if len(dirs) == 1 else f"the {len(dirs)} members' run directories"
    raise Interrupted(f"stopped by {signal_name} at step {step} (epoch {self.plan.epoch_of(step)}); checkpoint and "
                      f"logs are saved in {where}; continue with trainer.resume=true",
                      getattr(signal.Signals, signal_name))

  def stop_now(self, signal_name: str) -> Interrupted:
    """What a signal that stops at once raises: during the final evaluation, or a second one while training."""
    dirs = [self.members[i].workdir for i in self.alive] or [m.workdir for m in self.members]
    where = dirs[0] if len(dirs) == 1 else f"the {len(dirs)} members' run directories"
    signum = getattr(signal.Signals, signal_name)
    if self.finishing:
      again = f"ae-eval run_dir={dirs[0]}" + (" (and each member's run directory)" if len(dirs) > 1 else "")
      return Interrupted(f"stopped by {signal_name} during the final evaluation: training finished and is "
                         f"checkpointed (step {self.step}) in {where}, but eval.json and summary.json were not "
                         f"written; run the evaluation with {again}", signum)
    return Interrupted(f"stopped at once by a second {signal_name} near step {self.step} (epoch "
                       f"{self.plan.epoch_of(self.step)}); the checkpoints written so far in {where} are intact; "
                       "continue with trainer.resume=true", signum)

  def finish(self) -> List[Optional[Dict[str, Any]]]:
    """Per member: eval.json, figures and the run summary (None for a member that failed)."""
    summaries = []
    k = len(self.members)
    steady = self.rates[1:] or self.rates
    for i, m in enumerate(self.members):
      m.ckpt.wait()
      if m.error is not None:
        m.writer.mark_failed(str(m.error))
        summaries.append(None)
        continue
      state = to_host(self.programs.member_state(self.states, i))
      final = final_evaluation(m.cfg, m.setup, state, m.workdir, self.step, m.writer, self.seconds,
                               self.evaluator_seconds)
      summary = run_summary(m.cfg, m.setup, self.step, int(self.programs.mesh.devices.size),
                            self.programs.compile_s, self.rates, m.train_loss, {**m.eval_metrics, **final})
      summary.update({f"time/{phase}_s": s for phase, s in self.seconds.items()})
      summary.update({f"time/eval/{name}_s": s for name, s in self.evaluator_seconds.items()})
      summary["time/to_first_step_s"] = self.to_first_step_s
      if k > 1:
        summary.update({"population/size": k, "population/mesh": dict(self.programs.mesh.shape),
                        "population/samples_per_s": k * statistics.median(steady) if steady else None})
      m.writer.write_summary(summary)
      summaries.append(summary)
    return summaries


def train_one(cfg: DictConfig, workdir: str, s: Optional[Setup] = None,
              requested: Optional[DictConfig] = None) -> Dict[str, Any]:
  """One run (K = 1); its user error is raised. `requested`: see `train`."""
  result = train([cfg], [workdir], [s] if s is not None else None, requested=[requested] if requested else None)[0]
  if isinstance(result, Exception):
    raise result
  return result
