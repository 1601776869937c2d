"""Divergences between code distributions, estimated on a minibatch: pure functions of arrays.

- `mmd`: the maximum mean discrepancy between two samples (unbiased U-statistic) with an inverse
  multiquadratic or Gaussian (RBF) kernel (Gretton et al. 2012; WAE-MMD, Tolstikhin et al. 2018;
  InfoVAE, Zhao et al. 2017).
- `tc_decomposition`: β-TCVAE's split of the KL term into index-code mutual information, total
  correlation and dimension-wise KL, with the aggregate posterior q(z) estimated by minibatch-weighted
  (MWS) or minibatch-stratified (MSS) sampling (Chen et al. 2018, section 4.1 and appendix C).
- `dip_covariance`, `dip_penalties`: DIP-VAE's moment-matching penalties on the covariance of the
  aggregate posterior (Kumar et al. 2018).

Masks (1 for real examples, 0 for evaluation padding) leave the padded rows out wherever a statistic
runs over the batch.
"""
import math
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp

KERNELS = ("imq", "rbf")
TC_ESTIMATORS = ("mws", "mss")
DIP_KINDS = ("i", "ii")
# Tolstikhin et al.'s WAE code sums the IMQ kernel over these multiples of C = 2 d sigma^2.
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_LOG_2PI = math.log(2 * math.pi)


def squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """||x_i - y_j||^2 of (n, d) and (m, d) samples, (n, m), clipped at 0 (the matmul form can dip below)."""
  d2 = jnp.sum(jnp.square(x), 1)[:, None] + jnp.sum(jnp.square(y), 1)[None, :] - 2.0 * x @ y.T
  return jnp.maximum(d2, 0.0)


def kernel_matrix(d2: jax.Array, dim: int, kernel: str, scales: Sequence[float], bandwidth) -> jax.Array:
  """k(x_i, y_j) from squared distances, summed over `scales` of C = 2 dim bandwidth^2:
  IMQ C / (C + ||x - y||^2), RBF exp(-||x - y||^2 / C)."""
  base = 2.0 * dim * jnp.square(jnp.asarray(bandwidth, d2.dtype))
  total = jnp.zeros_like(d2)
  for scale in scales:
    c = base * scale
    total = total + (c / (c + d2) if kernel == "imq" else jnp.exp(-d2 / c))
  return total


def mmd(x: jax.Array, y: jax.Array, kernel: str = "imq", scales: Sequence[float] = (1.0,), bandwidth=1.0,
        mask: Optional[jax.Array] = None) -> jax.Array:
  """Unbiased MMD^2 between samples x (n, d) and y (m, d): the off-diagonal means of k(x, x') and k(y, y')
  minus twice the mean of k(x, y). Only x's real rows (`mask`) count. About 0 (it can dip below) when both
  come from one distribution."""
  if kernel not in KERNELS:
    raise ValueError(f"kernel={kernel!r}: choose one of {', '.join(KERNELS)}")
  dim = x.shape[1]
  wx = jnp.ones(x.shape[0], x.dtype) if mask is None else mask.astype(x.dtype)
  wy = jnp.ones(y.shape[0], y.dtype)

  def mean_off_diagonal(k, w):
    pair = w[:, None] * w[None, :] * (1.0 - jnp.eye(k.shape[0], dtype=k.dtype))
    return jnp.sum(k * pair) / jnp.maximum(jnp.sum(pair), 1.0)

  kxx = kernel_matrix(squared_distances(x, x), dim, kernel, scales, bandwidth)
  kyy = kernel_matrix(squared_distances(y, y), dim, kernel, scales, bandwidth)
  kxy = kernel_matrix(squared_distances(x, y), dim, kernel, scales, bandwidth)
  cross = jnp.sum(wx[:, None] * kxy) / jnp.maximum(jnp.sum(wx) * y.shape[0], 1.0)
  return mean_off_diagonal(kxx, wx) + mean_off_diagonal(kyy, wy) - 2.0 * cross


