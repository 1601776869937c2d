"""Population training: K runs that differ only in numbers, in one compiled program.

The members' states are stacked along a leading axis and the step is `jax.vmap`ped over
it (`spmd_axis_name="population"`), so with several devices the members are spread over
the mesh's "population" axis and each member's batch over its "data" axis. Every member
keeps its own run directory, metrics.jsonl, checkpoints, summary.json, eval.json,
figures and W&B run, written exactly as a run on its own would write them; so it can be
resumed, evaluated or compared alone afterwards. Runs that cannot share a program
(different shapes, greedy pre-training, a value a term branches on in Python) train one
after another as ordinary runs.
"""
import collections
import dataclasses
import logging
import math
import os
import statistics
import time
from typing import Any, Dict, List, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from omegaconf import DictConfig, OmegaConf

from ae_research import loop
from ae_research import step as step_lib
from ae_research.checkpoint import Checkpointer
from ae_research.config import build
from ae_research.errors import ConfigError, NonFiniteLossError, UserError
from ae_research.population import members as members_lib
from ae_research.sharding import DATA_AXIS, replicated
from ae_research.state import step_key
from ae_research.writers import create_writer

log = logging.getLogger("ae_research")
POPULATION_AXIS = "population"
Result = Union[Dict[str, Any], Exception]


