"""Encoder/decoder backbones of the composed generative autoencoder: the MLP and disentanglement_lib's
convolutional net (Locatello et al. 2019, after Burgess et al. 2018 / Higgins et al. 2017); pythae's
benchmark ConvNet and ResNet are in `benchmark_nets.py`.

An encoder maps images x (B, H, W, C) to features (B, F) and says F in `features`; a decoder maps codes
(B, d) to the decoder output (B, *output_shape), whose channels are the data's times the likelihood's
parameters per pixel. Both take `train` (batch-norm statistics). Decoders get the built encoder, so a
decoder left without sizes mirrors it. A backbone that cannot take the data's shape says so in one line.
Conv backbones take `conv_impl`: xla (the flax modules) or auto (`models.conv_ops`, the same function;
faster on XLA:CPU: 1.7-1.9x for disentanglement_lib's net, its config's default), as ConvAutoencoder does.
"""
import math
from typing import Optional, Sequence, Tuple

import jax
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models import conv_ops
from ae_research.models.base import get_activation
from ae_research.models.conv import CONV_IMPLS, center_crop
from ae_research.models.mlp import apply_stack, dense_stack


def shape_text(shape: Sequence[int]) -> str:
  return "x".join(str(s) for s in shape)


def check_image(backbone: str, shape: Sequence[int], sizes: Sequence[int] = (), min_size: int = 1) -> None:
  """The one-line error for a backbone that cannot take `shape`: images (H, W, C), square ones of `sizes`
  when given, at least `min_size` pixels a side."""
  ok = len(shape) == 3 and min(shape[:2]) >= min_size and (not sizes or (shape[0] == shape[1] and shape[0] in sizes))
  if not ok:
    named = [f"{s}x{s}" for s in sizes]
    takes = (", ".join(named[:-1]) + " or " + named[-1] + " images" if len(named) > 1 else
             f"{named[0]} images" if named else f"images of at least {min_size}x{min_size} pixels")
    raise ConfigError(f"model: backbone {backbone} cannot take {shape_text(shape)} inputs; it takes {takes} "
                      "(choose another model/backbone)")


def check_positive(backbone: str, **sizes) -> None:
  for key, value in sizes.items():
    values = value if isinstance(value, (tuple, list)) else (value,)
    if any(v <= 0 for v in values):
      raise ConfigError(f"model: backbone {backbone}: {key} must be positive, got {value}")


def check_conv_impl(conv_impl: str) -> str:
  if conv_impl not in CONV_IMPLS:
    raise ConfigError(f"model: conv_impl={conv_impl!r}: choose one of {', '.join(CONV_IMPLS)}")
  return conv_impl


def torch_conv(c_in: int, c_out: int, kernel: int, stride: int, padding: int, rngs: nnx.Rngs) -> nnx.Conv:
  """PyTorch's Conv2d(c_in, c_out, kernel, stride, padding) as an NHWC flax conv (same output sizes)."""
  return nnx.Conv(c_in, c_out, (kernel, kernel), strides=(stride, stride), padding=((padding, padding),) * 2,
                  rngs=rngs)


def torch_conv_transpose(c_in: int, c_out: int, kernel: int, stride: int, padding: int, output_padding: int,
                         rngs: nnx.Rngs) -> nnx.ConvTranspose:
  """PyTorch's ConvTranspose2d(..., padding, output_padding) as a flax transposed conv: output size
  (n - 1) stride - 2 padding + kernel + output_padding (flax pads the dilated input by k - 1 - p)."""
  low = kernel - 1 - padding
  return nnx.ConvTranspose(c_in, c_out, (kernel, kernel), strides=(stride, stride),
                           padding=((low, low + output_padding),) * 2, rngs=rngs)


class MLPEncoder(nnx.Module):
  """Dense(hidden[0]) -> ... -> Dense(hidden[-1]) on the flattened image (the features: the last hidden
  layer's activations; no hidden layers: the pixels themselves)."""
  name = "mlp"

  def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (512, 256), activation: str = "relu",
               init: str = "lecun_normal", *, rngs: nnx.Rngs):
    check_positive(self.name, hidden=tuple(hidden))
    get_activation(activation)
    self.hidden, self.activation = tuple(hidden), activation
    self.layers = dense_stack((math.prod(input_shape), *self.hidden), init, rngs)
    self.features = self.hidden[-1] if self.hidden else math.prod(input_shape)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = x.reshape(x.shape[0], -1)
    return apply_stack(self.layers, h, self.activation, self.activation) if len(self.layers) else h

  def first_layer_filters(self) -> Optional[jax.Array]:
    return self.layers[0].kernel[...] if len(self.layers) else None


