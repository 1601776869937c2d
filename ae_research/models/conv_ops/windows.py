"""Padding rules and strided window views shared by the conv_ops formulations (NHWC, lax's conventions)."""
from typing import Sequence, Tuple, Union

import jax
import jax.numpy as jnp
from jax import lax

Padding = Union[str, int, Sequence[Union[int, Tuple[int, int]]]]
DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def pair(v, name: str) -> Tuple[int, int]:
  if v is None:
    return (1, 1)
  if isinstance(v, int):
    return (v, v)
  v = tuple(int(a) for a in v)
  if len(v) != 2:
    raise ValueError(f"{name}: expected 2 spatial values, got {v}")
  return v


def _same_pads(size: int, window: int, stride: int) -> Tuple[int, int]:
  out = -(-size // stride)
  total = max((out - 1) * stride + window - size, 0)
  return total // 2, total - total // 2


def resolve_padding(padding: Padding, spatial: Sequence[int], window: Sequence[int],
                    strides: Sequence[int]) -> Tuple[Tuple[int, int], ...]:
  """Explicit (low, high) pads per spatial dim for lax-style padding ("SAME", "VALID", int, pairs)."""
  if isinstance(padding, str):
    mode = padding.upper()
    if mode == "SAME":
      return tuple(_same_pads(n, k, s) for n, k, s in zip(spatial, window, strides))
    if mode == "VALID":
      return tuple((0, 0) for _ in spatial)
    raise ValueError(f"padding {padding!r}: conv_ops supports SAME, VALID, an int or (low, high) pairs")
  if isinstance(padding, int):
    return tuple((padding, padding) for _ in spatial)
  pads = []
  for p in padding:
    pads.append((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])))
  if len(pads) != len(spatial):
    raise ValueError(f"padding {padding!r}: need one entry per spatial dim ({len(spatial)})")
  return tuple(pads)


def out_size(n: int, k: int, s: int, pads: Tuple[int, int]) -> int:
  return (n + pads[0] + pads[1] - k) // s + 1


def window_slices(xp: jax.Array, window: Tuple[int, int], strides: Tuple[int, int], out: Tuple[int, int]):
  """The kh*kw strided views of padded NHWC `xp` that a VALID window op reads, row-major over taps."""
  b, _, _, c = xp.shape
  (kh, kw), (sh, sw), (ho, wo) = window, strides, out
  return [lax.slice(xp, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c), (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]


def pad_spatial(x: jax.Array, pads, value=0.0) -> jax.Array:
  """lax.pad of the two spatial dims of NHWC `x` (negative pads crop)."""
  cfg = [(0, 0, 0), (pads[0][0], pads[0][1], 0), (pads[1][0], pads[1][1], 0), (0, 0, 0)]
  return lax.pad(x, jnp.asarray(value, x.dtype), cfg)


def patches(x: jax.Array, window: Sequence[int], strides: Sequence[int] = (1, 1),
            padding: Padding = "SAME") -> jax.Array:
  """im2col: (B, Ho, Wo, kh*kw*C), features ordered (kh, kw, C) like a flattened HWIO kernel."""
  window, strides = pair(window, "window"), pair(strides, "strides")
  pads = resolve_padding(padding, x.shape[1:3], window, strides)
  out = tuple(out_size(n, k, s, p) for n, k, s, p in zip(x.shape[1:3], window, strides, pads))
  return jnp.concatenate(window_slices(pad_spatial(x, pads), window, strides, out), axis=-1)

