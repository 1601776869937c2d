"""pythae's benchmark backbones (Chadebec et al. 2022, "Pythae: unifying generative autoencoders",
pythae/models/nn/benchmarks/{mnist,cifar,celeba}): its ConvNet for 28x28, 32x32 and 64x64 images, and
its small ResNet for 28x28 and 32x32 images, in NHWC with PyTorch's paddings (so every map has pythae's
size). `width` scales every channel count (1.0: pythae's); a decoder's `width` (and `conv_impl`) null
takes its encoder's.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import jax
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models import conv_ops
from ae_research.models.generative.backbones import check_conv_impl, check_image, torch_conv, torch_conv_transpose

# Transposed-conv layers of pythae's ConvNet decoders per image size: the (side, channels) map the first
# Dense layer makes, then (kernel, stride, padding, output_padding, channels out; None = the image's).
CONV_DECODERS: Dict[int, Tuple[Tuple[int, int], Tuple[Tuple[int, int, int, int, Optional[int]], ...]]] = {
    28: ((4, 1024), ((3, 2, 1, 0, 512), (3, 2, 1, 1, 256), (3, 2, 1, 1, None))),  # 4 -> 7 -> 14 -> 28
    32: ((8, 1024), ((4, 2, 1, 0, 512), (4, 2, 1, 1, 256), (4, 1, 2, 0, None))),  # 8 -> 16 -> 33 -> 32
    64: ((8, 1024), ((5, 2, 2, 0, 512), (5, 2, 1, 0, 256), (5, 2, 2, 1, 128), (5, 1, 1, 0, None))),  # -> 64
}
RESNET_SIZES = (28, 32)


def scaled(channels: int, width: float) -> int:
  return max(1, int(round(channels * width)))


def decoder_impl(conv_impl: Optional[str], encoder) -> str:
  return check_conv_impl(getattr(encoder, "conv_impl", "xla") if conv_impl is None else conv_impl)


def decoder_width(width: Optional[float], encoder) -> float:
  if width is None:
    width = getattr(encoder, "width", 1.0)
  if not width > 0:
    raise ConfigError(f"model.decoder.width={width}: must be positive")
  return width


class PythaeConvEncoder(nnx.Module):
  """Conv 128, 256, 512, 1024 (4x4, stride 2, padding 1), each with batch norm and ReLU; flattened
  (1024 x 1 x 1 features at 28x28, 1024 x 2 x 2 at 32x32, 1024 x 4 x 4 at 64x64)."""
  name = "pythae_conv"

  def __init__(self, input_shape: Sequence[int], width: float = 1.0, batch_norm: bool = True,
               conv_impl: str = "xla", *, rngs: nnx.Rngs):
    check_image(self.name, input_shape, sizes=tuple(CONV_DECODERS))
    self.conv_impl = check_conv_impl(conv_impl)
    if not width > 0:
      raise ConfigError(f"model.encoder.width={width}: must be positive")
    self.width, self.batch_norm = width, batch_norm
    channels = [scaled(c, width) for c in (128, 256, 512, 1024)]
    ins = (input_shape[-1], *channels[:-1])
    self.convs = nnx.List([torch_conv(a, b, 4, 2, 1, rngs) for a, b in zip(ins, channels)])
    # PyTorch's BatchNorm2d momentum 0.1 is flax's 0.9 (the weight of the old running average).
    self.norms = nnx.List([nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs) for c in channels]
                          if batch_norm else [])
    side = input_shape[0]
    for _ in channels:
      side = side // 2  # (n + 2 - 4) // 2 + 1
    self.features = side * side * channels[-1]

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = x
    for i, conv in enumerate(self.convs):
      h = conv_ops.apply_conv(conv, h, self.conv_impl)
      h = self.norms[i](h, use_running_average=not train) if self.batch_norm else h
      h = jax.nn.relu(h)
    return h.reshape(h.shape[0], -1)

  def first_layer_filters(self) -> jax.Array:
    return self.convs[0].kernel[...]


class PythaeConvDecoder(nnx.Module):
  """Dense to a 1024-channel map (4x4 at 28x28, 8x8 at 32x32 and 64x64), then pythae's transposed convs
  for the image size (`CONV_DECODERS`), batch norm and ReLU between them; the last one is linear."""
  name = "pythae_conv"

  def __init__(self, latent_dim: int, output_shape: Sequence[int], encoder=None, width: Optional[float] = None,
               batch_norm: Optional[bool] = None, conv_impl: Optional[str] = None, *, rngs: nnx.Rngs):
    check_image(self.name, output_shape, sizes=tuple(CONV_DECODERS))
    width, self.conv_impl = decoder_width(width, encoder), decoder_impl(conv_impl, encoder)
    self.batch_norm = getattr(encoder, "batch_norm", True) if batch_norm is None else batch_norm
    (side, first), layers = CONV_DECODERS[output_shape[0]]
    self.start = (side, side, scaled(first, width))
    self.dense = nnx.Linear(latent_dim, math.prod(self.start), rngs=rngs)
    outs = [output_shape[-1] if c is None else scaled(c, width) for *_, c in layers]
    ins = [self.start[-1], *outs[:-1]]
    self.deconvs = nnx.List([torch_conv_transpose(a, b, k, s, p, op, rngs)
                             for a, b, (k, s, p, op, _) in zip(ins, outs, layers)])
    self.norms = nnx.List([nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs) for c in outs[:-1]]
                          if self.batch_norm else [])

  def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
    h = self.dense(code).reshape(code.shape[0], *self.start)
    for i, deconv in enumerate(self.deconvs):
      h = conv_ops.apply_conv_transpose(deconv, h, self.conv_impl)
      if i < len(self.deconvs) - 1:
        h = self.norms[i](h, use_running_average=not train) if self.batch_norm else h
        h = jax.nn.relu(h)
    return h


class ResBlock(nnx.Module):
  """pythae's ResBlock: x + Conv1x1(ReLU(Conv3x3(ReLU(x)))), the 3x3 conv narrowing to `hidden` channels."""

  def __init__(self, channels: int, hidden: int, conv_impl: str = "xla", *, rngs: nnx.Rngs):
    self.conv3 = torch_conv(channels, hidden, 3, 1, 1, rngs)
    self.conv1 = torch_conv(hidden, channels, 1, 1, 0, rngs)
    self.conv_impl = conv_impl

  def __call__(self, h: jax.Array) -> jax.Array:
    conv = lambda m, h: conv_ops.apply_conv(m, h, self.conv_impl)
    return h + conv(self.conv1, jax.nn.relu(conv(self.conv3, jax.nn.relu(h))))


