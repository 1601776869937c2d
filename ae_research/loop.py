"""`train_and_evaluate(cfg, workdir)`: the whole training run, importable and testable.

Host loop, one iteration per logging point:  compiled chunk (lax.scan of steps)  ->
fetch its metrics (the only host sync)  ->  write them; at epoch ends: compiled eval,
checkpoint. Figures and the summary come last. See `step.py` for the device programs.
"""
import collections
import dataclasses
import json
import math
import os
import signal
import statistics
import threading
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from ae_research import distributed
from ae_research import step as step_lib
from ae_research.checkpoint import Checkpointer
from ae_research.config import build, validate_config
from ae_research.errors import ConfigError, Interrupted, NonFiniteLossError
from ae_research.models.base import has_convolutions
from ae_research.sharding import check_divisible, local_mesh, make_mesh, put_replicated, to_host
from ae_research.state import create_train_state, split_model, with_hyperparams_of
from ae_research.writers import create_writer, resolve_mode
from ae_research.writers.jsonl import truncate_after

# Constructor arguments the engine supplies (derived from the data or the schedule).
SUPPLIED = {"model": ("input_shape", "rngs"), "optimizer": ("total_steps",)}


@dataclasses.dataclass
class Plan:
  """How many steps, in what chunks, and where the run starts."""
  batch_size: int
  eval_batch_size: int
  steps_per_epoch: int
  total_steps: int
  chunk: int


def _check_trainer(t: DictConfig) -> None:
  for key in ("log_every_steps", "eval_every_epochs", "checkpoint_every_epochs", "keep_checkpoints"):
    if t[key] <= 0:
      raise ConfigError(f"trainer.{key}={t[key]}: must be a positive integer")
  for key in ("epochs", "greedy_epochs"):
    if t[key] < 0:
      raise ConfigError(f"trainer.{key}={t[key]}: must be >= 0 (0 with epochs: evaluate only)")
  if t.checkpoint_min_interval_s < 0:
    raise ConfigError(f"trainer.checkpoint_min_interval_s={t.checkpoint_min_interval_s}: must be >= 0")
  for key in ("max_steps", "devices", "eval_batch_size"):
    if t[key] is not None and t[key] <= 0:
      raise ConfigError(f"trainer.{key}={t[key]}: must be a positive integer or null")


def _prepare_workdir(workdir: str) -> str:
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


