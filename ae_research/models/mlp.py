"""Fully connected autoencoders (SPEC 1, 2, 3, 3c, 4), optionally with tied weights."""
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models.base import Autoencoder, get_activation, kernel_init
from ae_research.models.capabilities import Filters


def dense_stack(sizes: Sequence[int], init: str, rngs: nnx.Rngs) -> nnx.List:
  """Linear layers sizes[0] -> sizes[1] -> ... -> sizes[-1]."""
  init_fn = kernel_init(init)
  return nnx.List([nnx.Linear(a, b, kernel_init=init_fn, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])


def apply_stack(layers, h: jax.Array, hidden_activation: str, last_activation: str = "linear") -> jax.Array:
  for i, layer in enumerate(layers):
    h = get_activation(last_activation if i == len(layers) - 1 else hidden_activation)(layer(h))
  return h


def check_sizes(latent_dim: int, hidden: Sequence[int]) -> None:
  if latent_dim <= 0 or any(h <= 0 for h in hidden):
    raise ConfigError(f"model: latent_dim and hidden sizes must be positive, got {latent_dim}, {list(hidden)}")


class MLPAutoencoder(Autoencoder, Filters):
  """Encoder Dense(hidden[0]) -> ... -> Dense(latent_dim); the decoder mirrors it.

  Images are flattened on the way in and reshaped to `output_shape` on the way out.
  `tied=True` (SPEC 2) makes each decoder weight the transpose of the mirrored encoder
  weight (one parameter array, two uses) with its own decoder bias.
  """

  def __init__(self, input_shape: Sequence[int], latent_dim: int = 2, hidden: Sequence[int] = (128, 64, 10),
               decoder_hidden: Optional[Sequence[int]] = None, activation: str = "relu",
               code_activation: str = "linear", output_activation: str = "tanh", init: str = "lecun_normal",
               output_shape: Optional[Sequence[int]] = None, tied: bool = False, *, rngs: nnx.Rngs):
    self.input_shape = tuple(input_shape)
    self.output_shape = tuple(output_shape or input_shape)
    check_sizes(latent_dim, hidden)
    for name in (activation, code_activation, output_activation):
      get_activation(name)  # A typo fails here, at build time, with the list of choices.
    self.activation, self.code_activation, self.output_activation = activation, code_activation, output_activation
    mirrored = tuple(reversed(tuple(hidden)))
    decoder_hidden = mirrored if decoder_hidden is None else tuple(decoder_hidden)
    self.tied = tied
    if tied and (decoder_hidden != mirrored or self.output_shape != self.input_shape):
      raise ConfigError("model.tied=true needs a mirrored decoder: leave decoder_hidden and output_shape null")
    enc_sizes = (math.prod(self.input_shape), *hidden, latent_dim)
    self.encoder = dense_stack(enc_sizes, init, rngs)
    if tied:
      self.decoder_bias = nnx.List([nnx.Param(jnp.zeros((n,), jnp.float32)) for n in reversed(enc_sizes[:-1])])
    else:
      self.decoder = dense_stack((latent_dim, *decoder_hidden, math.prod(self.output_shape)), init, rngs)

  def encode(self, x: jax.Array) -> jax.Array:
    return apply_stack(self.encoder, x.reshape(x.shape[0], -1), self.activation, self.code_activation)

  def first_layer_filters(self) -> jax.Array:
    return self.encoder[0].kernel[...]

  def sigmoid_code_kernel(self):
    return self.encoder[0].kernel[...] if len(self.encoder) == 1 and self.code_activation == "sigmoid" else None

  def decode_logits(self, code: jax.Array) -> jax.Array:
    if not self.tied:
      out = apply_stack(self.decoder, code, self.activation)
    else:
      out, layers = code, list(reversed(self.encoder))
      for i, (layer, bias) in enumerate(zip(layers, self.decoder_bias)):
        out = out @ layer.kernel[...].T + bias[...]
        out = out if i == len(layers) - 1 else get_activation(self.activation)(out)
    return out.reshape(code.shape[0], *self.output_shape)
