"""Variational bounds on log p(x), per example (nats)."""
import math

import jax


def elbo(log_px: jax.Array, kl: jax.Array) -> jax.Array:
  """E_q[log p(x|z)] - KL(q(z|x) || p(z)) from its two parts (a one-sample estimate of the first)."""
  return log_px - kl


def log_importance_weights(log_px: jax.Array, log_pz: jax.Array, log_qz: jax.Array) -> jax.Array:
  """log w = log p(x|z) + log p(z) - log q(z|x), elementwise over samples."""
  return log_px + log_pz - log_qz


def iwae_bound(log_weights: jax.Array, axis: int = 0) -> jax.Array:
  """log (1/K) sum_k w_k over K importance samples on `axis` (Burda et al. 2016): a lower bound on log p(x)
  that equals the ELBO for K = 1 and does not decrease (in expectation) with K."""
  return jax.nn.logsumexp(log_weights, axis=axis) - math.log(log_weights.shape[axis])

