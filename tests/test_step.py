"""The step functions and the compiled programs, under jit: a chunk equals its steps (also across
an epoch boundary), epoch orders are permutations, update masks freeze, masked evaluation
ignores padding, and a one-member population is the single-run program."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ae_research.batched import batch_split, eval_pieces, masked_sum, scan, scan_batches
from ae_research.models import StackedAutoencoder
from ae_research.sharding import make_mesh, put_replicated
from ae_research.state import create_train_state, split_model, step_key
from ae_research.step import epoch_order, flatten_rows, gather, make_loss_fn, make_train_step
from ae_research.training.programs import UNROLLED_STEPS, Programs
from ae_research.training.setup import setup

SPE = 1438 // 64  # digits, batch 64.


def _copy(tree):
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _single_steps(s, state, first, count):
  """`count` steps from `first`, one jitted step at a time, batches taken from the epoch orders."""
  rows, shapes = flatten_rows(s.data.train)
  step = jax.jit(make_train_step(s.loss_fn(), s.tx, s.update_mask))
  losses = []
  for k in range(first, first + count):
    order = epoch_order(state.rng, k // SPE, s.data.num_train, s.plan.batch_size)
    batch = gather(jax.device_put(rows), order[k % SPE], s.mesh, shapes)
    state, metrics = step(state, batch, step_key(state.rng, state.step))
    losses.append(float(metrics["loss"]))
  return state, np.array(losses)


@pytest.mark.parametrize("first, length, unroll", [(0, 7, "rolled"), (SPE - 3, SPE + 6, "rolled"),
                                                   (SPE - 3, SPE + 6, "full")],
                         ids=["within_epoch", "across_epochs", "unrolled_in_pieces_across_epochs"])
def test_a_chunk_equals_its_single_steps(make_cfg, first, length, unroll):
  s = setup(make_cfg(["model.hidden=[16]", f"trainer.scan_unroll={unroll}"]), devices=1)
  programs = Programs([s], [0])
  # Unrolled chunks run in pieces of at most UNROLLED_STEPS (here 10 + 10 + 8, the second crossing the epoch).
  assert len(programs.pieces(first, length)) == (1 if unroll == "rolled" else -(-length // UNROLLED_STEPS)) > 0
  state = put_replicated(create_train_state(s.params, s.model_state, s.tx, 0), s.mesh)
  state, _ = _single_steps(s, state, 0, first)  # Reach `first` step by step.
  want, want_losses = _single_steps(s, _copy(state), first, length)
  got, _, metrics = programs.run_chunk(_copy(state), programs.orders(state, first), first, length)
  assert int(got.step) == first + length
  np.testing.assert_allclose(np.asarray(metrics["loss"])[:length], want_losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got.params, want.params)


def test_a_rolled_run_compiles_one_chunk_program_for_every_length(make_cfg):
  """Rolled, chunks up to trainer.log_every_steps long share one program (a loop of a traced number of
  steps): the remainders before an evaluation or the last step compile nothing of their own."""
  s = setup(make_cfg(["model.hidden=[16]", "trainer.scan_unroll=rolled", "trainer.log_every_steps=8"]), devices=1)
  programs = Programs([s], [0])
  state = put_replicated(create_train_state(s.params, s.model_state, s.tx, 0), s.mesh)
  want, want_losses = _single_steps(s, _copy(state), 0, 11)
  got, orders, first = programs.run_chunk(_copy(state), programs.orders(state, 0), 0, 8)
  got, _, rest = programs.run_chunk(got, orders, 8, 3)
  assert len(programs._chunks) == 1  # pylint: disable=protected-access
  # Buffers no longer than a chunk can be: chunks end at every evaluation (each epoch here) too.
  rare_logs = setup(make_cfg(["model.hidden=[16]", "trainer.scan_unroll=rolled", "trainer.log_every_steps=1000"]),
                    devices=1)
  assert Programs([rare_logs], [0]).capacity(3) == SPE
  losses = np.concatenate([np.asarray(first["loss"]), np.asarray(rest["loss"])[:3]])
  np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got.params, want.params)


@pytest.mark.parametrize("n", [1, 3])
def test_an_unrolled_scan_is_straight_line_code_even_for_one_step(n):
  """XLA:CPU runs convolutions inside a loop ~25x slower: unrolled chunks and eval loops must have none."""
  body = lambda carry, x: (carry + x, carry * x)
  xs = jnp.arange(1, n + 1, dtype=jnp.float32)
  results = {}
  for unroll in (True, False):
    program = jax.jit(lambda xs, unroll=unroll: scan(body, jnp.float32(0), xs, unroll))
    assert ("while" in program.lower(xs).as_text()) == (not unroll)
    results[unroll] = program(xs)
  jax.tree.map(np.testing.assert_array_equal, results[True], results[False])


def test_epoch_order_is_a_permutation_redrawn_each_epoch():
  order = jax.jit(epoch_order, static_argnums=(2, 3))
  rng = jax.random.PRNGKey(3)
  first, again, second = (np.asarray(order(rng, e, 1000, 64)) for e in (0, 0, 1))
  assert first.shape == (15, 64)  # Drop-remainder: 15 full batches.
  assert len(np.unique(first)) == first.size and first.min() >= 0 and first.max() < 1000
  np.testing.assert_array_equal(first, again)  # A function of (key, epoch) alone: resume redraws it exactly.
  assert not np.array_equal(first, second)


def test_update_mask_freezes_parameters_even_with_weight_decay():
  model = StackedAutoencoder((6,), sizes=[5, 3], stage=2, rngs=nnx.Rngs(0))
  graphdef, params, model_state = split_model(model)
  tx = optax.adamw(0.1, weight_decay=0.5)
  step = jax.jit(make_train_step(make_loss_fn(graphdef, _squared_objective()), tx, model.update_mask(params)))
  state = create_train_state(params, model_state, tx, 0)
  x = jax.random.uniform(jax.random.PRNGKey(1), (8, 6))
  for _ in range(3):
    state, _ = step(state, {"image": x}, jax.random.PRNGKey(2))
  for group, layer, trained in (("encoders", 0, False), ("decoders", 0, False), ("encoders", 1, True)):
    before, after = params[group][layer]["kernel"][...], state.params[group][layer]["kernel"][...]
    assert np.array_equal(before, after) != trained, (group, layer)


def _squared_objective():
  from ae_research.losses import KLSparsity, Objective, SquaredError  # pylint: disable=g-import-not-at-top
  return Objective({"sq": SquaredError(), "kl": KLSparsity(0.2)})


def test_masked_evaluation_ignores_padded_rows():
  """Per-example and batch-level (KL sparsity) terms over a padded split equal the unpadded values."""
  model = StackedAutoencoder((6,), sizes=[4], rngs=nnx.Rngs(0))
  graphdef, params, model_state = split_model(model)
  loss_fn = make_loss_fn(graphdef, _squared_objective(), train=False)
  x = np.asarray(jax.random.uniform(jax.random.PRNGKey(0), (10, 6)))
  mesh = make_mesh(1)

  @jax.jit
  def evaluate(batches):
    per_batch = scan_batches(lambda b, r: loss_fn(params, model_state, b, r)[1][0], batches, mesh,
                             jax.random.PRNGKey(0))
    sums, rows = masked_sum(per_batch, batches)
    return {k: v / rows for k, v in sums.items()}

  exact = evaluate(batch_split({"image": x}, 10))  # One batch, no padding.
  padded = evaluate(batch_split({"image": x}, 16))  # One batch with 6 zero rows.
  assert batch_split({"image": x}, 16)["mask"].sum() == 10
  for key in ("sq", "kl", "loss"):
    assert float(padded[key]) == pytest.approx(float(exact[key]), rel=1e-6), key


def test_an_evaluation_in_one_batch_pieces_equals_the_evaluation_in_one_program(make_cfg):
  """Unrolled, eval/* runs one test batch per program (bounded memory); each batch draws the same noise
  as in the one-program loop, and the rows-weighted sums give the same means."""
  s = setup(make_cfg(["model.hidden=[16]", "trainer.scan_unroll=rolled", "corruption=gaussian",
                      "trainer.eval_batch_size=96"]), devices=1)
  pieced = dataclasses.replace(s, unroll=True)
  assert s.data.num_test % 96 != 0  # A padded last batch: its mask must weigh the means.
  whole, per_batch = Programs([s], [0]), Programs([pieced], [0])
  assert len(whole.test_pieces) == 1 and len(per_batch.test_pieces) == -(-s.data.num_test // 96) > 1
  state = put_replicated(create_train_state(s.params, s.model_state, s.tx, 0), s.mesh)
  a, b = whole.evaluate(state)[0], per_batch.evaluate(state)[0]
  assert set(a) == set(b) and "eval/loss" in a
  for key in a:
    assert b[key] == pytest.approx(a[key], rel=1e-5), key
  pieces = eval_pieces(batch_split({"image": np.zeros((5, 2))}, 2), unroll=True)
  assert [p["mask"].tolist() for p in pieces] == [[[1, 1]], [[1, 1]], [[1, 0]]]


def test_one_member_population_program_equals_the_single_run_program(make_cfg):
  s = setup(make_cfg(["model.hidden=[16]"]), devices=1)
  state = put_replicated(create_train_state(s.params, s.model_state, s.tx, 0), s.mesh)
  plain, stacked = Programs([s], [0]), Programs([s], [0], stacked=True)
  a, _, losses_a = plain.run_chunk(_copy(state), plain.orders(state, 0), 0, 10)
  b_states = stacked.place([_copy(state)])
  b, _, losses_b = stacked.run_chunk(b_states, stacked.orders(b_states, 0), 0, 10)
  np.testing.assert_allclose(np.asarray(losses_a["loss"]), np.asarray(losses_b["loss"])[:, 0], rtol=1e-6)
  jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-7), a.params,
               stacked.member_state(b, 0).params)
