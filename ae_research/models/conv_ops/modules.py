"""The conv_ops on flax NNX modules, their parameters as they are: `apply_conv(module, x)` is `module(x)`.

impl="xla" calls the module itself (today's flax path, exactly); so does any module the ops do not cover
(dilations, groups, masks, circular padding, a compute dtype other than the parameters')."""
import jax
import numpy as np

from ae_research.models.conv_ops.convolution import conv2d
from ae_research.models.conv_ops.upsampling import conv_transpose, upsample_conv, upsample_nearest
from ae_research.models.conv_ops.windows import pair


def _plain(module) -> bool:
  one = lambda v: v is None or v == 1 or tuple(np.atleast_1d(v)) in ((1,), (1, 1))
  return (getattr(module, "feature_group_count", 1) == 1 and one(getattr(module, "kernel_dilation", 1))
          and one(getattr(module, "input_dilation", 1)) and getattr(module, "mask", None) is None
          and getattr(module, "dtype", None) in (None, module.kernel[...].dtype)
          and len(module.kernel_size) == 2 and (isinstance(module.padding, (int, tuple, list)) or
                                                 str(module.padding).upper() in ("SAME", "VALID")))


def _bias(module):
  return module.bias[...] if getattr(module, "bias", None) is not None else None


def apply_conv(module, x: jax.Array, impl: str = "auto") -> jax.Array:
  """`module(x)` for a 2-D `nnx.Conv`, computed by `conv2d` (falls back to `module(x)` for dilations,
  groups, masks, circular padding)."""
  if impl == "xla" or not _plain(module) or x.ndim != 4:
    return module(x)
  return conv2d(x, module.kernel[...], _bias(module), module.strides or 1, module.padding, impl)


def apply_conv_transpose(module, x: jax.Array, impl: str = "auto") -> jax.Array:
  """`module(x)` for a 2-D `nnx.ConvTranspose` (transpose_kernel=False), computed by `conv_transpose`."""
  if impl == "xla" or not _plain(module) or x.ndim != 4 or getattr(module, "transpose_kernel", False):
    return module(x)
  return conv_transpose(x, module.kernel[...], _bias(module), module.strides or 1, module.padding, impl)


def apply_upsample_conv(module, x: jax.Array, factor: int, impl: str = "auto") -> jax.Array:
  """`module(upsample_nearest(x, factor))` for a stride-1 2-D `nnx.Conv`, computed by `upsample_conv`."""
  if impl == "xla" or not _plain(module) or x.ndim != 4 or pair(module.strides or 1, "strides") != (1, 1):
    return module(upsample_nearest(x, factor))
  return upsample_conv(x, module.kernel[...], _bias(module), factor, module.padding, impl)
