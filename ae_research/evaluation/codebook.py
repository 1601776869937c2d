"""How a quantised model uses its codebook on the test set: codebook/perplexity (exp of the entropy of
the code indices' frequencies: K when all K entries are used equally, 1 when one entry takes all) and
codebook/usage (the share of entries used at least once)."""
import jax.numpy as jnp
import numpy as np

from ae_research.evaluation.base import Evaluator
from ae_research.models.capabilities import Quantised


def per_example_indices(model, batch, rng, extra):
  del rng, extra
  return {"indices": model(batch["image"])[1]["indices"].reshape(batch["image"].shape[0], -1)}


def perplexity_and_usage(indices: np.ndarray, num_codes: int):
  counts = jnp.bincount(jnp.asarray(indices).reshape(-1), length=num_codes)
  p = counts / counts.sum()
  entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
  return float(jnp.exp(entropy)), float(jnp.mean(counts > 0))


class CodebookUse(Evaluator):
  needs = (Quantised,)

  def __call__(self, ctx):
    indices = ctx.apply(per_example_indices, ctx.variables, ctx.test)["indices"]
    perplexity, usage = perplexity_and_usage(indices, ctx.model.codebook().shape[0])
    return {"codebook/perplexity": perplexity, "codebook/usage": usage}
