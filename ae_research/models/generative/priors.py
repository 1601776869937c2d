"""Priors p(z) of the composed generative autoencoder: `prior.distribution(posterior_of)` gives the
distribution (`metrics.distributions`) that KL terms, samples and importance weights use; `check(latent)`
refuses a latent the prior cannot work with, in one line, when the model is built.

- `StandardNormalPrior`: N(0, I);
- `VampPrior` (Tomczak & Welling 2018, "VAE with a VampPrior"): p(z) = (1/K) sum_k q(z | u_k), the mixture
  of the encoder's posteriors of K learnt pseudo-inputs u_k (500 in the paper, initialised N(0.05, 0.01)
  and passed through a hard tanh into the data's range, as the authors' code does).

Models without a prior (deterministic autoencoders such as the RAE) are sampled ex post, from a mixture
fitted to their training codes (`metrics/expost.py`).
"""
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.metrics.distributions import DiagonalGaussian, GaussianMixture, StandardNormal


class StandardNormalPrior(nnx.Module):
  name = "standard_normal"

  def __init__(self, latent_dim: int, input_shape: Sequence[int] = (), *, rngs: nnx.Rngs):
    del input_shape, rngs
    self.latent_dim = latent_dim

  def check(self, latent) -> None:
    if latent.kind == "vector-quantised":
      raise ConfigError(f"model.prior: {self.name} needs a continuous latent; model.latent is vector-quantised "
                        "(its codes are sampled through their codebook indices: set model/prior=null)")

  def distribution(self, posterior_of: Callable[[jax.Array], DiagonalGaussian]) -> StandardNormal:
    del posterior_of
    return StandardNormal(self.latent_dim)


class VampPrior(nnx.Module):
  """`components` pseudo-inputs of the data's shape (parameters, trained with the rest); the prior is the
  equally weighted mixture of their posteriors under the current encoder (evaluated without updating
  batch statistics)."""
  name = "vamp"

  def __init__(self, latent_dim: int, input_shape: Sequence[int], components: int = 500, init_mean: float = 0.05,
               init_std: float = 0.01, low: float = 0.0, high: float = 1.0, *, rngs: nnx.Rngs):
    if components <= 0:
      raise ConfigError(f"model.prior.components={components}: must be positive")
    if not low < high:
      raise ConfigError(f"model.prior: the pseudo-inputs' range needs low < high, got [{low}, {high}]")
    self.latent_dim, self.low, self.high = latent_dim, low, high
    noise = jax.random.normal(rngs.params(), (components, *input_shape))
    self.pseudo_inputs = nnx.Param(init_mean + init_std * noise)

  def check(self, latent) -> None:
    if latent.kind != "gaussian":
      raise ConfigError(f"model.prior: the VampPrior needs a gaussian latent (its components are the encoder's "
                        f"posteriors of its pseudo-inputs); model.latent is {latent.kind}")

  def inputs(self) -> jax.Array:
    return jnp.clip(self.pseudo_inputs[...], self.low, self.high)  # The hard tanh of Tomczak & Welling's code.

  def distribution(self, posterior_of: Callable[[jax.Array], DiagonalGaussian]) -> GaussianMixture:
    q = posterior_of(self.inputs())
    return GaussianMixture(q.mean, q.log_var, jnp.zeros(q.mean.shape[0], q.mean.dtype))
