"""The distributions of latent codes: posteriors q(z|x) and priors p(z), as pytrees.

A posterior travels in a model's aux dict (it is a pytree of arrays, so it crosses jit, vmap and
scan), and loss terms and evaluators ask it for samples, densities and KL divergences. Densities are
summed over the code's dimensions: one value per example (or per sample and example).
"""
import math
from typing import Optional, Union

import flax.struct
import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2 * math.pi)


@flax.struct.dataclass
class StandardNormal:
  """p(z) = N(0, I) in `dim` dimensions."""
  dim: int = flax.struct.field(pytree_node=False)

  def sample(self, key: jax.Array, num: int) -> jax.Array:
    return jax.random.normal(key, (num, self.dim))

  def log_prob(self, z: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(_LOG_2PI + jnp.square(z), axis=-1)


@flax.struct.dataclass
class DiagonalGaussian:
  """N(mean, diag(exp(log_var))), batched: `mean` and `log_var` are (..., d)."""
  mean: jax.Array
  log_var: jax.Array

  @property
  def scale(self) -> jax.Array:
    return jnp.exp(0.5 * self.log_var)

  def sample(self, key: jax.Array, num: Optional[int] = None) -> jax.Array:
    """The reparameterised z = mean + scale * eps: (..., d), or (num, ..., d) for `num` samples each."""
    shape = self.mean.shape if num is None else (num, *self.mean.shape)
    return self.mean + jnp.exp(0.5 * self.log_var) * jax.random.normal(key, shape, self.mean.dtype)

  def log_prob(self, z: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(_LOG_2PI + self.log_var + jnp.square(z - self.mean) / jnp.exp(self.log_var), axis=-1)

  def kl_per_dim(self) -> jax.Array:
    """KL(q || N(0, I)) of each dimension, (..., d)."""
    return -0.5 * (1 + self.log_var - jnp.square(self.mean) - jnp.exp(self.log_var))

  def kl_standard_normal(self) -> jax.Array:
    """KL(q || N(0, I)) = -0.5 sum(1 + log_var - mean^2 - exp(log_var)), per example (closed form)."""
    return -0.5 * jnp.sum(1 + self.log_var - jnp.square(self.mean) - jnp.exp(self.log_var), axis=-1)


@flax.struct.dataclass
class GaussianMixture:
  """sum_k softmax(logits)_k N(means_k, diag(exp(log_vars_k))): the VampPrior's mixture of posteriors of
  pseudo-inputs (Tomczak & Welling 2018), or a mixture fitted to training codes after the fact."""
  means: jax.Array  # (K, d)
  log_vars: jax.Array  # (K, d)
  logits: jax.Array  # (K,)

  @property
  def dim(self) -> int:
    return self.means.shape[-1]

  def log_prob(self, z: jax.Array) -> jax.Array:
    components = DiagonalGaussian(self.means, self.log_vars).log_prob(z[..., None, :])  # (..., K)
    return jax.nn.logsumexp(components + jax.nn.log_softmax(self.logits), axis=-1)

  def sample(self, key: jax.Array, num: int) -> jax.Array:
    which_key, noise_key = jax.random.split(key)
    k = jax.random.categorical(which_key, self.logits, shape=(num,))
    return DiagonalGaussian(self.means[k], self.log_vars[k]).sample(noise_key)


Prior = Union[StandardNormal, GaussianMixture]


def kl_divergence(posterior: DiagonalGaussian, prior: Prior, z: Optional[jax.Array] = None) -> jax.Array:
  """KL(q(z|x) || p(z)) per example: in closed form against N(0, I), else the one-sample estimate
  log q(z|x) - log p(z) at the posterior sample `z` (a mixture prior has no closed form)."""
  if isinstance(prior, StandardNormal):
    return posterior.kl_standard_normal()
  if z is None:
    raise ValueError("kl_divergence against a mixture prior needs the posterior sample z")
  return posterior.log_prob(z) - prior.log_prob(z)
