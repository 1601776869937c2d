"""Log-likelihoods of data under decoder outputs, and reconstruction errors; per example.

Every function returns one value per example (shape (B,)): summed over the example's values for
log-likelihoods (nats), averaged for the errors, unless it says otherwise.
"""
import math

import jax
import jax.numpy as jnp
import optax

from ae_research.metrics.arrays import per_example


def bernoulli_nll_values(logits: jax.Array, x: jax.Array) -> jax.Array:
  """-log p(x | logits) of each value, (B, D): binary cross-entropy from logits (stable for any logit)."""
  return optax.sigmoid_binary_cross_entropy(per_example(logits), per_example(x))


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
  """log p(x | z) of a Bernoulli decoder with these logits, per example (x in [0, 1])."""
  return -bernoulli_nll_values(logits, x).sum(axis=1)


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_scale: jax.Array) -> jax.Array:
  """log N(x; mean, exp(log_scale)^2), per example; `log_scale` broadcasts to `mean` (a scalar: one sigma)."""
  log_scale = per_example(jnp.broadcast_to(log_scale, mean.shape))
  z = (per_example(x) - per_example(mean)) * jnp.exp(-log_scale)
  return jnp.sum(-0.5 * jnp.square(z) - log_scale - 0.5 * math.log(2 * math.pi), axis=1)


def discretised_logistic_log_prob(x: jax.Array, mean: jax.Array, log_scale: jax.Array, bins: int = 256,
                                  low: float = 0.0, high: float = 1.0) -> jax.Array:
  """log P(x) of a logistic discretised to `bins` levels on [low, high] (Salimans et al. 2017, PixelCNN++),
  per example. The end bins take the tails (x at `low` gets P(X < low + half a bin), and so on)."""
  log_scale = per_example(jnp.broadcast_to(log_scale, mean.shape))
  x, mean = per_example(x), per_example(mean)
  half = 0.5 * (high - low) / (bins - 1)
  inv = jnp.exp(-log_scale)
  upper, lower = inv * (x + half - mean), inv * (x - half - mean)
  cdf_upper, cdf_lower = jax.nn.sigmoid(upper), jax.nn.sigmoid(lower)
  log_mid = jnp.log(jnp.maximum(cdf_upper - cdf_lower, 1e-12))
  log_left = upper - jax.nn.softplus(upper)  # log sigmoid(upper): P(X < x + half) at the lowest level.
  log_right = -jax.nn.softplus(lower)  # log (1 - sigmoid(lower)) at the highest level.
  eps = 1e-3 * half
  values = jnp.where(x < low + eps, log_left, jnp.where(x > high - eps, log_right, log_mid))
  return values.sum(axis=1)


def squared_error_values(recon: jax.Array, target: jax.Array) -> jax.Array:
  """(recon - target)^2 of each value, (B, D)."""
  return jnp.square(per_example(recon) - per_example(target))


def mse(recon: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error over each example's values."""
  return squared_error_values(recon, target).mean(axis=1)


def psnr(mse_values: jax.Array, value_range: float) -> jax.Array:
  """Peak signal-to-noise ratio (dB) from MSE, for data spanning `value_range`."""
  return 10.0 * jnp.log10(value_range ** 2 / jnp.maximum(mse_values, 1e-12))


def bits_per_dim(nll_nats: jax.Array, dims: int) -> jax.Array:
  """A negative log-likelihood in nats per example as bits per data dimension."""
  return nll_nats / (dims * math.log(2.0))
