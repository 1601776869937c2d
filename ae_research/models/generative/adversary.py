"""FactorVAE's discriminator (Kim & Mnih 2018, "Disentangling by factorising", appendix A: an MLP of 6
layers of 1000 leaky-ReLU units with two logits, for every data set), and what it computes in the
composed model's forward pass.

The discriminator D tells codes z ~ q(z) from codes with every dimension permuted independently across
the batch (samples of prod_j q(z_j)). One scalar loss trains both players: the VAE's total-correlation
estimate reads D(z) with D's parameters stop-gradiented (its gradient reaches the encoder only), the
discriminator's cross-entropy reads D(sg(z)) and D(sg(permuted z)) (its gradient reaches D only); D's
parameters get their own optimiser through `param_groups.adversary` (Adam, lr 1e-4, betas 0.5, 0.9 in
the paper). As in disentanglement_lib, the permuted codes come from the same batch.
"""
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models.capabilities import Capability


class Adversary(Capability):
  """A FactorVAE discriminator: aux "tc_estimate" and "discriminator_loss" per example."""
  phrase = "a discriminator (model.adversary)"


def permute_dims(z: jax.Array, key: jax.Array) -> jax.Array:
  """Each column of z (B, d) shuffled across the batch by its own permutation (Kim & Mnih, algorithm 1)."""
  keys = jax.random.split(key, z.shape[1])
  return jax.vmap(lambda k, column: jax.random.permutation(k, column), in_axes=(0, 1), out_axes=1)(keys, z)


class FactorDiscriminator(nnx.Module):
  name = "factor_mlp"

  def __init__(self, latent_dim: int, hidden: Sequence[int] = (1000,) * 6, negative_slope: float = 0.2,
               *, rngs: nnx.Rngs):
    if not hidden or any(h <= 0 for h in hidden):
      raise ConfigError(f"model.adversary.hidden={list(hidden)}: give one or more positive layer sizes")
    sizes = (latent_dim, *hidden, 2)
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
    self.negative_slope = negative_slope  # TensorFlow's leaky_relu default, which disentanglement_lib uses.

  def logits(self, z: jax.Array, frozen: bool = False) -> jax.Array:
    """(B, 2) logits of "from q(z)" and "from prod_j q(z_j)"; `frozen`: no gradient to D's parameters."""
    hold = jax.lax.stop_gradient if frozen else (lambda v: v)
    h = z
    for i, layer in enumerate(self.layers):
      h = h @ hold(layer.kernel[...]) + hold(layer.bias[...])
      h = h if i == len(self.layers) - 1 else jax.nn.leaky_relu(h, self.negative_slope)
    return h

  def outputs(self, z: jax.Array, key: jax.Array) -> Dict[str, jax.Array]:
    """aux "tc_estimate" = log D(z) / (1 - D(z)) (the density-ratio estimate of the total correlation, per
    example; gradient to the encoder) and "discriminator_loss" = the mean of the two cross-entropies
    (gradient to the discriminator)."""
    frozen = self.logits(z, frozen=True)
    held = jax.lax.stop_gradient(z)
    real, permuted = self.logits(held), self.logits(permute_dims(held, key))
    ce = optax.softmax_cross_entropy_with_integer_labels
    zeros = jnp.zeros(z.shape[0], jnp.int32)
    return {"tc_estimate": frozen[:, 0] - frozen[:, 1],
            "discriminator_loss": 0.5 * (ce(real, zeros) + ce(permuted, zeros + 1))}
