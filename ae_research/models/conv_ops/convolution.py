"""2-D convolution, `lax.conv_general_dilated` for NHWC/HWIO, in the formulations XLA:CPU runs faster:
`taps` (few input channels), `col2im` (few output channels), `patches` (im2col matmul) or `xla` itself."""
from typing import Optional

import jax
from jax import lax

from ae_research.models.conv_ops.windows import (DIMENSION_NUMBERS, Padding, out_size, pad_spatial, pair, patches,
                                                 resolve_padding, window_slices)

IMPLS = ("auto", "xla", "taps", "col2im", "patches")
# `auto` on CPU: at most this many input channels -> taps; at most this many output channels -> col2im.
TAPS_MAX_IN = 4
COL2IM_MAX_OUT = 4


def _conv_xla(x, kernel, strides, pads):
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=DIMENSION_NUMBERS)


def _conv_taps(x, kernel, strides, pads):
  """Sum over taps of broadcast products: XLA fuses it (and its gradients) into loops; few input channels."""
  kh, kw, ci, co = kernel.shape
  out = tuple(out_size(n, k, s, p) for n, k, s, p in zip(x.shape[1:3], (kh, kw), strides, pads))
  views = window_slices(pad_spatial(x, pads), (kh, kw), strides, out)
  acc = None
  for view, w in zip(views, kernel.reshape(kh * kw, ci, co)):
    term = (view[..., :, None] * w).sum(axis=-2) if ci > 1 else view * w[0]
    acc = term if acc is None else acc + term
  return acc


def _conv_col2im(x, kernel, strides, pads):
  """Per-tap products first (one matmul to kh*kw*Cout channels), then their shifted sum; few output channels."""
  if strides != (1, 1):
    return _conv_patches(x, kernel, strides, pads)
  kh, kw, ci, co = kernel.shape
  b, h, w, _ = x.shape
  ho, wo = out_size(h, kh, 1, pads[0]), out_size(w, kw, 1, pads[1])
  t = (x.reshape(-1, ci) @ kernel.transpose(2, 0, 1, 3).reshape(ci, kh * kw * co)).reshape(b, h, w, kh * kw, co)
  t = pad_spatial(t.reshape(b, h, w, kh * kw * co), pads).reshape(b, h + sum(pads[0]), w + sum(pads[1]), kh * kw, co)
  acc = None
  for i in range(kh):
    for j in range(kw):
      term = lax.slice(t, (0, i, j, i * kw + j, 0), (b, i + ho, j + wo, i * kw + j + 1, co)).reshape(b, ho, wo, co)
      acc = term if acc is None else acc + term
  return acc


def _conv_patches(x, kernel, strides, pads):
  kh, kw, ci, co = kernel.shape
  p = patches(x, (kh, kw), strides, pads)
  return (p.reshape(-1, kh * kw * ci) @ kernel.reshape(kh * kw * ci, co)).reshape(*p.shape[:3], co)


_CONVS = {"xla": _conv_xla, "taps": _conv_taps, "col2im": _conv_col2im, "patches": _conv_patches}


def choose_conv_impl(in_features: int, out_features: int, strides=(1, 1)) -> str:
  """What `impl="auto"` computes a convolution with (see the module docstring for the measurements)."""
  if jax.default_backend() != "cpu":
    return "xla"
  if in_features <= TAPS_MAX_IN:
    return "taps"
  if out_features <= COL2IM_MAX_OUT and tuple(strides) == (1, 1):
    return "col2im"
  return "xla"


def conv2d(x: jax.Array, kernel: jax.Array, bias: Optional[jax.Array] = None, strides=(1, 1),
           padding: Padding = "SAME", impl: str = "auto") -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, strides, padding)` (+ bias) for NHWC `x` and HWIO `kernel`.

  impl: auto (by channel counts, see `choose_conv_impl`), xla, taps, col2im (stride 1, else
  patches) or patches (im2col matmul)."""
  if impl not in IMPLS:
    raise ValueError(f"impl={impl!r}: choose one of {', '.join(IMPLS)}")
  if x.ndim != 4 or kernel.ndim != 4:
    raise ValueError(f"conv2d takes NHWC inputs and HWIO kernels, got {x.shape} and {kernel.shape}")
  strides = pair(strides, "strides")
  pads = resolve_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  if impl == "auto":
    impl = choose_conv_impl(kernel.shape[2], kernel.shape[3], strides)
  y = _CONVS[impl](x, kernel, strides, pads)
  return y if bias is None else y + bias