def _write_json(path: str, obj: Dict[str, Any]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _check_finite(losses: np.ndarray, first_step: int, epoch: int, ckpt: Checkpointer) -> None:
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    last = ckpt.latest_step()
    kept = f"checkpoint of step {last} is intact" if last is not None else "no checkpoint was written yet"
    raise NonFiniteLossError(
        f"training loss became {losses[bad[0]]} at step {first_step + bad[0] + 1} (epoch {epoch}); the last "
        f"{kept}; lower optimizer.learning_rate or check the loss/data config")


class _StopSignals:
  """Turns SIGTERM/SIGINT into a flag the host loop checks after each chunk (main thread only)."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received, self._previous = None, {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:  # A second signal: stop now, as without us.
      raise KeyboardInterrupt
    self.received = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


@dataclasses.dataclass
class Setup:
  """Everything a run builds from its config before touching the run directory."""
  data: Any
  mesh: Any
  plan: Plan
  graphdef: nnx.GraphDef
  params: nnx.State
  objective: Any
  tx: Any
  corruption: Optional[Any] = None
  update_mask: Optional[Any] = None  # Bool pytree like params (False: frozen), or None.
  num_layers: int = 0  # Layers of a stacked model (greedy pre-training), 0 otherwise.
  unroll: bool = False  # Compile loops unrolled (see TrainerConfig.scan_unroll).

  def loss_fn(self):
    return step_lib.make_loss_fn(self.graphdef, self.objective, self.corruption)


def setup(cfg: DictConfig, devices: Any = None, data: Any = None) -> Setup:
  """Validates `cfg` and builds data (unless given), mesh, model, objective and optimiser from it."""
  validate_config(cfg, SUPPLIED)
  tcfg = cfg.trainer
  _check_trainer(tcfg)
  data = build(cfg.dataset, "dataset") if data is None else data
  mesh = make_mesh(tcfg.devices if devices is None else devices)
  eval_batch_size = tcfg.eval_batch_size or data.batch_size
  check_divisible(data.batch_size, mesh)
  check_divisible(eval_batch_size, mesh, "trainer.eval_batch_size")
  steps_per_epoch = data.num_train // data.batch_size
  total_steps = steps_per_epoch * tcfg.epochs
  if tcfg.max_steps is not None:
    total_steps = min(total_steps, tcfg.max_steps)
  plan = Plan(data.batch_size, eval_batch_size, steps_per_epoch, total_steps,
              chunk=min(tcfg.log_every_steps, steps_per_epoch))
  model = build(cfg.model, "model", input_shape=data.image_shape, rngs=nnx.Rngs(cfg.seed))
  objective = build(cfg.loss, "loss")
  objective.reference_batch_size = data.batch_size
  tx = build(cfg.optimizer, "optimizer", total_steps=max(total_steps, 1))
  corruption = build(cfg.corruption, "corruption") if cfg.get("corruption") else None
  graphdef, params = split_model(model)
  target_shape = data.target_shape if getattr(model, "stage", 0) == 0 else None  # A greedy stage sets its own.
  out_shape = jax.eval_shape(lambda p, x: nnx.merge(graphdef, p)(x)[0], params,
                             jax.ShapeDtypeStruct((1, *data.image_shape), jnp.float32)).shape[1:]
  if target_shape is not None and tuple(out_shape) != target_shape:
    raise ConfigError(f"model output shape {tuple(out_shape)} does not match the {data.name} targets "
                      f"{target_shape}; fix the model config (e.g. model.output_shape)")
  _check_code_size(graphdef, params, objective, corruption, data)
  if tcfg.scan_unroll not in ("auto", "rolled", "full"):
    raise ConfigError(f"trainer.scan_unroll={tcfg.scan_unroll!r}: choose auto, rolled or full")
  unroll = tcfg.scan_unroll == "full" or (tcfg.scan_unroll == "auto" and jax.default_backend() == "cpu"
                                          and has_convolutions(model))
  return Setup(data, mesh, plan, graphdef, params, objective, tx, corruption, model.update_mask(params),
               getattr(model, "num_layers", 0), unroll)


def _check_code_size(graphdef, params, objective, corruption, data) -> None:
  """A plain MLP autoencoder (reconstruction terms only, clean input reproduced) whose code is
  at least as large as its input can learn the identity; it needs a regulariser or corruption.
  (Conv codes are exempt: pooling bottlenecks are their regulariser, SPEC 5.)"""
  from ae_research.losses import BinaryCrossEntropy, SquaredError  # pylint: disable=g-import-not-at-top
  model = nnx.merge(graphdef, params)
  plain = all(isinstance(t, (SquaredError, BinaryCrossEntropy)) for t in objective.terms.values())
  if (not plain or corruption is not None or hasattr(model, "posterior") or getattr(model, "stage", 0)
      or data.target_shape != tuple(data.image_shape)):
    return
  code = jax.eval_shape(model.encode, jax.ShapeDtypeStruct((1, *data.image_shape), jnp.float32)).shape
  size = math.prod(data.image_shape)
  if len(code) == 2 and code[1] >= size:
    raise ConfigError(f"the code has {code[1]} units, not fewer than the {size} inputs: a plain autoencoder would "
                      "learn the identity; use a smaller model.latent_dim, or add a sparsity/contractive loss or a "
                      "corruption")


def _initial_state(s: Setup, cfg: DictConfig, ckpt: Checkpointer, workdir: str):
  """Fresh, initialised from `trainer.init_from`, or resumed from this run's checkpoint."""
  tcfg = cfg.trainer
  state = put_replicated(create_train_state(s.params, s.tx, cfg.seed), s.mesh)
  if ckpt.latest_step() is not None:
    if not tcfg.resume:
      raise ConfigError(f"{workdir} already holds a checkpoint (step {ckpt.latest_step()}); pass "
                        "trainer.resume=true to continue it, or choose a new hydra.run.dir")
    restored = ckpt.restore(state)  # With the optimiser hyperparameters the current config sets.
    state = restored.replace(opt_state=with_hyperparams_of(restored.opt_state, state.opt_state))
    if distributed.is_main_process():
      truncate_after(os.path.join(workdir, "metrics.jsonl"), int(to_host(state.step)))
  else:  # A fresh start: drop the log lines of an earlier attempt that died before its first checkpoint.
    if distributed.is_main_process():
      truncate_after(os.path.join(workdir, "metrics.jsonl"), 0)
  if ckpt.latest_step() is None and tcfg.init_from:
    source = Checkpointer(os.path.join(tcfg.init_from, "checkpoints"))
    try:
      if source.latest_step() is None:
        raise ConfigError(f"trainer.init_from={tcfg.init_from}: no checkpoint there; point it at a trained run")
      state = state.replace(params=source.restore(state).params)  # Fresh optimiser, step and key.
    finally:
      source.close()
  return state


def train_and_evaluate(cfg: DictConfig, workdir: str) -> Dict[str, Any]:
  """Trains the configured model, evaluating and checkpointing; returns the summary dict.

  With `trainer.greedy_epochs > 0` and a stacked model, the layers are first pre-trained
  one at a time (runs in `workdir/pretrain/layer_<k>`), and this run fine-tunes the stack.
  """
  t_start = time.perf_counter()
  distributed.initialize(cfg.trainer.get("distributed"))
  s = setup(cfg)
  resolve_mode(cfg.logger.wandb.mode)  # A misconfigured W&B fails here, before the run directory is touched.
  workdir = _prepare_workdir(workdir)
  if cfg.trainer.greedy_epochs > 0:
    from ae_research.greedy import pretrain_layers  # pylint: disable=g-import-not-at-top  (it imports this module)
    cfg = pretrain_layers(cfg, workdir, s.num_layers)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=cfg.trainer.keep_checkpoints)
  try:
    state = _initial_state(s, cfg, ckpt, workdir)
    if distributed.is_main_process():
      OmegaConf.save(cfg, os.path.join(workdir, "config.yaml"), resolve=True)
    writer = create_writer(cfg.logger, workdir, OmegaConf.to_container(cfg, resolve=True), s.plan.total_steps,
                           int(state.step))
    try:
      with _StopSignals() as stop:
        summary = _run(state, s, ckpt, writer, cfg, workdir, stop)
    finally:
      writer.close()
  finally:
    ckpt.close()
  summary["time/total_s"] = time.perf_counter() - t_start
  if distributed.is_main_process():
    _write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _run(state, s: Setup, ckpt, writer, cfg, workdir, stop: _StopSignals) -> Dict[str, Any]:
  tcfg, data, mesh, plan = cfg.trainer, s.data, s.mesh, s.plan
  train, shapes = step_lib.flatten_rows(data.train)
  train = put_replicated(train, mesh)
  test, test_shapes = step_lib.flatten_rows(step_lib.pad_for_eval(
      {k: v for k, v in data.test.items() if k != "label"}, plan.eval_batch_size))
  test = put_replicated(test, mesh)
  eval_rng = jax.random.PRNGKey(cfg.seed + 1)
  loss_fn = s.loss_fn()

  # Ahead-of-time compilation, so compile time is measured apart from step time.
  t0 = time.perf_counter()
  order_fn = step_lib.make_epoch_order(data.num_train, plan.batch_size, mesh).lower(state.rng, 0).compile()
  order = order_fn(state.rng, 0)
  evaluate_program = step_lib.make_evaluate(loss_fn, mesh, plan.eval_batch_size, s.unroll, test_shapes).lower(
      state.params, test, eval_rng, state.step).compile()
  train_step = step_lib.make_train_step(loss_fn, s.tx, s.update_mask)
  chunks = {}
  compile_s = [time.perf_counter() - t0]

  def evaluate(state) -> Dict[str, float]:
    metrics = to_host(evaluate_program(state.params, test, eval_rng, state.step))
    return {f"eval/{k}": float(v) for k, v in metrics.items()}

  def chunk_program(length: int):
    if length not in chunks:
      t = time.perf_counter()
      chunks[length] = step_lib.make_train_chunk(train_step, mesh, length, s.unroll, shapes).lower(
          state, train, order, jnp.int32(0)).compile()
      compile_s.append(time.perf_counter() - t)
    return chunks[length]

  if plan.total_steps:
    for length in {plan.chunk, plan.steps_per_epoch % plan.chunk} - {0}:
      chunk_program(length)
  step = int(to_host(state.step))
  epoch_rates, last_epoch, eval_metrics = [], {}, {}
  while step < plan.total_steps:
    epoch = step // plan.steps_per_epoch
    epoch_end = min(plan.steps_per_epoch, plan.total_steps - epoch * plan.steps_per_epoch)
    pos = step - epoch * plan.steps_per_epoch
    order = order_fn(state.rng, epoch)
    sums, steps_run, t_epoch, compiled_before = collections.defaultdict(float), 0, time.perf_counter(), sum(compile_s)
    pending = None  # The chunk in flight: (metrics on device, first step, length, dispatch time).

    def log_chunk(pending):
      """Fetches a finished chunk's metrics (the only host sync), checks them and writes them."""
      metrics, first, length, t = pending
      metrics = to_host(metrics)
      _check_finite(metrics["loss"], first, epoch + 1, ckpt)
      for k, v in metrics.items():
        sums[k] += float(v.sum())
      writer.write_scalars(first + length, {
          "epoch": epoch + 1, **{f"train/{k}": float(v.mean()) for k, v in metrics.items()},
          "train/samples_per_s": length * plan.batch_size / (time.perf_counter() - t)})

    while pos < epoch_end:
      length = min(plan.chunk, epoch_end - pos)
      program = chunk_program(length)
      t = time.perf_counter()
      # Dispatch the next chunk before logging the previous one: the device never waits for the host.
      state, metrics = program(state, train, order, jnp.int32(pos))
      if pending is not None:
        log_chunk(pending)
      pending = (metrics, step, length, t)
      step, pos, steps_run = step + length, pos + length, steps_run + length
      if stop.received is not None:  # Preempted: keep everything up to this step, then leave.
        log_chunk(pending)
        ckpt.save(state)
        ckpt.wait()
        writer.flush()
        name = signal.Signals(stop.received).name
        raise Interrupted(f"stopped by {name} at step {step} (epoch {epoch + 1}); checkpoint and logs are saved "
                          f"in {workdir}; continue with trainer.resume=true", stop.received)
    log_chunk(pending)
    epoch_s = time.perf_counter() - t_epoch - (sum(compile_s) - compiled_before)  # Compiles are not steps.
    epoch_rates.append(steps_run * plan.batch_size / epoch_s)
    done = step >= plan.total_steps
    last_epoch = {"epoch": epoch + 1, "train/loss": sums["loss"] / steps_run, "time/epoch_s": epoch_s,
                  "train/samples_per_s": epoch_rates[-1]}
    if done or (epoch + 1) % tcfg.eval_every_epochs == 0:
      eval_metrics = evaluate(state)
    writer.write_scalars(step, {**last_epoch, **eval_metrics})
    if done or ckpt.due(epoch + 1, tcfg):
      ckpt.save(state)

  if not eval_metrics:  # Nothing left to train (resumed a finished run, or epochs=0): evaluate as is.
    eval_metrics = evaluate(state)
    ckpt.save(state)
  ckpt.wait()
  final_eval = final_evaluation(cfg, s, state.params, workdir, step, writer)
  summary = run_summary(cfg, s, step, int(mesh.devices.size), sum(compile_s), epoch_rates,
                        last_epoch.get("train/loss"), {**eval_metrics, **final_eval})
  writer.write_summary(summary)
  return summary


