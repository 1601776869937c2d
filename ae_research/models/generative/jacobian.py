"""The decoder's squared Jacobian norm ||d D(z) / d z||_F^2 per example: RAE's gradient-penalty
regulariser of the decoder (Ghosh et al. 2020, eq. 11, L_GP), computed in the model's forward pass
because loss terms see the model's outputs, not its decoder."""
from typing import Callable

import jax
import jax.numpy as jnp


def decoder_jacobian_sq_norm(decode: Callable[[jax.Array], jax.Array], z: jax.Array) -> jax.Array:
  """sum_k ||J(z) e_k||^2 over the d code directions e_k, per example: d forward-mode passes, each over the
  whole batch (an example's decoding depends on its own code only). The codes are stop-gradiented, so the
  penalty shapes the decoder, not the encoder."""
  z = jax.lax.stop_gradient(z)
  flat = lambda c: decode(c).reshape(c.shape[0], -1)
  directions = jnp.eye(z.shape[1], dtype=z.dtype)

  def along(direction):
    return jax.jvp(flat, (z,), (jnp.broadcast_to(direction, z.shape),))[1]

  return jnp.sum(jnp.square(jax.vmap(along)(directions)), axis=(0, 2))