def log_density_matrix(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log q(z_ik | x_j) of every sample i under every example j's diagonal Gaussian, per dimension k:
  (B, B, d) from (B, d) samples and posterior parameters."""
  diff = z[:, None, :] - mean[None, :, :]
  return -0.5 * (_LOG_2PI + log_var[None] + jnp.square(diff) * jnp.exp(-log_var[None]))


def mss_log_weights(batch: int, dataset_size: int) -> jax.Array:
  """(B, B) log weights of minibatch-stratified sampling (Chen et al. 2018, appendix C.2): sample i's own
  example weighs 1/N, one stratum example (the next, cyclically) (N - M) / (N M) and the other B - 2
  examples 1/M, with M = B - 1; each row sums to 1. (Chen et al.'s released code strides its flattened
  matrix by B instead of B + 1, which fills the first two columns instead of the diagonal; this is the
  estimator the appendix describes.)"""
  n, m = float(dataset_size), float(max(batch - 1, 1))
  eye = jnp.eye(batch)
  stratum = jnp.roll(eye, 1, axis=1)  # (i, i + 1 mod B)
  weights = eye / n + stratum * (n - m) / (n * m) + (1.0 - eye - stratum) / m
  return jnp.log(weights)


def aggregate_log_densities(matrix: jax.Array, dataset_size: int, estimator: str = "mws",
                            mask: Optional[jax.Array] = None):
  """(log q(z_i), log prod_k q(z_ik)), each (B,), from `log_density_matrix`'s output: q(z) = (1/N) sum_n
  q(z|x_n) estimated from the minibatch by MWS (weights 1 / (N M)) or MSS (`mss_log_weights`)."""
  if estimator not in TC_ESTIMATORS:
    raise ValueError(f"estimator={estimator!r}: choose one of {', '.join(TC_ESTIMATORS)}")
  if dataset_size <= 0:
    raise ValueError("the total-correlation estimators need the data set's size (LossInputs.dataset_size)")
  batch = matrix.shape[0]
  real = jnp.zeros((batch,), matrix.dtype) if mask is None else jnp.where(mask > 0, 0.0, -jnp.inf)
  if estimator == "mws":
    count = batch if mask is None else jnp.maximum(mask.sum(), 1.0)
    log_w = real[None, :] - jnp.log(dataset_size * jnp.asarray(count, matrix.dtype))
    log_w = jnp.broadcast_to(log_w, (batch, batch))
  else:  # Padded rows (the last evaluation batch) are dropped, leaving those rows' weights short of 1.
    log_w = mss_log_weights(batch, dataset_size) + real[None, :]
  log_qz = jax.nn.logsumexp(log_w + matrix.sum(axis=2), axis=1)
  log_prod_qz = jax.nn.logsumexp(log_w[:, :, None] + matrix, axis=1).sum(axis=1)
  return log_qz, log_prod_qz


def tc_decomposition(z: jax.Array, mean: jax.Array, log_var: jax.Array, log_pz: jax.Array, dataset_size: int,
                     estimator: str = "mws", mask: Optional[jax.Array] = None) -> Dict[str, jax.Array]:
  """β-TCVAE's parts of each sample's KL estimate log q(z|x) - log p(z) (Chen et al. 2018, eq. 2):
  "mi" = log q(z|x) - log q(z), "tc" = log q(z) - log prod_k q(z_k), "dwkl" = log prod_k q(z_k) - log p(z).
  They sum to log q(z|x) - log p(z) exactly; `log_pz` is the prior's density of each sample (B,)."""
  matrix = log_density_matrix(z, mean, log_var)
  log_qzx = jnp.diagonal(matrix, axis1=0, axis2=1).sum(axis=0)
  log_qz, log_prod_qz = aggregate_log_densities(matrix, dataset_size, estimator, mask)
  return {"mi": log_qzx - log_qz, "tc": log_qz - log_prod_qz, "dwkl": log_prod_qz - log_pz}


def dip_covariance(mean: jax.Array, log_var: jax.Array, kind: str = "i",
                   mask: Optional[jax.Array] = None) -> jax.Array:
  """(d, d) covariance DIP-VAE matches to the identity: of the posterior means, Cov[mu(x)] (DIP-VAE-I), or
  of the aggregate posterior, Cov[mu(x)] + E[diag(sigma^2(x))] (DIP-VAE-II); batch statistics."""
  if kind not in DIP_KINDS:
    raise ValueError(f"kind={kind!r}: choose one of {', '.join(DIP_KINDS)}")
  w = jnp.ones(mean.shape[0], mean.dtype) if mask is None else mask.astype(mean.dtype)
  n = jnp.maximum(w.sum(), 1.0)
  centred = mean - jnp.sum(w[:, None] * mean, 0) / n
  cov = (w[:, None] * centred).T @ centred / n
  if kind == "ii":
    cov = cov + jnp.diag(jnp.sum(w[:, None] * jnp.exp(log_var), 0) / n)
  return cov


def dip_penalties(cov: jax.Array):
  """(sum_{i != j} Cov_ij^2, sum_i (Cov_ii - 1)^2): DIP-VAE's off-diagonal and diagonal penalties, each 0
  for the identity (Kumar et al. 2018, eq. 6, weighted lambda_od and lambda_d)."""
  diag = jnp.diagonal(cov)
  off = jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(diag))
  return off, jnp.sum(jnp.square(diag - 1.0))
