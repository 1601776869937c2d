"""How likely the model finds the test data: the ELBO and the importance-weighted bound (Burda et al. 2016)."""
import math
from typing import Dict, Optional

import jax
import numpy as np
from jax import lax

from ae_research.evaluation.base import Evaluator
from ae_research.metrics.bounds import iwae_bound, log_importance_weights
from ae_research.metrics.likelihoods import bits_per_dim
from ae_research.models.capabilities import ExplicitLikelihood, Generative, StochasticEncoder


def per_example_elbo(model, batch, rng, extra) -> Dict[str, jax.Array]:
  """The one-sample ELBO's two parts of each clean example: log p(x|z) with z ~ q(z|x), and KL(q || p)."""
  del extra
  _, sample_rng = jax.random.split(rng)  # The first key is the test pass's corruption (reconstruction.py).
  x = batch["image"]
  _, sampled = model(x, rng=sample_rng)
  return {"elbo_reconstruction": model.log_likelihood(x, sampled["logits"]), "elbo_kl": sampled["kl"]}


def iwae_log_weights(model, x: jax.Array, rng: jax.Array, samples: int) -> jax.Array:
  """(samples, B) log importance weights log p(x|z) + log p(z) - log q(z|x), z ~ q(z|x)."""
  posterior, prior = model.posterior(x), model.prior()
  z = posterior.sample(rng, samples)

  def log_weight(z_i):
    return log_importance_weights(model.log_likelihood(x, model.decode_logits(z_i)), prior.log_prob(z_i),
                                  posterior.log_prob(z_i))

  return lax.map(log_weight, z)  # One sample at a time keeps memory at one batch.


def per_example_iwae(model, batch, rng, extra, *, samples: int) -> Dict[str, jax.Array]:
  """The IWAE bound with `samples` importance samples and a one-sample ELBO, per clean example."""
  del extra
  elbo_rng, iwae_rng = jax.random.split(rng)
  x = batch["image"]
  _, sampled = model(x, rng=elbo_rng)
  elbo = model.log_likelihood(x, sampled["logits"]) - sampled["kl"]
  return {"iwae": iwae_bound(iwae_log_weights(model, x, iwae_rng, samples)), "elbo": elbo}


class Likelihood(Evaluator):
  """test/elbo (with its parts test/elbo_reconstruction, test/elbo_kl) on every test example; with
  `samples` > 0 the IWAE bound on the first `max_test` of them: test/nll_iwae (nats, and its standard
  error over the examples), test/bits_per_dim, and the ELBO on the same examples (test/elbo_iwae_examples).
  100 samples cost 100 decoder passes per example: test/nll_iwae_stderr says what the subset costs."""
  needs = (StochasticEncoder, Generative, ExplicitLikelihood)

  def __init__(self, samples: int = 100, max_test: Optional[int] = 2000):
    self.samples, self.max_test = samples, max_test

  def unavailable(self, s):
    if s.data.has_paired_targets:
      return "the data have paired targets (the likelihood is of the input)"
    lo, hi = getattr(s.model, "likelihood_range", (0.0, 1.0))
    data_lo, data_hi = s.data.value_range
    if data_lo < lo or data_hi > hi:
      return (f"the model's likelihood is defined on [{lo:g}, {hi:g}] and the data lie in [{data_lo:g}, {data_hi:g}]; "
              "use dataset.scale=unit")
    return None

  def __call__(self, ctx):
    per = ctx.apply(per_example_elbo, ctx.variables, {"image": ctx.test["image"]}, jax.random.PRNGKey(ctx.seed))
    out = {"test/elbo_reconstruction": float(np.mean(per["elbo_reconstruction"])),
           "test/elbo_kl": float(np.mean(per["elbo_kl"])),
           "test/elbo": float(np.mean(per["elbo_reconstruction"] - per["elbo_kl"]))}
    if self.samples > 0:
      images = ctx.test["image"][:self.max_test] if self.max_test else ctx.test["image"]
      iw = ctx.apply(per_example_iwae, ctx.variables, {"image": images}, jax.random.PRNGKey(ctx.seed + 1),
                     samples=self.samples)
      n = len(iw["iwae"])
      nll = float(-iw["iwae"].mean())
      out.update({"test/nll_iwae": nll, "test/nll_iwae_stderr": float(iw["iwae"].std() / np.sqrt(n)),
                  "test/nll_iwae_examples": n, "test/elbo_iwae_examples": float(iw["elbo"].mean()),
                  "test/bits_per_dim": float(bits_per_dim(nll, math.prod(ctx.data.image_shape)))})
    return out
