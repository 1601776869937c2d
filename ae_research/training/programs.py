"""The device programs of a run of K >= 1 members, built once: chunk, epoch order, evaluation.

A *chunk* is one compiled loop over up to `trainer.log_every_steps` optimiser steps (the count
traced, so one program serves every chunk of a run; unrolled, a fixed count; chunks also end where an
evaluation or checkpoint may be due). It counts steps, not
epochs: the epoch's (steps, batch) index matrix is carried from chunk to chunk, drawn on
device when a chunk starts an epoch, and, in chunks that cross epoch boundaries, redrawn
inside the loop whenever a step starts a new epoch; so a full-batch run does hundreds of
epochs per host round trip, while chunks within one epoch carry no branch (it cost 2-3%
of a SPEC 1 epoch, measured).

Members are the general case. With K > 1 the members' states are stacked on a leading
axis, spread over the mesh's "population" axis, and the step is `jax.vmap`ped over them;
the numbers in which their objectives and corruptions differ (loss weights, rho, noise
level) enter as traced values (`training/sharing.py`). A single run (K = 1) runs the
same code without the member axis: measured with `ae-bench`, vmapping one member costs
throughput on CPU and buys nothing.
"""
import functools
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from ae_research.batched import batch_split, eval_pieces, masked_sum, scan, scan_batches
from ae_research.errors import ConfigError
from ae_research.process import release_freed_memory
from ae_research.training import sharing as members_lib
from ae_research.sharding import (DATA_AXIS, POPULATION_AXIS, member_sharded, put, put_replicated, replicated,
                                  to_host)
from ae_research.state import TrainState, step_key
from ae_research.step import constrain_batch, decode_batch, epoch_order, flatten_rows, gather, make_loss_fn, make_train_step
from ae_research.training.stream import HostStream
from ae_research.training.setup import Setup


# Unrolled chunks (`trainer.scan_unroll`) run at most this many steps per program: compile time grows
# with the steps unrolled while throughput does not (SPEC 5's stacked conv AE, batch 128, 50 steps per
# host sync, per greedy stage and fine-tuning: 15.2 / 12.0 / 26.5 s to compile one 50-step program,
# 2.2 / 1.8 / 3.2 s for a 10-step one; 1495 / 501 / 358 vs 1425 / 600 / 405 samples/s).
UNROLLED_STEPS = 10
AUGMENT_STREAM = 7  # fold_in of a step's key that draws its augmentation (the key itself draws noise).


class CannotShare(Exception):
  """The members do not fit one program (they then train one after another)."""


def _over_members(fn: Callable, in_axes, stacked: bool) -> Callable:
  """`fn` vmapped over the member axis (spread over the mesh's "population" axis), or `fn` for K = 1."""
  return jax.vmap(fn, in_axes=in_axes, spmd_axis_name=POPULATION_AXIS) if stacked else fn


@functools.lru_cache(maxsize=64)
def _order_program(num_train: int, batch_size: int, stacked: bool, sharding) -> Callable:
  """The jitted epoch order `(rng, epoch) -> (steps, batch) indices`, shared by every run in the process
  with the same data size, batch, layout and mesh (traced and lowered once, not once per run)."""
  order = lambda rng, epoch: epoch_order(rng, epoch, num_train, batch_size)
  return jax.jit(_over_members(order, (0, None), stacked), out_shardings=sharding)