class ResNetEncoder(nnx.Module):
  """Conv 64 (4x4, stride 2), Conv 128 (4x4, stride 2), Conv 128 (3x3, stride 2 at 28x28, 1 at 32x32),
  two ResBlocks (128 -> 32 -> 128); flattened: 128 x 4 x 4 features at 28x28, 128 x 8 x 8 at 32x32.
  As in pythae, no activation between the first three convs."""
  name = "resnet"

  def __init__(self, input_shape: Sequence[int], width: float = 1.0, conv_impl: str = "xla", *, rngs: nnx.Rngs):
    check_image(self.name, input_shape, sizes=RESNET_SIZES)
    self.conv_impl = check_conv_impl(conv_impl)
    if not width > 0:
      raise ConfigError(f"model.encoder.width={width}: must be positive")
    self.width = width
    c64, c128, c32 = scaled(64, width), scaled(128, width), scaled(32, width)
    last_stride = 2 if input_shape[0] == 28 else 1
    self.convs = nnx.List([torch_conv(input_shape[-1], c64, 4, 2, 1, rngs), torch_conv(c64, c128, 4, 2, 1, rngs),
                           torch_conv(c128, c128, 3, last_stride, 1, rngs)])
    self.blocks = nnx.List([ResBlock(c128, c32, self.conv_impl, rngs=rngs) for _ in range(2)])
    side = 4 if input_shape[0] == 28 else 8
    self.features = side * side * c128

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    h = x
    for conv in self.convs:
      h = conv_ops.apply_conv(conv, h, self.conv_impl)
    for block in self.blocks:
      h = block(h)
    return h.reshape(h.shape[0], -1)

  def first_layer_filters(self) -> jax.Array:
    return self.convs[0].kernel[...]


class ResNetDecoder(nnx.Module):
  """pythae's ResNet decoders. 28x28: Dense to 4x4x128, ConvT 128 (3x3, s2: 7x7), two ResBlocks, ReLU,
  ConvT 64 (3x3, s2: 14x14), ReLU, ConvT to the output (28x28). 32x32: Dense to 8x8x128, two ResBlocks,
  ConvT 64 (4x4, s2: 16x16), ConvT to the output (32x32)."""
  name = "resnet"

  def __init__(self, latent_dim: int, output_shape: Sequence[int], encoder=None, width: Optional[float] = None,
               conv_impl: Optional[str] = None, *, rngs: nnx.Rngs):
    check_image(self.name, output_shape, sizes=RESNET_SIZES)
    width, self.conv_impl = decoder_width(width, encoder), decoder_impl(conv_impl, encoder)
    c64, c128, c32 = scaled(64, width), scaled(128, width), scaled(32, width)
    self.small = output_shape[0] == 28
    self.start = (4, 4, c128) if self.small else (8, 8, c128)
    self.dense = nnx.Linear(latent_dim, math.prod(self.start), rngs=rngs)
    if self.small:
      self.up = torch_conv_transpose(c128, c128, 3, 2, 1, 0, rngs)
      self.deconvs = nnx.List([torch_conv_transpose(c128, c64, 3, 2, 1, 1, rngs),
                               torch_conv_transpose(c64, output_shape[-1], 3, 2, 1, 1, rngs)])
    else:
      self.deconvs = nnx.List([torch_conv_transpose(c128, c64, 4, 2, 1, 0, rngs),
                               torch_conv_transpose(c64, output_shape[-1], 4, 2, 1, 0, rngs)])
    self.blocks = nnx.List([ResBlock(c128, c32, self.conv_impl, rngs=rngs) for _ in range(2)])

  def __call__(self, code: jax.Array, train: bool = False) -> jax.Array:
    del train
    deconv = lambda i, h: conv_ops.apply_conv_transpose(self.deconvs[i], h, self.conv_impl)
    h = self.dense(code).reshape(code.shape[0], *self.start)
    if self.small:
      h = conv_ops.apply_conv_transpose(self.up, h, self.conv_impl)
    for block in self.blocks:
      h = block(h)
    if self.small:  # pythae's 28x28 decoder has ReLUs after the blocks and the middle ConvT; its 32x32 one none.
      h = jax.nn.relu(h)
      return deconv(1, jax.nn.relu(deconv(0, h)))
    return deconv(1, deconv(0, h))
