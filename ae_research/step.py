"""The pure functions of one training step; `training/programs.py` compiles them into programs.

`train_step(state, batch, rng) -> (state, metrics)` is pure and does no I/O; the loss
returns `(scalar, metrics)` and that metrics dict is what gets logged. Batches are rows
gathered on device from the resident training arrays, in the order of the epoch's
on-device permutation, and constrained to be sharded over the mesh's "data" axis (the
state is replicated), which makes the step data-parallel: XLA inserts the all-reduce.
"""
import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax
from jax.sharding import Mesh

from ae_research.data.storage import ScaledImages
from ae_research.losses.base import EncoderView, LossInputs, Objective, reconstruction_target
from ae_research.sharding import batch_sharded
from ae_research.state import MODEL_STATE, TrainState, data_key, learning_rates

Batch = Dict[str, jax.Array]
Corruption = Callable[[jax.Array, jax.Array], jax.Array]  # (rng, clean inputs) -> corrupted inputs.


def make_loss_fn(graphdef: nnx.GraphDef, objective: Objective, corruption: Optional[Corruption] = None,
                 train: bool = True, dataset_size: int = 0):
  """loss_fn(params, model_state, batch, rng, step) -> (scalar, (metrics, model_state)).

  `batch["mask"]` (if any) marks real examples. The model's state comes back as the forward pass
  left it: updated when `train` (e.g. an EMA codebook), as it was otherwise. A term gets the
  parameters or an encoder view only when it declares that it reads them.
  """
  reads = objective.reads()

  def loss_fn(params: nnx.State, model_state: nnx.State, batch: Batch, rng: jax.Array,
              step: Optional[jax.Array] = None):
    # copy=True: the forward pass may update the model's state, and flax refuses to mutate variables that
    # alias arrays of another trace (here the step's, outside value_and_grad).
    model = nnx.merge(graphdef, params, model_state, copy=True)
    noise_rng, model_rng = jax.random.split(rng)
    clean = batch["image"]
    inputs = clean if corruption is None else corruption(noise_rng, clean)
    recon, aux = model(inputs, rng=model_rng, train=train)
    encoder = EncoderView(model.encode, model.sigmoid_code_kernel()) if "encoder" in reads else None
    ctx = LossInputs(inputs=inputs, target=reconstruction_target(aux, batch, clean), recon=recon, aux=aux,
                     mask=batch.get("mask"), labels=batch.get("label"), params=params if "params" in reads else None,
                     encoder=encoder, batch=batch, dataset_size=dataset_size, step=step)
    loss, metrics = objective(ctx, step=step)
    return loss, (metrics, nnx.state(model, MODEL_STATE))

  return loss_fn


def make_train_step(loss_fn, tx: optax.GradientTransformation, update_mask: Any = None):
  """`update_mask` (bool pytree like the params, or None): False leaves a parameter frozen.

  The loss value and a `value_fn` of this batch go to `tx.update` as optax's extra arguments:
  L-BFGS's line search needs them (`optax.lbfgs`); other optimisers ignore them.
  """

  def train_step(state: TrainState, batch: Batch, rng: jax.Array):
    (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, state.model_state, batch, rng, state.step)
    value_fn = lambda params: loss_fn(params, state.model_state, batch, rng, state.step)[0]
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss, grad=grads, value_fn=value_fn)
    if update_mask is not None:
      updates = jax.tree.map(lambda u, train: u if train else jnp.zeros_like(u), updates, update_mask)
    params = optax.apply_updates(state.params, updates)
    # The new state's learning rates are the ones this update used (inject_hyperparams stores them).
    metrics = {**metrics, "grad_norm": optax.global_norm(grads), **learning_rates(opt_state)}
    return state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state), metrics

  return train_step


@dataclasses.dataclass(frozen=True)
class RowSpec:
  """How one key of a split is stored as rows: each example's shape, and for 8-bit storage
  (`ScaledImages`) the float32 value of each of the 256 bytes (hashable: it is baked into programs)."""
  shape: Tuple[int, ...]
  table: Optional[Tuple[float, ...]] = None

  def decode(self, rows: jax.Array, lead: Tuple[int, ...]) -> jax.Array:
    """Stored rows (lead + (D,)) as the batch's values, shaped lead + shape."""
    if self.table is not None:
      rows = jnp.take(jnp.asarray(self.table, jnp.float32), rows.astype(jnp.int32), axis=0)
    return rows.reshape(*lead, *self.shape)


Layout = Dict[str, RowSpec]


def flatten_rows(split: Dict[str, Any]) -> Tuple[Dict[str, Any], Layout]:
  """(arrays with each example flattened, how to read them back): how training splits are stored as
  rows, on the device or the host. 8-bit images stay bytes (a quarter of the memory).

  Gathering flat rows is much faster on XLA CPU than gathering (28, 28, 1) images (an
  epoch of SPEC 1: 0.66 s -> 0.60 s, measured); `gather` restores the shapes per batch.
  """
  rows, layout = {}, {}
  for k, v in split.items():
    stored = v.raw if isinstance(v, ScaledImages) else np.asarray(v)
    rows[k] = stored.reshape(len(stored), -1)
    layout[k] = RowSpec(tuple(v.shape[1:]), tuple(float(t) for t in v.table) if isinstance(v, ScaledImages) else None)
  return rows, layout


def gather(rows: Batch, idx: jax.Array, mesh: Mesh, layout: Layout) -> Batch:
  """Rows `idx` of every flat array, read back per `layout` (see `flatten_rows`), sharded on "data"."""
  return constrain_batch({k: layout[k].decode(v[idx], idx.shape) for k, v in rows.items()}, mesh)


def decode_batch(stored: Batch, layout: Layout) -> Batch:
  """A batch gathered as stored rows on the host ((B, D) per key) read back per `layout`."""
  return {k: layout[k].decode(v, v.shape[:-1]) for k, v in stored.items()}


def constrain_batch(batch: Batch, mesh: Mesh) -> Batch:
  sharding = batch_sharded(mesh)
  return {k: lax.with_sharding_constraint(v, sharding) for k, v in batch.items()}


def epoch_order(rng: jax.Array, epoch: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
  """(steps_per_epoch, batch_size) example indices of `epoch`'s shuffle, drop-remainder."""
  steps = num_examples // batch_size
  perm = jax.random.permutation(data_key(rng, epoch), num_examples)
  return perm[:steps * batch_size].reshape(steps, batch_size)