def population_mesh(num_members: int, devices: Sequence[Any]) -> Mesh:
  """(population, data) mesh: gcd(K, devices) devices on "population", the rest share each member's batch.

  The batch already divides the device count (checked in `loop.setup`), so it divides "data".
  """
  p = math.gcd(num_members, len(devices))
  return Mesh(np.array(devices).reshape(p, len(devices) // p), (POPULATION_AXIS, DATA_AXIS))


def train_runs(cfgs: Sequence[DictConfig], workdirs: Sequence[str]) -> List[Result]:
  """Trains every run, populations in one program each; a run's result is its summary or its error."""
  results: List[Result] = [None] * len(cfgs)
  for group in members_lib.group_runs(cfgs):
    if len(group) > 1:
      try:
        for i, result in zip(group, train_population([cfgs[i] for i in group], [workdirs[i] for i in group])):
          results[i] = result
        continue
      except _CannotShare as e:
        log.warning("population of %d runs falls back to separate programs: %s", len(group), e)
    for i in group:
      try:
        results[i] = loop.train_and_evaluate(cfgs[i], workdirs[i])
      except UserError as e:
        results[i] = e
  return results


class _CannotShare(Exception):
  """The members turned out not to fit one program; train them separately."""


@dataclasses.dataclass
class _Member:
  cfg: DictConfig
  workdir: str
  setup: loop.Setup
  ckpt: Checkpointer
  writer: Any = None
  error: Exception = None


def train_population(cfgs: Sequence[DictConfig], workdirs: Sequence[str]) -> List[Result]:
  """One compiled program for runs whose configs differ only in numbers (see members.py)."""
  t_start = time.perf_counter()
  data = build(cfgs[0].dataset, "dataset")
  setups = [loop.setup(cfg, data=data) for cfg in cfgs]
  shapes = [jax.tree.map(lambda x: (x.shape, x.dtype), s.params) for s in setups]
  if any(s != shapes[0] for s in shapes):
    raise _CannotShare("the members' parameters differ in shape")
  try:
    varying = {"objective": members_lib.numeric_leaves([s.objective for s in setups], "loss terms"),
               "corruption": members_lib.numeric_leaves([s.corruption for s in setups], "corruption")}
  except ConfigError as e:
    raise _CannotShare(str(e)) from None
  members = []
  try:
    for cfg, workdir, s in zip(cfgs, workdirs, setups):
      workdir = loop._prepare_workdir(workdir)  # pylint: disable=protected-access
      members.append(_Member(cfg, workdir, s, Checkpointer(os.path.join(workdir, "checkpoints"),
                                                           keep=cfg.trainer.keep_checkpoints)))
    states = [loop._initial_state(m.setup, m.cfg, m.ckpt, m.workdir) for m in members]  # pylint: disable=protected-access
    if len({int(st.step) for st in states}) > 1:
      raise _CannotShare("the members resume from different steps")
    for i, (m, st) in enumerate(zip(members, states)):
      OmegaConf.save(m.cfg, os.path.join(m.workdir, "config.yaml"), resolve=True)
      logger = m.cfg.logger if i == 0 else OmegaConf.merge(m.cfg.logger, {"progress": False})  # One bar.
      m.writer = create_writer(logger, m.workdir, OmegaConf.to_container(m.cfg, resolve=True),
                               m.setup.plan.total_steps, int(st.step), label=f"member {i}")
    results = _run(members, states, varying)
  finally:
    for m in members:
      if m.writer is not None:
        m.writer.close()
      m.ckpt.close()
  for m, result in zip(members, results):
    if isinstance(result, dict):
      result["time/total_s"] = time.perf_counter() - t_start
      loop._write_json(os.path.join(m.workdir, "summary.json"), result)  # pylint: disable=protected-access
  return results


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _member(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def _programs(s0: loop.Setup, mesh: Mesh, varying: Dict[str, Dict], shapes: Dict[str, Any],
              test_shapes: Dict[str, Any]):
  """The vmapped chunk, epoch order and evaluation, closed over member 0's objects as templates."""
  objective0, corruption0 = s0.objective, s0.corruption

  def member_loss_fn(hp):
    objective = members_lib.with_values(objective0, hp["objective"])
    corruption = members_lib.with_values(corruption0, hp["corruption"])
    return step_lib.make_loss_fn(s0.graphdef, objective, corruption)

  def member_step(state, batch, rng, hp):
    return step_lib.make_train_step(member_loss_fn(hp), s0.tx, s0.update_mask)(state, batch, rng)

  vmap = lambda f, in_axes: jax.vmap(f, in_axes=in_axes, spmd_axis_name=POPULATION_AXIS)
  stacked = NamedSharding(mesh, P(POPULATION_AXIS))

  def chunk(length):
    def run(states, train, orders, start, hps):
      rows = jnp.swapaxes(lax.dynamic_slice_in_dim(orders, start, length, axis=1), 0, 1)  # (length, K, B)

      def body(states, idx):
        def one(state, idx, hp):
          return member_step(state, step_lib.gather(train, idx, mesh, shapes), step_key(state.rng, state.step), hp)
        return vmap(one, (0, 0, 0))(states, idx, hps)

      return lax.scan(body, states, rows, unroll=length if s0.unroll else 1)
    return jax.jit(run, donate_argnums=0, out_shardings=(stacked, replicated(mesh)))

  order_one = lambda rng, epoch: step_lib.epoch_order(rng, epoch, s0.data.num_train, s0.plan.batch_size)
  order = jax.jit(jax.vmap(order_one, in_axes=(0, None)), out_shardings=stacked)

  def evaluate(params, split, rngs, steps, hps):
    one = lambda p, r, st, hp: step_lib.evaluate_fn(member_loss_fn(hp), mesh, s0.plan.eval_batch_size,
                                                     s0.unroll, test_shapes)(p, split, r, st)
    return vmap(one, (0, 0, 0, 0))(params, rngs, steps, hps)

  return chunk, order, jax.jit(evaluate, out_shardings=replicated(mesh)), stacked


def _run(members: List[_Member], states, varying) -> List[Result]:
  s0, tcfg = members[0].setup, members[0].cfg.trainer
  data, plan, k = s0.data, s0.plan, len(members)
  mesh = population_mesh(k, list(s0.mesh.devices.flat))
  log.info("population of %d members in one program on a %s mesh; they differ in %s", k, dict(mesh.shape),
           ", ".join(k for k in members_lib.differing_keys([m.cfg for m in members]) if not k.startswith("logger.")))
  train, shapes = step_lib.flatten_rows(data.train)
  test, test_shapes = step_lib.flatten_rows(step_lib.pad_for_eval(
      {k_: v for k_, v in data.test.items() if k_ != "label"}, plan.eval_batch_size))
  chunk, order_fn, evaluate_program, stacked = _programs(s0, mesh, varying, shapes, test_shapes)
  states = jax.device_put(_stack([jax.device_get(st) for st in states]), stacked)
  hps = jax.device_put({w: {p: jnp.asarray(v) for p, v in paths.items()} for w, paths in varying.items()}, stacked)
  train = jax.device_put(train, replicated(mesh))
  test = jax.device_put(test, replicated(mesh))
  eval_rngs = jax.device_put(jnp.stack([jax.random.PRNGKey(m.cfg.seed + 1) for m in members]), stacked)
  t0 = time.perf_counter()
  programs = {}
  compile_s = [0.0]

  def program(length):
    if length not in programs:
      t = time.perf_counter()
      programs[length] = chunk(length).lower(states, train, order_fn(states.rng, 0), jnp.int32(0), hps).compile()
      compile_s.append(time.perf_counter() - t)
    return programs[length]

  def evaluate(states):
    metrics = jax.device_get(evaluate_program(states.params, test, eval_rngs, states.step, hps))
    return [{f"eval/{n}": float(v[i]) for n, v in metrics.items()} for i in range(k)]

  try:
    if plan.total_steps:
      for length in {plan.chunk, plan.steps_per_epoch % plan.chunk} - {0}:
        program(length)
  except jax.errors.ConcretizationTypeError as e:
    raise _CannotShare(f"a varying value is used in Python control flow ({str(e).splitlines()[0][:120]})") from None
  compile_s[0] = time.perf_counter() - t0 - sum(compile_s[1:])
  step = int(jax.device_get(states.step[0]))
  rates, last_epoch, eval_metrics = [], [{} for _ in members], [{} for _ in members]
  while step < plan.total_steps and any(m.error is None for m in members):
    epoch = step // plan.steps_per_epoch
    epoch_end = min(plan.steps_per_epoch, plan.total_steps - epoch * plan.steps_per_epoch)
    pos = step - epoch * plan.steps_per_epoch
    orders = order_fn(states.rng, epoch)
    sums, steps_run, t_epoch, compiled_before = collections.defaultdict(float), 0, time.perf_counter(), sum(compile_s)
    while pos < epoch_end:
      length = min(plan.chunk, epoch_end - pos)
      prog = program(length)
      t = time.perf_counter()
      states, metrics = prog(states, train, orders, jnp.int32(pos), hps)
      metrics = jax.device_get(metrics)  # (length, K) per metric: the only host sync.
      seconds = time.perf_counter() - t
      step, pos, steps_run = step + length, pos + length, steps_run + length
      for i, m in enumerate(members):
        if m.error is not None:
          continue
        try:
          loop._check_finite(metrics["loss"][:, i], step - length, epoch + 1, m.ckpt)  # pylint: disable=protected-access
        except NonFiniteLossError as e:
          m.error = e
          log.error("population member %d (%s): %s", i, m.workdir, e)
          continue
        for n, v in metrics.items():
          sums[(i, n)] += float(v[:, i].sum())
        m.writer.write_scalars(step, {"epoch": epoch + 1, **{f"train/{n}": float(v[:, i].mean())
                                                             for n, v in metrics.items()},
                                      "train/samples_per_s": length * plan.batch_size / seconds})
    epoch_s = time.perf_counter() - t_epoch - (sum(compile_s) - compiled_before)
    rates.append(steps_run * plan.batch_size / epoch_s)
    done = step >= plan.total_steps
    if done or (epoch + 1) % tcfg.eval_every_epochs == 0:
      eval_metrics = evaluate(states)
    host = None
    if done or members[0].ckpt.due(epoch + 1, tcfg):
      host = jax.device_get(states)
    for i, m in enumerate(members):
      if m.error is not None:
        continue
      last_epoch[i] = {"epoch": epoch + 1, "train/loss": sums[(i, "loss")] / steps_run, "time/epoch_s": epoch_s,
                       "train/samples_per_s": rates[-1]}
      m.writer.write_scalars(step, {**last_epoch[i], **eval_metrics[i]})
      if host is not None:
        m.ckpt.save(_member(host, i))
  if not any(eval_metrics):
    eval_metrics = evaluate(states)
    host = jax.device_get(states)
    for i, m in enumerate(members):
      m.ckpt.save(_member(host, i))
  return _finish(members, jax.device_get(states), step, eval_metrics, last_epoch, rates, sum(compile_s), mesh)


def _finish(members, host_states, step, eval_metrics, last_epoch, rates, compile_s, mesh) -> List[Result]:
  """Waits for checkpoints, then evaluates, draws and summarises each member as a run of its own."""
  steady = rates[1:] or rates
  k = len(members)
  results = []
  for i, m in enumerate(members):
    m.ckpt.wait()
    if m.error is not None:
      results.append(m.error)
      continue
    final_eval = loop.final_evaluation(m.cfg, m.setup, _member(host_states, i).params, m.workdir, step, m.writer)
    summary = {**loop.run_summary(m.cfg, m.setup, step, int(mesh.devices.size), compile_s, rates,
                                  last_epoch[i].get("train/loss"), {**eval_metrics[i], **final_eval}),
               "population/size": k, "population/mesh": dict(mesh.shape),
               "population/samples_per_s": k * statistics.median(steady) if steady else None}
    m.writer.write_summary(summary)
    results.append(summary)
  return results
