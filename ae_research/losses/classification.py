"""Supervised terms for fine-tuning a classifier made from an encoder: per-example values."""
import jax
import jax.numpy as jnp
import optax

from ae_research.losses.base import LossInputs, Term


class CrossEntropy(Term):
  """Softmax cross-entropy of the logits against the integer class labels (nats), per example."""
  reads = ("logits", "labels")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(ctx.aux["logits"], ctx.labels)


class Accuracy(Term):
  """1 where the most likely class is the label, else 0 (a metric: not differentiable)."""
  reads = ("logits", "labels")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return (jnp.argmax(ctx.aux["logits"], axis=-1) == ctx.labels).astype(jnp.float32)
