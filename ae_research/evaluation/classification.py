"""A classifier's test accuracy, error and cross-entropy."""
from typing import Dict

import jax
import jax.numpy as jnp
import optax

from ae_research.evaluation.base import CLASS_LABELS, Evaluator
from ae_research.models.capabilities import Classifies


def per_example_classification(model, batch, rng, extra) -> Dict[str, jax.Array]:
  del rng, extra
  logits, _ = model(batch["image"])
  return {"correct": (jnp.argmax(logits, axis=-1) == batch["label"]).astype(jnp.float32),
          "ce": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])}


class Classification(Evaluator):
  """test/accuracy, test/error and test/ce (nats) of a classifier."""
  needs = (Classifies, CLASS_LABELS)

  def __call__(self, ctx):
    out = ctx.apply(per_example_classification, ctx.variables, ctx.test)
    accuracy = float(out["correct"].mean())
    return {"test/accuracy": accuracy, "test/error": 1.0 - accuracy, "test/ce": float(out["ce"].mean())}
