"""Supervised terms for fine-tuning a classifier made from an encoder: per-example values."""
import jax
import jax.numpy as jnp
import optax

from ae_research.errors import ConfigError
from ae_research.losses.base import LossInputs


def _labels(ctx: LossInputs) -> jax.Array:
  if ctx.labels is None:
    raise ConfigError("loss: cross-entropy needs labelled data; the data set has no labels")
  return ctx.labels


class CrossEntropy:
  """Softmax cross-entropy of the logits against the integer class labels (nats), per example."""

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(ctx.aux["logits"], _labels(ctx))


class Accuracy:
  """1 where the most likely class is the label, else 0 (a metric: not differentiable)."""

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return (jnp.argmax(ctx.aux["logits"], axis=-1) == _labels(ctx)).astype(jnp.float32)
