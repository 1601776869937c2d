"""The training state: one pytree, replicated over the mesh, checkpointed whole.

The data order and every step's randomness are derived from `rng` and `step` alone
(`data_key`, `step_key`), so restoring (params, opt_state, rng, step) resumes exactly.
"""
from typing import Any, Tuple

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ae_research.errors import ConfigError

_DATA_STREAM, _STEP_STREAM = 0, 1


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimiser steps taken.
  params: nnx.State
  opt_state: optax.OptState
  rng: jax.Array  # Base PRNG key (raw uint32[2], which orbax stores as-is).


def split_model(model: nnx.Module) -> Tuple[nnx.GraphDef, nnx.State]:
  """(graphdef, params). Models keep only `nnx.Param`s: randomness comes in as keys."""
  try:
    return nnx.split(model, nnx.Param)
  except ValueError as e:
    raise ConfigError(f"model: {type(model).__name__} holds non-parameter state ({e}); "
                      "pass randomness as keys instead of storing nnx.Rngs") from None


def create_train_state(params: nnx.State, tx: optax.GradientTransformation, seed: int) -> TrainState:
  """A fresh state with buffers of its own: training donates them, so they must not be the model's
  (or each other's: optax.lbfgs's state holds one buffer in two leaves).

  One compiled program: leaf by leaf, the copies and the optimiser's zeros were dozens of
  small programs compiled on first use (0.6 s of the demo's start-up, measured 2026-11-24). The
  program is traced per call (each run has its own optimiser), so no jit cache keeps old ones."""

  def fresh(params: nnx.State) -> TrainState:
    params = jax.tree.map(jnp.copy, params)  # Copies: the state's buffers are not the model's.
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=jax.tree.map(jnp.copy, tx.init(params)), rng=jax.random.PRNGKey(seed))

  return jax.jit(fresh)(params)


def data_key(rng: jax.Array, epoch: Any) -> jax.Array:
  """Key of the shuffle of `epoch`."""
  return jax.random.fold_in(jax.random.fold_in(rng, _DATA_STREAM), epoch)


def step_key(rng: jax.Array, step: Any) -> jax.Array:
  """Key of the randomness (noise, sampling) of optimiser step `step`."""
  return jax.random.fold_in(jax.random.fold_in(rng, _STEP_STREAM), step)


def with_hyperparams_of(opt_state: optax.OptState, fresh: optax.OptState) -> optax.OptState:
  """`opt_state` with the injected hyperparameters (learning rate, ...) taken from `fresh`.

  A resumed run restores the optimiser's moments but must use the hyperparameters of the
  config it is resumed with (e.g. a lowered learning rate), not the checkpoint's.
  """
  has = lambda x: hasattr(x, "hyperparams")
  return jax.tree.map(lambda old, new: old._replace(hyperparams=new.hyperparams) if has(old) else old,
                      opt_state, fresh, is_leaf=has)


def learning_rate(opt_state: optax.OptState) -> jax.Array:
  """The current learning rate, held in the state by `optax.inject_hyperparams`."""
  for node in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "hyperparams")):
    if "learning_rate" in getattr(node, "hyperparams", {}):
      return jnp.asarray(node.hyperparams["learning_rate"], jnp.float32)
  return jnp.float32(jnp.nan)
