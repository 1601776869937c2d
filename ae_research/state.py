"""The training state: one pytree, replicated over the mesh, checkpointed whole.

`params` are what the optimiser updates (the model's `nnx.Param`s), `model_state` the model's
other variables (EMA codebooks, running statistics), which the training forward pass updates
inside the compiled step. `opt_state` is one optax state: with several parameter groups
(`param_groups` in the config) it is `optax.multi_transform`'s, holding each group's state.
The data order and every step's randomness are derived from `rng` and `step` alone
(`data_key`, `step_key`), so restoring the state resumes exactly.
"""
from typing import Any, Dict, Tuple

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
  model_state: nnx.State  # Non-gradient variables (empty for most models).
  opt_state: optax.OptState
  rng: jax.Array  # Base PRNG key (raw uint32[2], which orbax stores as-is).


# The model's variables that are not parameters: its state.
MODEL_STATE = nnx.Not(nnx.Param)


def split_model(model: nnx.Module) -> Tuple[nnx.GraphDef, nnx.State, nnx.State]:
  """(graphdef, params, model_state). Randomness comes in as keys: a model holding `nnx.Rngs` is refused
  (its key state would be neither trained nor carried exactly)."""
  graphdef, params, rngs, model_state = nnx.split(model, nnx.Param, nnx.RngState, ...)
  if jax.tree.leaves(rngs):
    raise ConfigError(f"model: {type(model).__name__} stores nnx.Rngs; pass randomness to __call__ as keys "
                      "(rng=...) instead")
  return graphdef, params, model_state


def create_train_state(params: nnx.State, model_state: nnx.State, tx: optax.GradientTransformation,
                       seed: int) -> TrainState:
  """A fresh state with buffers of its own: training donates them, so they must not be the model's
  (or each other's: optax.lbfgs's state holds one buffer in two leaves).

  One compiled program: leaf by leaf, the copies and the optimiser's zeros were dozens of
  small programs compiled on first use (0.6 s of the demo's start-up, measured 2026-11-24). The
  program is traced per call (each run has its own optimiser), so no jit cache keeps old ones."""

  def fresh(params: nnx.State, model_state: nnx.State) -> TrainState:
    params = jax.tree.map(jnp.copy, params)  # Copies: the state's buffers are not the model's.
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=jax.tree.map(jnp.copy, model_state),
                      opt_state=jax.tree.map(jnp.copy, tx.init(params)), rng=jax.random.PRNGKey(seed))

  return jax.jit(fresh)(params, model_state)


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


def learning_rates(opt_state: optax.OptState) -> Dict[str, jax.Array]:
  """The current learning rate of each parameter group ("learning_rate" for the default group,
  "learning_rate/<group>" for the others), held in the state by `optax.inject_hyperparams`."""
  if isinstance(opt_state, optax.transforms.PartitionState):
    return {(k if group == DEFAULT_GROUP else f"{k}/{group}"): v
            for group, inner in opt_state.inner_states.items() for k, v in learning_rates(inner).items()}
  for node in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "hyperparams")):
    if "learning_rate" in getattr(node, "hyperparams", {}):
      return {"learning_rate": jnp.asarray(node.hyperparams["learning_rate"], jnp.float32)}
  return {"learning_rate": jnp.float32(jnp.nan)}


DEFAULT_GROUP = "default"  # The parameters no `param_groups` entry claims: trained by `optimizer`.
