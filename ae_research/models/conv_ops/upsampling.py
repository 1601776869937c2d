"""Nearest upsampling, transposed convolutions and upsample-then-convolve by phase decomposition: each of the
s*s output phases of a stride-s transposed convolution is a small convolution of the input itself, all
of them one patch matmul (no zero-dilated input, no upsampled map)."""
import math
from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ae_research.models.conv_ops.convolution import conv2d
from ae_research.models.conv_ops.windows import (DIMENSION_NUMBERS, Padding, pad_spatial, pair, resolve_padding,
                                                 window_slices)


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
  """Nearest-neighbour upsampling of NHWC `x` by an integer factor (broadcast + reshape)."""
  fh, fw = pair(factor, "factor")
  b, h, w, c = x.shape
  return jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, fh, w, fw, c)).reshape(b, h * fh, w * fw, c)


def _phase_plan(n: int, k: int, s: int, pads: Tuple[int, int]):
  """How an lhs-dilated (stride-s transposed) convolution along one dim splits into s phases.

  Output o = s*i + a reads kernel taps t0(a), t0(a)+s, ... at input rows i + c(a), i + c(a) + 1, ...
  Returns (out length, [(taps, c, outputs) per phase], taps per phase U, c_min, patch rows R)."""
  pl, ph = pads
  length = s * (n - 1) + 1 + pl + ph - k + 1
  phases = []
  for a in range(s):
    t0 = (pl - a) % s
    taps = list(range(t0, k, s))
    phases.append((taps, (a + t0 - pl) // s, len(range(a, length, s))))
  u = max(1, max(len(t) for t, _, _ in phases))
  c_min = min(c for _, c, _ in phases)
  rows = max(m + c - c_min for _, c, m in phases)
  return length, phases, u, c_min, rows


def _tap_matrix(phases, u: int, k: int) -> np.ndarray:
  """(u, s, k) 0/1: phase a's u-th tap is kernel tap taps[u]."""
  m = np.zeros((u, len(phases), k), np.float32)
  for a, (taps, _, _) in enumerate(phases):
    for i, t in enumerate(taps):
      m[i, a, t] = 1.0
  return m


def dilated_conv(x: jax.Array, kernel: jax.Array, dilation: Sequence[int], padding) -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, (1, 1), padding, lhs_dilation=dilation)` (NHWC/HWIO) without the
  dilated input: the s_h*s_w output phases as one patch matmul over `x`, then interleaved."""
  sh, sw = pair(dilation, "dilation")
  kh, kw, ci, co = kernel.shape
  b, h, w, _ = x.shape
  pads = resolve_padding(padding, (sh * (h - 1) + 1, sw * (w - 1) + 1), (kh, kw), (1, 1))
  lh, ph_, uh, cmin_h, rh = _phase_plan(h, kh, sh, pads[0])
  lw, pw_, uw, cmin_w, rw = _phase_plan(w, kw, sw, pads[1])
  # Phase kernels: (uh, uw, ci, sh, sw, co), zero where a phase has fewer taps.
  mh = jnp.asarray(_tap_matrix(ph_, uh, kh), kernel.dtype)
  mw = jnp.asarray(_tap_matrix(pw_, uw, kw), kernel.dtype)
  k6 = jnp.einsum("uad,vbe,deio->uviabo", mh, mw, kernel)
  xpad = ((-cmin_h, rh + uh - 1 - h + cmin_h), (-cmin_w, rw + uw - 1 - w + cmin_w))
  p = jnp.concatenate(window_slices(pad_spatial(x, xpad), (uh, uw), (1, 1), (rh, rw)), axis=-1)
  y = (p.reshape(-1, uh * uw * ci) @ k6.reshape(uh * uw * ci, sh * sw * co)).reshape(b, rh, rw, sh, sw, co)
  nh, nw = -(-lh // sh), -(-lw // sw)
  rows = []
  for a, (_, ca, ma) in enumerate(ph_):
    cols = []
    for bb, (_, cb, mb) in enumerate(pw_):
      r0, c0 = ca - cmin_h, cb - cmin_w
      v = lax.slice(y, (0, r0, c0, a, bb, 0), (b, r0 + ma, c0 + mb, a + 1, bb + 1, co)).reshape(b, ma, mb, co)
      cols.append(pad_spatial(v, ((0, nh - ma), (0, nw - mb))) if (ma, mb) != (nh, nw) else v)
    rows.append(jnp.stack(cols, axis=3))  # (B, nh, nw, sw, co)
  out = jnp.stack(rows, axis=2).reshape(b, nh * sh, nw * sw, co)  # (B, nh, sh, nw, sw, co) interleaved
  return out[:, :lh, :lw] if (nh * sh, nw * sw) != (lh, lw) else out


def _conv_transpose_pads(k: int, s: int, padding) -> Tuple[int, int]:
  """lax.conv_transpose's string padding rule (jax.lax._conv_transpose_padding)."""
  if padding == "SAME":
    pad_len = k + s - 2
    pad_a = k - 1 if s > k - 1 else int(math.ceil(pad_len / 2))
  elif padding == "VALID":
    pad_len = k + s - 2 + max(k - s, 0)
    pad_a = k - 1
  else:
    raise ValueError(f"padding {padding!r}")
  return pad_a, pad_len - pad_a


def conv_transpose(x: jax.Array, kernel: jax.Array, bias: Optional[jax.Array] = None, strides=(2, 2),
                   padding: Padding = "SAME", impl: str = "auto") -> jax.Array:
  """`lax.conv_transpose(x, kernel, strides, padding)` (+ bias), i.e. flax `ConvTranspose` with
  `transpose_kernel=False`, NHWC/HWIO; impl auto (phases on CPU), phases or xla."""
  strides = pair(strides, "strides")
  if isinstance(padding, str):
    pads = tuple(_conv_transpose_pads(k, s, padding.upper()) for k, s in zip(kernel.shape[:2], strides))
  else:
    pads = resolve_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
  if impl == "auto":
    impl = "phases" if jax.default_backend() == "cpu" else "xla"
  if impl == "xla":
    y = lax.conv_general_dilated(x, kernel, (1, 1), pads, lhs_dilation=strides, dimension_numbers=DIMENSION_NUMBERS)
  else:
    y = dilated_conv(x, kernel, strides, pads)
  return y if bias is None else y + bias


def upsample_conv(x: jax.Array, kernel: jax.Array, bias: Optional[jax.Array] = None, factor: int = 2,
                  padding: Padding = "SAME", impl: str = "auto") -> jax.Array:
  """`conv2d(upsample_nearest(x, factor), kernel, bias, padding=padding)` (stride 1) without the upsampled map.

  Nearest upsampling is a transposed convolution with a box kernel, so the composition is one
  stride-`factor` transposed convolution with the kernel box-summed to (kh+f-1, kw+f-1), computed by
  phases on `x` itself (`dilated_conv`). impl: auto (phases on CPU), phases or xla (the composition)."""
  fh, fw = pair(factor, "factor")
  kh, kw = kernel.shape[:2]
  if impl == "auto":
    impl = "phases" if jax.default_backend() == "cpu" else "xla"
  if impl == "xla":
    return conv2d(upsample_nearest(x, (fh, fw)), kernel, bias, padding=padding, impl="xla")
  up = (x.shape[1] * fh, x.shape[2] * fw)
  pads = resolve_padding(padding, up, (kh, kw), (1, 1))
  # v[t] = sum_{d = t-f+1 .. t} w[d]: the kernel correlated with a box of f ones, per spatial dim.
  v = kernel
  for axis, f in ((0, fh), (1, fw)):
    if f > 1:
      cfg = [(0, 0)] * 4
      cfg[axis] = (f - 1, f - 1)
      vp = jnp.pad(v, cfg)
      v = sum(lax.slice_in_dim(vp, f - 1 - e, f - 1 - e + v.shape[axis] + f - 1, axis=axis) for e in range(f))
  dpads = ((pads[0][0] + fh - 1, pads[0][1] + fh - 1), (pads[1][0] + fw - 1, pads[1][1] + fw - 1))
  y = dilated_conv(x, v, (fh, fw), dpads)
  return y if bias is None else y + bias