class MLPDecoder(nnx.Module):
  """Dense layers from the code to the output, reshaped; `hidden` null mirrors an MLP encoder's."""
  name = "mlp"

  def __init__(self, latent_dim: int, output_shape: Sequence[int], encoder=None,
               hidden: Optional[Sequence[int]] = None, activation: str = "relu", init: str = "lecun_normal",
               *, rngs: nnx.Rngs):
    if hidden is None:
      if not isinstance(encoder, MLPEncoder):
        raise ConfigError("model.decoder.hidden: an MLP decoder mirrors only an MLP encoder; give its sizes")
      hidden = tuple(reversed(encoder.hidden))
    check_positive(self.name, hidden=tuple(hidden))
    get_activation(activation)
    self.output_shape, self.activation = tuple(output_shape), activation
    self.layers = dense_stack((latent_dim, *hidden, math.prod(self.output_shape)), init, rngs)

  def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
    del train
    return apply_stack(self.layers, code, self.activation).reshape(code.shape[0], *self.output_shape)


class LocatelloConvEncoder(nnx.Module):
  """disentanglement_lib's `conv_encoder` (beta-VAE paper, table 1, row 3): Conv 32 4x4, 32 4x4, 64 2x2,
  64 2x2, each stride 2, "same" padding, ReLU; flattened, Dense 256 ReLU. Built for 64x64; any image of
  at least 16x16 pixels works (the four stride-2 layers then leave at least 1x1 maps)."""
  name = "locatello_conv"

  def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 32, 64, 64),
               kernel_sizes: Sequence[int] = (4, 4, 2, 2), dense: int = 256, conv_impl: str = "xla", *,
               rngs: nnx.Rngs):
    check_image(self.name, input_shape, min_size=16)
    self.conv_impl = check_conv_impl(conv_impl)
    check_positive(self.name, channels=tuple(channels), kernel_sizes=tuple(kernel_sizes), dense=dense)
    if len(channels) != len(kernel_sizes):
      raise ConfigError(f"model.encoder: one kernel size per conv layer: {list(channels)} vs {list(kernel_sizes)}")
    ins = (input_shape[-1], *channels[:-1])
    self.convs = nnx.List([nnx.Conv(a, b, (k, k), strides=(2, 2), padding="SAME", rngs=rngs)
                           for a, b, k in zip(ins, channels, kernel_sizes)])
    side = lambda n: math.ceil(n / 2 ** len(channels))
    self.dense = nnx.Linear(side(input_shape[0]) * side(input_shape[1]) * channels[-1], dense, rngs=rngs)
    self.features = dense

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = x
    for conv in self.convs:
      h = jax.nn.relu(conv_ops.apply_conv(conv, h, self.conv_impl))
    return jax.nn.relu(self.dense(h.reshape(h.shape[0], -1)))

  def first_layer_filters(self) -> jax.Array:
    return self.convs[0].kernel[...]


class LocatelloConvDecoder(nnx.Module):
  """disentanglement_lib's `deconv_decoder`: Dense 256 ReLU, Dense to a (H/16, W/16, 64) map ReLU (4x4x64
  for 64x64 images), transposed convs 64, 32, 32 (4x4, stride 2, ReLU) and one to the output channels;
  sizes that are not multiples of 16 are decoded to the next multiple and centre-cropped."""
  name = "locatello_conv"

  def __init__(self, latent_dim: int, output_shape: Sequence[int], encoder=None,
               channels: Sequence[int] = (64, 32, 32), kernel_size: int = 4, dense: int = 256,
               conv_impl: Optional[str] = None, *, rngs: nnx.Rngs):
    check_image(self.name, output_shape, min_size=16)
    self.conv_impl = check_conv_impl(getattr(encoder, "conv_impl", "xla") if conv_impl is None else conv_impl)
    check_positive(self.name, channels=tuple(channels), kernel_size=kernel_size, dense=dense)
    self.output_shape = tuple(output_shape)
    ups = len(channels) + 1
    self.start: Tuple[int, int, int] = (math.ceil(output_shape[0] / 2 ** ups), math.ceil(output_shape[1] / 2 ** ups),
                                        channels[0])
    self.dense = nnx.Linear(latent_dim, dense, rngs=rngs)
    self.to_map = nnx.Linear(dense, math.prod(self.start), rngs=rngs)
    outs = (*channels, output_shape[-1])
    ins = (channels[0], *channels)
    k = (kernel_size, kernel_size)
    self.deconvs = nnx.List([nnx.ConvTranspose(a, b, k, strides=(2, 2), padding="SAME", rngs=rngs)
                             for a, b in zip(ins, outs)])

  def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = jax.nn.relu(self.to_map(jax.nn.relu(self.dense(code)))).reshape(code.shape[0], *self.start)
    for i, deconv in enumerate(self.deconvs):
      h = conv_ops.apply_conv_transpose(deconv, h, self.conv_impl)
      h = h if i == len(self.deconvs) - 1 else jax.nn.relu(h)
    return center_crop(h, *self.output_shape[:2])
