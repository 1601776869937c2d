"""Stacked autoencoders with greedy layer-wise pre-training (SPEC 2 and 5, Masci et al. 2011).

Layer k has an encoder f_k and a decoder g_k. With `stage=k` (k >= 1) the model trains
only layer k: it reconstructs h_{k-1} = f_{k-1}(...f_1(x)), computed with gradients
stopped, from f_k(h_{k-1}); `update_mask` freezes every other layer's parameters, so even
optimisers with weight decay leave them untouched. `stage=0` is the whole stack
(f_1..f_L then g_L..g_1), for fine-tuning and use. `trainer.greedy_epochs` runs the
stages one after the other (see `ae_research/training/greedy.py`).

kind="mlp": f_k = Dense(sizes[k]) + activation.
kind="conv": f_k = Conv(sizes[k], kernel) + activation + MaxPool(pool);
             g_k = Upsample(pool) + Conv(back to layer k-1's channels).
"""
import math
from typing import Sequence

import jax
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models.base import Autoencoder, get_activation, kernel_init
from ae_research.models.capabilities import Filters, Stacked
from ae_research.models.conv import center_crop, upsample_nearest

KINDS = ("mlp", "conv")


class StackedAutoencoder(Autoencoder, Filters, Stacked):
  encoder_modules = ("encoders",)

  def __init__(self, input_shape: Sequence[int], kind: str = "mlp", sizes: Sequence[int] = (256, 64),
               activation: str = "sigmoid", output_activation: str = "sigmoid", kernel_size: int = 5,
               pool: int = 2, init: str = "glorot_uniform", stage: int = 0, *, rngs: nnx.Rngs):
    if kind not in KINDS:
      raise ConfigError(f"model.kind={kind!r}: choose one of {', '.join(KINDS)}")
    if not sizes or any(s <= 0 for s in sizes):
      raise ConfigError(f"model.sizes={list(sizes)}: need at least one positive layer size")
    if not 0 <= stage <= len(sizes):
      raise ConfigError(f"model.stage={stage}: 0 (whole stack) or a layer number 1..{len(sizes)}")
    if kind == "conv" and len(input_shape) != 3:
      raise ConfigError(f"model: kind=conv needs (height, width, channels) images, got {tuple(input_shape)}")
    get_activation(activation), get_activation(output_activation)  # pylint: disable=expression-not-assigned
    self.input_shape, self.kind, self.stage, self.pool = tuple(input_shape), kind, stage, pool
    self.activation, self.output_activation, self.code_activation = activation, output_activation, activation
    init_fn = kernel_init(init)
    widths = (input_shape[-1] if kind == "conv" else math.prod(input_shape), *sizes)
    if kind == "mlp":
      make = lambda a, b: nnx.Linear(a, b, kernel_init=init_fn, rngs=rngs)
    else:
      make = lambda a, b: nnx.Conv(a, b, (kernel_size, kernel_size), padding="SAME", kernel_init=init_fn, rngs=rngs)
    self.encoders = nnx.List([make(a, b) for a, b in zip(widths[:-1], widths[1:])])
    # Per-example shape of h_k (k = 0..L); SAME pooling rounds odd sizes up, decoders crop back.
    shapes = [tuple(input_shape) if kind == "conv" else (widths[0],)]
    for width in sizes:
      shapes.append((*(math.ceil(d / pool) for d in shapes[-1][:2]), width) if kind == "conv" else (width,))
    self.shapes = tuple(shapes)
    self.decoders = nnx.List([make(b, a) for a, b in zip(widths[:-1], widths[1:])])

  @property
  def num_stacked_layers(self) -> int:
    return len(self.encoders)

  def first_layer_filters(self) -> jax.Array:
    return self.encoders[0].kernel[...]

  def _encode_layer(self, k: int, h: jax.Array) -> jax.Array:
    h = get_activation(self.activation)(self.encoders[k](h))
    if self.kind == "conv":
      h = nnx.max_pool(h, (self.pool, self.pool), strides=(self.pool, self.pool), padding="SAME")
    return h

  def _decode_layer_logits(self, k: int, h: jax.Array) -> jax.Array:
    if self.kind == "conv":
      return center_crop(self.decoders[k](upsample_nearest(h, self.pool)), *self.shapes[k][:2])
    return self.decoders[k](h)

  def _layer_activation(self, k: int) -> str:
    return self.output_activation if k == 0 else self.activation

  def _inputs(self, x: jax.Array, depth: int) -> list:
    """[h_0 = x (flattened for mlp), h_1, ..., h_depth]."""
    hs = [x if self.kind == "conv" else x.reshape(x.shape[0], -1)]
    for k in range(depth):
      hs.append(self._encode_layer(k, hs[-1]))
    return hs

  def encode(self, x: jax.Array) -> jax.Array:
    return self._inputs(x, self.num_stacked_layers)[-1]

  def decode_logits(self, code: jax.Array) -> jax.Array:
    h = code
    for k in reversed(range(self.num_stacked_layers)):
      h = self._decode_layer_logits(k, h)
      h = h if k == 0 else get_activation(self._layer_activation(k))(h)
    return h.reshape(code.shape[0], *self.input_shape)

  def __call__(self, x, *, rng=None, train=False):
    if self.stage == 0:
      return super().__call__(x, rng=rng, train=train)
    k = self.stage - 1
    below = jax.lax.stop_gradient(self._inputs(x, k)[-1])  # Frozen layers: no gradient work.
    code = self._encode_layer(k, below)
    logits = self._decode_layer_logits(k, code)
    if k == 0:
      logits, below = logits.reshape(x.shape), x
    return get_activation(self._layer_activation(k))(logits), {"code": code, "logits": logits, "target": below}

  def update_mask(self, params):
    """True for the parameters the current stage trains (all of them at stage 0)."""
    def trainable(path, _):
      keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
      return self.stage == 0 or (len(keys) > 1 and keys[1] == self.stage - 1)
    return jax.tree_util.tree_map_with_path(trainable, params)
