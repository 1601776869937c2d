"""A discrete-latent MLP autoencoder (VQ-VAE, van den Oord et al. 2017, with an MLP instead of convolutions).

The encoder maps x to `tokens` vectors of dimension `dim`; each is replaced by its nearest entry of an
EMA codebook (`quantiser.VectorQuantiser`, the model's state) and the decoder reconstructs x from the
entries. aux holds "code" (the quantised vectors, flattened), "indices", "commitment" and
"codebook_error" for the VQ loss terms (`losses/quantisation.py`).
"""
import math
from typing import Optional, Sequence

import jax
from flax import nnx

from ae_research.models.base import Autoencoder, get_activation
from ae_research.models.capabilities import Filters, Quantised
from ae_research.models.mlp import apply_stack, check_sizes, dense_stack
from ae_research.models.quantiser import VectorQuantiser


class VQMLPAutoencoder(Autoencoder, Quantised, Filters):

  def __init__(self, input_shape: Sequence[int], tokens: int = 8, dim: int = 4, num_codes: int = 64,
               hidden: Sequence[int] = (256,), activation: str = "relu", output_activation: str = "sigmoid",
               init: str = "lecun_normal", decay: float = 0.99, restart_below: float = 1e-3,
               output_shape: Optional[Sequence[int]] = None, *, rngs: nnx.Rngs):
    self.input_shape = tuple(input_shape)
    self.output_shape = tuple(output_shape or input_shape)
    check_sizes(tokens * dim, hidden)
    get_activation(activation), get_activation(output_activation)  # pylint: disable=expression-not-assigned
    self.activation, self.output_activation, self.tokens, self.dim = activation, output_activation, tokens, dim
    self.encoder = dense_stack((math.prod(self.input_shape), *hidden, tokens * dim), init, rngs)
    self.quantiser = VectorQuantiser(num_codes, dim, decay=decay, restart_below=restart_below, rngs=rngs)
    self.decoder = dense_stack((tokens * dim, *reversed(tuple(hidden)), math.prod(self.output_shape)), init, rngs)

  def _encode_continuous(self, x: jax.Array) -> jax.Array:
    return apply_stack(self.encoder, x.reshape(x.shape[0], -1), self.activation).reshape(-1, self.tokens, self.dim)

  def encode(self, x: jax.Array) -> jax.Array:
    """The quantised code, flattened: (B, tokens * dim)."""
    z_q, _ = self.quantiser(self._encode_continuous(x))
    return z_q.reshape(x.shape[0], -1)

  def decode_logits(self, code: jax.Array) -> jax.Array:
    return apply_stack(self.decoder, code, self.activation).reshape(code.shape[0], *self.output_shape)

  def codebook(self) -> jax.Array:
    return self.quantiser.codebook[...]

  def first_layer_filters(self) -> jax.Array:
    return self.encoder[0].kernel[...]

  def __call__(self, x, *, rng=None, train=False):
    z_q, vq = self.quantiser(self._encode_continuous(x), rng=rng, train=train)
    code = z_q.reshape(x.shape[0], -1)
    logits = self.decode_logits(code)
    return get_activation(self.output_activation)(logits), {"code": code, "logits": logits, **vq}
