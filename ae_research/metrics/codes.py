"""Statistics of a continuous code that need no ground truth (Burda et al. 2016; disentanglement_lib's
unsupervised_metrics.py)."""
import functools

import jax
import jax.numpy as jnp
from jax import lax


@functools.partial(jax.jit, static_argnames="threshold")
def _active_units(means, threshold: float):
  return jnp.sum(jnp.var(jnp.asarray(means, jnp.float32), axis=0) > threshold)


def active_units(means, threshold: float = 0.01) -> int:
  """Active units (Burda et al. 2016, "Importance Weighted Autoencoders", Sec. 5.2): the number of
  code dimensions whose variance over examples of the posterior mean E[z|x] exceeds `threshold`."""
  return int(_active_units(means, threshold))


@jax.jit
def _gaussian_total_correlation(codes):
  codes = jnp.asarray(codes, jnp.float32)
  centred = codes - codes.mean(axis=0)
  # Full float32 matmuls (GPUs default to TF32): log det is sensitive to small eigenvalues.
  cov = jnp.matmul(centred.T, centred, precision=lax.Precision.HIGHEST) / (codes.shape[0] - 1.0)
  return 0.5 * (jnp.sum(jnp.log(jnp.diag(cov))) - jnp.linalg.slogdet(cov)[1])


def gaussian_total_correlation(codes) -> float:
  """Total correlation of the Gaussian fitted to the codes (dlib unsupervised_metrics.py): the KL from
  N(mu, Sigma) to the product of its marginals, 0.5 * (sum log diag Sigma - log det Sigma), in nats."""
  return float(_gaussian_total_correlation(codes))
