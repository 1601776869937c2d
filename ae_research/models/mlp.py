"""Fully connected autoencoders (SPEC 1, 2, 3, 3c, 4)."""
import math
from typing import Optional, Sequence

import jax
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models.base import Autoencoder, get_activation, kernel_init


class MLPAutoencoder(Autoencoder):
  """Encoder Dense(hidden[0]) -> ... -> Dense(latent_dim); the decoder mirrors it.

  Images are flattened on the way in and reshaped to `output_shape` on the way out.
  """

  def __init__(self, input_shape: Sequence[int], latent_dim: int = 2, hidden: Sequence[int] = (128, 64, 10),
               decoder_hidden: Optional[Sequence[int]] = None, activation: str = "relu",
               code_activation: str = "linear", output_activation: str = "tanh",
               init: str = "lecun_normal", output_shape: Optional[Sequence[int]] = None, *, rngs: nnx.Rngs):
    self.input_shape = tuple(input_shape)
    self.output_shape = tuple(output_shape or input_shape)
    if latent_dim <= 0 or any(h <= 0 for h in hidden):
      raise ConfigError(f"model: latent_dim and hidden sizes must be positive, got {latent_dim}, {list(hidden)}")
    for name in (activation, code_activation, output_activation):
      get_activation(name)  # A typo fails here, at build time, with the list of choices.
    self.activation, self.code_activation, self.output_activation = activation, code_activation, output_activation
    decoder_hidden = tuple(reversed(tuple(hidden))) if decoder_hidden is None else tuple(decoder_hidden)
    enc_sizes = (math.prod(self.input_shape), *hidden, latent_dim)
    dec_sizes = (latent_dim, *decoder_hidden, math.prod(self.output_shape))
    init_fn = kernel_init(init)
    self.encoder = nnx.List([nnx.Linear(a, b, kernel_init=init_fn, rngs=rngs)
                             for a, b in zip(enc_sizes[:-1], enc_sizes[1:])])
    self.decoder = nnx.List([nnx.Linear(a, b, kernel_init=init_fn, rngs=rngs)
                             for a, b in zip(dec_sizes[:-1], dec_sizes[1:])])

  def encode(self, x: jax.Array) -> jax.Array:
    h = x.reshape(x.shape[0], -1)
    for layer in self.encoder[:-1]:
      h = get_activation(self.activation)(layer(h))
    return get_activation(self.code_activation)(self.encoder[-1](h))

  def decode_logits(self, code: jax.Array) -> jax.Array:
    h = code
    for layer in self.decoder[:-1]:
      h = get_activation(self.activation)(layer(h))
    return self.decoder[-1](h).reshape(code.shape[0], *self.output_shape)
