"""Reconstruction terms: per-example values, pixels reduced by mean or sum."""
import jax
import jax.numpy as jnp
import optax

from ae_research.errors import ConfigError
from ae_research.losses.base import LossInputs


def _flat(x: jax.Array) -> jax.Array:
  # Flattened before the elementwise work: XLA CPU handles (B, 784) much better than (B, 28, 28, 1).
  return x.reshape(x.shape[0], -1)


def _reduce_pixels(flat: jax.Array, reduction: str) -> jax.Array:
  return flat.mean(axis=1) if reduction == "mean" else flat.sum(axis=1)


def _check_reduction(reduction: str) -> str:
  if reduction not in ("mean", "sum"):
    raise ConfigError(f"loss term reduction={reduction!r}: must be mean or sum (over pixels)")
  return reduction


class SquaredError:
  """Squared error per example: mean over pixels (MSE) or sum (SSE, SPEC 2)."""

  def __init__(self, reduction: str = "mean"):
    self.reduction = _check_reduction(reduction)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return _reduce_pixels(jnp.square(_flat(ctx.recon) - _flat(ctx.target)), self.reduction)


class BinaryCrossEntropy:
  """Bernoulli negative log-likelihood per example, from the decoder logits.

  Computed with `optax.sigmoid_binary_cross_entropy` on `aux["logits"]` (stable for any
  logit); the model's output activation must then be sigmoid. Targets lie in [0, 1].
  `reduction="sum"` is Keras' `binary_crossentropy * 784` of SPEC 3.
  """

  def __init__(self, reduction: str = "mean"):
    self.reduction = _check_reduction(reduction)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    if ctx.model.output_activation != "sigmoid":
      raise ConfigError("loss: binary cross-entropy needs model.output_activation=sigmoid "
                        f"(got {ctx.model.output_activation}); change one of them")
    return _reduce_pixels(optax.sigmoid_binary_cross_entropy(_flat(ctx.aux["logits"]), _flat(ctx.target)),
                          self.reduction)