def final_evaluation(cfg, s: Setup, params, workdir: str, step: int, writer) -> Dict[str, Any]:
  """eval.json and the figures (also to the writer), on process 0's own devices (no collectives)."""
  if not (cfg.evaluation.enabled and jax.process_index() == 0):
    return {}
  # Imported here: scikit-learn and matplotlib cost ~2 s of start-up that evaluation-free runs skip.
  from ae_research.evaluation.evaluate import evaluate_and_draw  # pylint: disable=g-import-not-at-top
  here = dataclasses.replace(s, mesh=local_mesh(s.mesh))
  metrics, figures = evaluate_and_draw(cfg, here, put_replicated(to_host(params), here.mesh), workdir, step)
  writer.write_images(step, figures)
  return {k: v for k, v in metrics.items() if k != "step"}


def run_summary(cfg, s: Setup, step: int, n_devices: int, compile_s: float, epoch_rates, train_loss,
                metrics: Dict[str, Any]) -> Dict[str, Any]:
  """summary.json: where the run ended, its speed (median epoch after the first) and its metrics."""
  steady = epoch_rates[1:] or epoch_rates
  return {"name": cfg.name, "dataset": s.data.name, "step": step, "trainer/epochs": cfg.trainer.epochs,
          "trainer/max_steps": cfg.trainer.max_steps, "epoch": -(-step // s.plan.steps_per_epoch),
          "n_devices": n_devices, "time/compile_s": compile_s,
          "train/samples_per_s": statistics.median(steady) if steady else None, "train/loss": train_loss, **metrics}