class Programs:
  """Chunk (compiled once per length), epoch order and evaluation of K members."""

  def __init__(self, setups: Sequence[Setup], seeds: Sequence[int], stacked: bool = None):
    s0 = setups[0]
    self.k = len(setups)
    self.stacked = self.k > 1 if stacked is None else stacked
    if self.k > 1 and not self.stacked:
      raise ValueError("several members need the stacked layout")
    self.s0, self.mesh, self.plan = s0, s0.mesh, s0.plan
    shapes = [jax.tree.map(lambda x: (x.shape, x.dtype), s.params) for s in setups]
    if any(s != shapes[0] for s in shapes):
      raise CannotShare("the members' parameters differ in shape")
    try:
      self.varying = {"objective": members_lib.numeric_leaves([s.objective for s in setups], "loss terms"),
                      "corruption": members_lib.numeric_leaves([s.corruption for s in setups], "corruption")}
    except ConfigError as e:
      raise CannotShare(str(e)) from None
    self.state_sharding = member_sharded(self.mesh) if self.stacked else replicated(self.mesh)
    rows, self.layout = flatten_rows(s0.data.train)
    # On the device the training rows are one replicated array per key; streamed, they stay on the host
    # and each chunk gets its steps' batches (training/stream.py).
    self.streamed = not s0.on_device
    self.train = None if self.streamed else put_replicated(rows, self.mesh)
    self._host_rows, self._stream = rows, None
    self.test_pieces = [put_replicated(piece, self.mesh) for piece in eval_pieces(
        batch_split(s0.data.test, self.plan.eval_batch_size), s0.unroll)]
    self.hps = self._place({w: {p: v for p, v in paths.items()} for w, paths in self.varying.items()}, stacked_host=True)
    self.eval_rngs = self._place([np.asarray(jax.random.PRNGKey(seed + 1)) for seed in seeds])
    self._order = _order_program(s0.data.num_train, self.plan.batch_size, self.stacked, self.state_sharding)
    self._options = dict(s0.compiler_options) or None
    self._evaluate = jax.jit(self._members(self._evaluate_member, (0, 0, 0, 0, 0, None, None)),
                             out_shardings=replicated(self.mesh), compiler_options=self._options)
    self._member_state = jax.jit(lambda states, i: jax.tree.map(lambda x: x[i], states),
                                 out_shardings=replicated(self.mesh))
    self._chunks: Dict[int, Callable] = {}
    self.compile_s = 0.0  # Seconds spent compiling chunks (kept apart from step time).

  # --- The member axis: vmapped (stacked) or absent (a single run). ---
  def _members(self, fn, in_axes):
    return _over_members(fn, in_axes, self.stacked)

  def _place(self, trees: Any, stacked_host: bool = False):
    """Per-member host values -> device: stacked (K, ...) over "population", or member 0's alone."""
    if not stacked_host:
      trees = jax.tree.map(lambda *xs: np.stack(xs), *trees)
    if not self.stacked:
      trees = jax.tree.map(lambda x: x[0], trees)
    return put(trees, self.state_sharding)

  def place(self, states: Sequence[TrainState]) -> TrainState:
    """The members' initial states (each replicated) as the program's state."""
    if not self.stacked:
      return states[0]
    return self._place([to_host(st) for st in states])

  def member_state(self, states: TrainState, i: int) -> TrainState:
    """Member i's state, replicated (for checkpoints and the final evaluation)."""
    return self._member_state(states, jnp.int32(i)) if self.stacked else states

  def per_member(self, values: Any, axis: int = 0) -> List[Any]:
    """Host copies of device values with a member axis at `axis` (absent for a single run), one per member."""
    values = to_host(values)
    return [jax.tree.map(lambda v: np.take(v, i, axis=axis) if self.stacked else v, values) for i in range(self.k)]

  # --- The programs. ---
  def _loss_fn(self, hp, train: bool = True):
    objective = members_lib.with_values(self.s0.objective, hp["objective"])
    corruption = members_lib.with_values(self.s0.corruption, hp["corruption"])
    return make_loss_fn(self.s0.graphdef, objective, corruption, train, self.s0.data.num_train)

  def _member_step(self, train, state, rows, hp):
    """One optimiser step of one member; `rows` are its batch's indices into `train` (on the device), or
    the batch's stored rows themselves (streamed)."""
    step = make_train_step(self._loss_fn(hp), self.s0.tx, self.s0.update_mask)
    batch = gather(train, rows, self.mesh, self.layout) if train is not None else constrain_batch(
        decode_batch(rows, self.layout), self.mesh)
    key = step_key(state.rng, state.step)
    if self.s0.augment is not None:
      batch = self.s0.augment(jax.random.fold_in(key, AUGMENT_STREAM), batch)
    return step(state, batch, key)

  def _evaluate_member(self, params, model_state, step, rng, hp, test, first):
    """Sums over one piece of the test batches (from batch `first`): the metrics weighted by real rows, and the rows."""
    loss_fn = self._loss_fn(hp, train=False)  # The model's state is read, not updated.
    per_batch = scan_batches(lambda batch, r: loss_fn(params, model_state, batch, r, step)[1][0], test, self.mesh, rng,
                             self.s0.unroll, first=first)
    return masked_sum(per_batch, test)

  def _chunk(self, length: int, crosses_epochs: bool):
    """`length` steps unrolled; rolled, a loop of a traced number of steps up to `length` (its metrics
    in the first rows of `length`-row buffers): one program then serves every chunk of a run, where
    each remainder before an evaluation or the last step compiled a program of its own."""
    spe = self.plan.steps_per_epoch

    def train_chunk(states, orders, start, num_steps, train, hps):  # Named in profiles and HLO dumps.
      member_step = self._members(lambda st, rows, hp: self._member_step(train, st, rows, hp), (0, 0, 0))
      # Streamed, the second argument is the chunk's batches ((steps, [K,] B, D) stored rows per key), not orders.
      batches, orders = (orders, None) if self.streamed else (None, orders)

      def body(carry, i):
        states, orders = carry
        if batches is not None:
          states, metrics = member_step(states, {k: lax.dynamic_index_in_dim(v, i, keepdims=False)
                                                 for k, v in batches.items()}, hps)
          return (states, orders), metrics
        step = start + i  # Shared by all members: the epoch's redraw below is a real branch, not a select.
        epoch, pos = step // spe, step % spe
        if crosses_epochs:
          orders = lax.cond(pos == 0, lambda: self._order(states.rng, epoch), lambda: orders)
        idx = jnp.take(orders, pos, axis=-2)
        states, metrics = member_step(states, idx, hps)
        return (states, orders), metrics

      if self.s0.unroll:
        return scan(body, (states, orders), jnp.arange(length), True)

      def loop_body(i, loop_carry):
        carry, buffers = loop_carry
        carry, metrics = body(carry, i)
        return carry, jax.tree.map(lambda b, m: lax.dynamic_update_index_in_dim(b, m, i, 0), buffers, metrics)

      shapes = jax.eval_shape(lambda c: body(c, jnp.int32(0))[1], (states, orders))
      buffers = jax.tree.map(lambda x: jnp.zeros((length, *x.shape), x.dtype), shapes)
      return lax.fori_loop(0, num_steps, loop_body, ((states, orders), buffers))

    # The states, and the epoch orders they carry on the device (streamed batches are read, not carried).
    return jax.jit(train_chunk, donate_argnums=(0,) if self.streamed else (0, 1), compiler_options=self._options,
                   out_shardings=((self.state_sharding, self.state_sharding), replicated(self.mesh)))

  def pieces(self, start: int, length: int) -> List[Tuple[int, int]]:
    """(first step, length) of the compiled chunks that run steps start..start+length: one, or for
    unrolled programs pieces of at most UNROLLED_STEPS, dispatched back to back (no host sync)."""
    size = UNROLLED_STEPS if self.s0.unroll else max(length, 1)
    return [(first, min(size, start + length - first)) for first in range(start, start + length, size)]

  def compile_chunk(self, start: int, length: int, states, orders) -> None:
    """Compiles ahead of time what `run_chunk(states, orders, start, length)` will run."""
    for first, n in self.pieces(start, length):
      self.chunk_program(first, n, states, orders)

  def capacity(self, length: int) -> int:
    """The compiled length that runs a chunk of `length` steps: itself unrolled; rolled, the longest
    chunk the run can have (`Plan.longest_chunk`: its metric buffers are no longer than needed when
    evaluations come more often than `trainer.log_every_steps`), so every shorter one shares it."""
    return length if self.s0.unroll else max(length, self.plan.longest_chunk)

  def chunk_program(self, start: int, length: int, states, orders) -> Callable:
    """The compiled chunk that runs `length` steps from `start` (compiled ahead of time on first use; timed)."""
    key = (self.capacity(length), start % self.plan.steps_per_epoch + length > self.plan.steps_per_epoch)
    if self.streamed:
      key = (key[0], False)  # Streamed batches arrive whole: no epoch boundary inside the program.
      orders = self.stream_inputs(key[0])
    if key not in self._chunks:
      t = time.perf_counter()
      try:
        self._chunks[key] = self._chunk(*key).lower(states, orders, jnp.int32(0), jnp.int32(0), self.train,
                                                    self.hps).compile()
      except jax.errors.ConcretizationTypeError as e:
        raise CannotShare(f"a varying value is used in Python control flow ({str(e).splitlines()[0][:120]})") \
            from None
      release_freed_memory()  # The compiler's working memory, which glibc would keep all run.
      self.compile_s += time.perf_counter() - t
    return self._chunks[key]

  def stream_inputs(self, capacity: int):
    """The abstract batches a streamed chunk of `capacity` steps takes (for lowering its program)."""
    lead = (capacity, self.k) if self.stacked else (capacity,)
    spec = P(None, POPULATION_AXIS, DATA_AXIS) if self.stacked else P(None, DATA_AXIS)
    return {k: jax.ShapeDtypeStruct((*lead, self.plan.batch_size, v.shape[1]), v.dtype,
                                    sharding=NamedSharding(self.mesh, spec)) for k, v in self._host_rows.items()}

  def stream(self, states) -> HostStream:
    """The host stream of a streamed run (built on first use: it needs the members' keys)."""
    if self._stream is None:
      # The keys are copied to the host: the state's own buffers are donated to the next chunk.
      self._stream = HostStream(self._host_rows, self._order, to_host(states.rng), self.plan.steps_per_epoch,
                                self.plan.total_steps, self.mesh, self.stacked)
    return self._stream

  def run_chunk(self, states, orders, start: int, length: int):
    """(states, orders, metrics) after steps start..start+length; metrics (rows[, K]) stay on device
    (`per_member(metrics, axis=1)` fetches them), their first `length` rows the steps' (rolled, a
    shorter chunk than the run's longest leaves the rest zero: slicing on the device would
    compile a slice per length). `orders` must be those of `start`'s epoch unless `start` begins an
    epoch (they are drawn here then); streamed, the chunk's batches come from the host stream."""
    pieces = self.pieces(start, length)
    if len(pieces) > 1:
      outputs = []
      for first, n in pieces:
        states, orders, metrics = self.run_chunk(states, orders, first, n)
        outputs.append(metrics)
      return states, orders, jax.tree.map(lambda *m: jnp.concatenate(m), *outputs)
    program = self.chunk_program(start, length, states, orders)
    if self.streamed:
      capacity = self.capacity(length)
      batches = self.stream(states).batches(start, capacity, used=length)
      (states, _), metrics = program(states, batches, jnp.int32(start), jnp.int32(length), self.train, self.hps)
      return states, orders, metrics
    if start % self.plan.steps_per_epoch == 0:
      orders = self.orders(states, start)
    (states, orders), metrics = program(states, orders, jnp.int32(start), jnp.int32(length), self.train, self.hps)
    return states, orders, metrics

  def orders(self, states: TrainState, step: int):
    """The epoch order of the epoch that step `step` lies in (streamed runs order on the host: none)."""
    if self.streamed:
      return None
    return self._order(states.rng, jnp.int32(step // self.plan.steps_per_epoch))

  def compile_evaluate(self, states: TrainState) -> None:
    """Compiles the evaluation ahead of time (timed as compilation, not evaluation)."""
    if not hasattr(self._evaluate, "lower"):
      return
    t = time.perf_counter()
    self._evaluate = self._evaluate.lower(states.params, states.model_state, states.step, self.eval_rngs, self.hps,
                                          self.test_pieces[0], jnp.int32(0)).compile()
    release_freed_memory()
    self.compile_s += time.perf_counter() - t

  def evaluate(self, states: TrainState) -> List[Dict[str, float]]:
    """Each member's eval/* metrics: its objective on the (corrupted, as in training) test split, summed
    over the pieces (one program, dispatched back to back) and divided by the real rows on the host."""
    sums, rows, first = None, None, 0
    for piece in self.test_pieces:
      piece_sums, piece_rows = self._evaluate(states.params, states.model_state, states.step, self.eval_rngs,
                                              self.hps, piece, jnp.int32(first))
      sums = piece_sums if sums is None else jax.tree.map(jnp.add, sums, piece_sums)
      rows = piece_rows if rows is None else rows + piece_rows
      first += piece["mask"].shape[0]
    return [{f"eval/{k}": float(v) / float(n) for k, v in m.items()}
            for m, n in zip(self.per_member(sums), self.per_member(rows))]
