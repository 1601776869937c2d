"""Vector quantisation with an EMA codebook (van den Oord et al. 2017, appendix A.1; Razavi et al. 2019).

Each D-dimensional vector of the encoder's output snaps to its nearest of K codebook entries; the
decoder sees the entry, the encoder gets the decoder's gradient straight through (z_e + sg(z_q - z_e)).
The codebook is not trained by gradients: it is the model's state (`CodebookState`, carried in
`TrainState.model_state`), updated in the training forward pass as exponential moving averages of
the cluster sizes N_k and of the sums of the vectors assigned to each entry m_k, with e_k = m_k / N_k
(N Laplace-smoothed so no entry divides by zero). Entries whose average cluster size falls below
`restart_below` are dead: they restart at encoder outputs of the current batch (Dhariwal et al. 2020,
Jukebox), so the codebook keeps being used.
"""
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
from flax import nnx


class CodebookState(nnx.Variable):
  """A codebook statistic updated by moving averages, not by the optimiser."""


def squared_distances(z: jax.Array, codebook: jax.Array) -> jax.Array:
  """||z_i - e_k||^2 of (N, D) vectors to (K, D) entries, (N, K), by one matmul."""
  return (jnp.sum(jnp.square(z), axis=1, keepdims=True) - 2.0 * z @ codebook.T
          + jnp.sum(jnp.square(codebook), axis=1)[None, :])


def ema_update(count: jax.Array, total: jax.Array, z: jax.Array, onehot: jax.Array, decay: float,
               epsilon: float) -> Tuple[jax.Array, jax.Array, jax.Array]:
  """(N', m', e'): the moving averages after one batch of (N, D) vectors `z` assigned by `onehot` (N, K),
  and the codebook they give (Laplace-smoothed cluster sizes)."""
  count = decay * count + (1.0 - decay) * onehot.sum(axis=0)
  total = decay * total + (1.0 - decay) * onehot.T @ z
  n = count.sum()
  smoothed = (count + epsilon) / (n + count.shape[0] * epsilon) * n
  return count, total, total / smoothed[:, None]


class VectorQuantiser(nnx.Module):
  """`__call__(z_e (..., D), rng, train) -> (z_q straight-through, aux)` with aux "indices" (...,),
  "commitment" and "codebook_error" per example (mean over the example's values of (z_e - sg(z_q))^2
  and (sg(z_e) - z_q)^2: the commitment loss and VQ-VAE's codebook loss)."""

  def __init__(self, num_codes: int = 512, dim: int = 64, decay: float = 0.99, epsilon: float = 1e-5,
               restart_below: float = 1e-3, *, rngs: nnx.Rngs):
    self.num_codes, self.dim, self.decay, self.epsilon, self.restart_below = num_codes, dim, decay, epsilon, restart_below
    init = jax.random.uniform(rngs.params(), (num_codes, dim), minval=-1.0, maxval=1.0) / num_codes ** 0.5
    self.codebook = CodebookState(init)
    self.count = CodebookState(jnp.ones((num_codes,)))
    self.total = CodebookState(init)

  def __call__(self, z_e: jax.Array, *, rng=None, train: bool = False) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    batch, shape = z_e.shape[0], z_e.shape
    flat = z_e.reshape(-1, self.dim)
    codebook = self.codebook[...]
    indices = jnp.argmin(squared_distances(flat, codebook), axis=1)
    z_q = codebook[indices]
    if train:
      onehot = jax.nn.one_hot(indices, self.num_codes, dtype=flat.dtype)
      count, total, updated = ema_update(self.count[...], self.total[...], jax.lax.stop_gradient(flat), onehot,
                                         self.decay, self.epsilon)
      if rng is not None and self.restart_below > 0:
        count, total, updated = self._restart_dead(count, total, updated, jax.lax.stop_gradient(flat), rng)
      self.count[...], self.total[...], self.codebook[...] = count, total, updated
    z_q = z_q.reshape(shape)
    per_example = lambda v: v.reshape(batch, -1).mean(axis=1)
    aux = {"indices": indices.reshape(shape[:-1]),
           "commitment": per_example(jnp.square(z_e - jax.lax.stop_gradient(z_q))),
           "codebook_error": per_example(jnp.square(jax.lax.stop_gradient(z_e) - z_q))}
    return z_e + jax.lax.stop_gradient(z_q - z_e), aux

  def _restart_dead(self, count, total, codebook, flat, rng):
    """Entries whose average cluster size fell below `restart_below` take random vectors of this batch."""
    dead = count < self.restart_below
    picked = flat[jax.random.randint(rng, (self.num_codes,), 0, flat.shape[0])]
    codebook = jnp.where(dead[:, None], picked, codebook)
    return jnp.where(dead, 1.0, count), jnp.where(dead[:, None], picked, total), codebook
