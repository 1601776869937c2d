"""Max pooling, `flax.nnx.max_pool` for NHWC inputs: non-overlapping windows as the max of a reshape, with a
custom VJP that routes the gradient as XLA's select-and-scatter does (first maximal element, row-major)."""
import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from ae_research.models.conv_ops.windows import Padding, pad_spatial, pair, resolve_padding


def _pool_windows(x, window, pads):
  """x padded with -inf to whole windows, as (B, Ho, kh, Wo, kw, C)."""
  xp = pad_spatial(x, pads, -jnp.inf)
  b, h, w, c = xp.shape
  return xp.reshape(b, h // window[0], window[0], w // window[1], window[1], c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool_tiled(x, window, pads):
  return _pool_windows(x, window, pads).max(axis=(2, 4))


def _max_pool_tiled_fwd(x, window, pads):
  return _max_pool_tiled(x, window, pads), x


def _max_pool_tiled_bwd(window, pads, x, g):
  win = _pool_windows(x, window, pads)
  kh, kw = window
  b, ho, _, wo, _, c = win.shape
  m = win.max(axis=(2, 4), keepdims=True)
  # The first maximal element of each window in row-major order takes the gradient (XLA's select-and-scatter
  # with `ge`): a running "taken" flag over the kh*kw taps, all elementwise.
  taken = jnp.zeros((b, ho, 1, wo, 1, c), bool)
  masks = []
  for i in range(kh):
    for j in range(kw):
      hit = (win[:, :, i:i + 1, :, j:j + 1] == m[:, :, :, :, :]) & ~taken
      taken = taken | hit
      masks.append(hit)
  mask = jnp.concatenate([jnp.concatenate(masks[i * kw:(i + 1) * kw], axis=4) for i in range(kh)], axis=2)
  dx = jnp.where(mask, g[:, :, None, :, None, :], jnp.zeros((), g.dtype)).reshape(b, ho * kh, wo * kw, c)
  crop = ((-pads[0][0], -pads[0][1]), (-pads[1][0], -pads[1][1]))
  return (pad_spatial(dx, crop),)


_max_pool_tiled.defvjp(_max_pool_tiled_fwd, _max_pool_tiled_bwd)


def max_pool(x: jax.Array, window: Sequence[int], strides: Optional[Sequence[int]] = None,
             padding: Padding = "VALID", impl: str = "auto") -> jax.Array:
  """`flax.nnx.max_pool(x, window, strides, padding)` for NHWC `x`, gradient included (ties: first max).

  Non-overlapping windows (strides == window) on CPU use the reshape-max with an elementwise
  backward; anything else (or impl="xla") the lax reduce-window."""
  window = pair(window, "window")
  strides = window if strides is None else pair(strides, "strides")
  pads = resolve_padding(padding, x.shape[1:3], window, strides)
  if impl == "auto":
    impl = "tiled" if strides == window and jax.default_backend() == "cpu" else "xla"
  if impl == "tiled" and strides == window:
    # Whole windows only, as reduce-window takes them: crop an incomplete last one (a negative high pad).
    pads = tuple((lo, hi - (n + lo + hi) % k) for n, (lo, hi), k in zip(x.shape[1:3], pads, window))
    return _max_pool_tiled(x, window, pads)
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1),
                           ((0, 0), *pads, (0, 0)))

