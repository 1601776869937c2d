"""Convolutional autoencoder (Masci et al. 2011; SPEC 5), including grey -> colour.

Encoder: [Conv(k x k, same) -> activation -> MaxPool(p)] per entry of `channels`.
Decoder: [Upsample(p) (nearest, or a learnt stride-p transposed conv) -> Conv -> activation]
per pooling stage, then a Conv to the output channels. Output channels (and size) may
differ from the input's: `output_shape=[48, 48, 3]` on grey input is the colouriser.

`conv_impl` says how the layers are computed, never what: `xla` calls the flax modules (lax
convolutions, reduce-window pooling, upsampled maps); `auto` computes the same functions with
`models.conv_ops` (faster on XLA:CPU, issue 27; lax elsewhere). Parameters are the same either way.

Note on SPEC 5's Keras seed: its second conv reads the input image instead of the first
pooled map (a bug), so only two poolings take effect there. This module builds the
intended symmetric network (three poolings, 6x6 bottleneck for 48x48 input).
"""
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models import conv_ops
from ae_research.models.base import Autoencoder, get_activation, kernel_init
from ae_research.models.capabilities import Filters

UPSAMPLING = ("nearest", "transpose")
CONV_IMPLS = ("auto", "xla")


def upsample_nearest(h: jax.Array, factor: int) -> jax.Array:
  return jnp.repeat(jnp.repeat(h, factor, axis=1), factor, axis=2)


def center_crop(h: jax.Array, height: int, width: int) -> jax.Array:
  top, left = (h.shape[1] - height) // 2, (h.shape[2] - width) // 2
  return h[:, top:top + height, left:left + width]


class ConvAutoencoder(Autoencoder, Filters):

  def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (16, 32, 64), kernel_size: int = 3,
               pool: int = 2, decoder_channels: Optional[Sequence[int]] = None, activation: str = "relu",
               output_activation: str = "sigmoid", upsample: str = "nearest", init: str = "lecun_normal",
               output_shape: Optional[Sequence[int]] = None, conv_impl: str = "auto", *, rngs: nnx.Rngs):
    if len(input_shape) != 3:
      raise ConfigError(f"model: the conv autoencoder needs (height, width, channels) images, got {tuple(input_shape)}")
    self.input_shape = tuple(input_shape)
    self.output_shape = tuple(output_shape or input_shape)
    channels = tuple(channels)
    decoder_channels = (tuple(reversed(channels[:-1])) + channels[:1]) if decoder_channels is None \
        else tuple(decoder_channels)
    if not channels or any(c <= 0 for c in channels + decoder_channels) or kernel_size <= 0 or pool <= 0:
      raise ConfigError(f"model: channels, kernel_size and pool must be positive, got {channels}, {kernel_size}, {pool}")
    if len(decoder_channels) != len(channels):
      raise ConfigError(f"model.decoder_channels: need one entry per pooling stage ({len(channels)}), "
                        f"got {list(decoder_channels)}")
    if upsample not in UPSAMPLING:
      raise ConfigError(f"model.upsample={upsample!r}: choose one of {', '.join(UPSAMPLING)}")
    if conv_impl not in CONV_IMPLS:
      raise ConfigError(f"model.conv_impl={conv_impl!r}: choose one of {', '.join(CONV_IMPLS)}")
    decoded = [math.ceil(s / pool ** len(channels)) * pool ** len(channels) for s in self.input_shape[:2]]
    if decoded[0] < self.output_shape[0] or decoded[1] < self.output_shape[1]:
      raise ConfigError(f"model: the decoder produces {decoded} images, smaller than output_shape "
                        f"{self.output_shape[:2]}; use fewer pooling stages or a smaller output")
    get_activation(activation), get_activation(output_activation)  # pylint: disable=expression-not-assigned
    self.activation, self.output_activation, self.pool, self.upsample = activation, output_activation, pool, upsample
    self.conv_impl = conv_impl
    self.code_activation = activation  # The code is the last pooled activation map.
    init_fn, k = kernel_init(init), (kernel_size, kernel_size)
    ins = (self.input_shape[-1], *channels[:-1])
    self.encoder = nnx.List([nnx.Conv(a, b, k, padding="SAME", kernel_init=init_fn, rngs=rngs)
                             for a, b in zip(ins, channels)])
    dec_ins = (channels[-1], *decoder_channels[:-1])
    if upsample == "transpose":
      self.upsamplers = nnx.List([nnx.ConvTranspose(c, c, (pool, pool), strides=(pool, pool), kernel_init=init_fn,
                                                    rngs=rngs) for c in dec_ins])
    self.decoder = nnx.List([nnx.Conv(a, b, k, padding="SAME", kernel_init=init_fn, rngs=rngs)
                             for a, b in zip(dec_ins, decoder_channels)])
    self.head = nnx.Conv(decoder_channels[-1], self.output_shape[-1], k, padding="SAME", kernel_init=init_fn,
                         rngs=rngs)

  def encode(self, x: jax.Array) -> jax.Array:
    act, p, h = get_activation(self.activation), self.pool, x
    for conv in self.encoder:
      if self.conv_impl == "xla":
        h = nnx.max_pool(act(conv(h)), (p, p), strides=(p, p), padding="SAME")
      else:
        h = conv_ops.max_pool(act(conv_ops.apply_conv(conv, h)), (p, p), (p, p), "SAME")
    return h

  def first_layer_filters(self) -> jax.Array:
    return self.encoder[0].kernel[...]

  def decode_logits(self, code: jax.Array) -> jax.Array:
    act, h = get_activation(self.activation), code
    for i, conv in enumerate(self.decoder):
      if self.conv_impl == "xla":
        h = self.upsamplers[i](h) if self.upsample == "transpose" else upsample_nearest(h, self.pool)
        h = act(conv(h))
      elif self.upsample == "transpose":
        h = act(conv_ops.apply_conv(conv, conv_ops.apply_conv_transpose(self.upsamplers[i], h)))
      else:  # The nearest upsampling and the conv after it as one sub-pixel convolution of the small map.
        h = act(conv_ops.apply_upsample_conv(conv, h, self.pool))
    logits = self.head(h) if self.conv_impl == "xla" else conv_ops.apply_conv(self.head, h)
    return center_crop(logits, *self.output_shape[:2])
