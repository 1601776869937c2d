"""Images kept as the integers they are stored in, scaled to floats where rows are read.

A data set of 8-bit images takes a quarter of the memory as uint8 that it takes as float32 (dSprites at
64x64: 3 GB instead of 12 GB), on the host and on the device. `ScaledImages` holds the integers (an
array or a memory map of a cache file) and reads as float32 images, scaled exactly as
`dataset.scale_pixels` scales them, so a data set gives the same numbers whichever way it is stored.
On the device the scaling is a lookup in the 256 values `scale_pixels` gives the 256 byte values:
XLA turns a division by a constant into a multiplication by its reciprocal, which rounds 126 of the
256 values of x / 255 differently (measured), and training on other numbers is another run.
"""
from typing import Any, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ae_research.data.dataset import SCALES


def scale_rows(raw, max_value: float, scale: str, xp=np):
  """raw / max_value (- 0.5 for "centered"), in float32; `xp` is numpy or jax.numpy."""
  x = xp.asarray(raw).astype(xp.float32) / xp.float32(max_value)
  return x - xp.float32(0.5) if scale == "centered" else x


class ScaledImages:
  """Float32 images (N, H, W, C) backed by integer storage: indexing returns scaled float32 rows.

  It behaves like the float array where the framework reads images (`len`, `shape`, `dtype`, row
  indexing, `np.asarray`), and the trainer keeps the integers on the device (`raw`, `max_value`,
  `scale`) and scales each batch inside the compiled step.
  """

  def __init__(self, raw: np.ndarray, max_value: float, scale: str):
    if scale not in SCALES:
      raise ValueError(f"scale={scale!r}: one of {SCALES}")
    if raw.dtype != np.uint8:
      raise ValueError(f"ScaledImages stores uint8 images, got {raw.dtype}")
    self.raw, self.max_value, self.scale = raw, float(max_value), scale

  @property
  def shape(self) -> Tuple[int, ...]:
    return tuple(self.raw.shape)

  @property
  def dtype(self):
    return np.dtype(np.float32)

  @property
  def ndim(self) -> int:
    return self.raw.ndim

  @property
  def nbytes(self) -> int:
    """What the scaled float32 array would take."""
    return int(np.prod(self.shape)) * 4

  def __len__(self) -> int:
    return len(self.raw)

  def __getitem__(self, index: Any) -> np.ndarray:
    return scale_rows(self.raw[index], self.max_value, self.scale)

  def __array__(self, dtype=None, copy=None):
    del copy
    out = self[:]
    return out if dtype is None else out.astype(dtype)

  @property
  def table(self) -> np.ndarray:
    """The float32 value of each of the 256 byte values."""
    return scale_rows(np.arange(256), self.max_value, self.scale)

  def decode(self, raw_rows: jax.Array, table: jax.Array) -> jax.Array:
    """Device rows of `raw` (uint8, any leading shape) as the float32 values `__getitem__` gives."""
    return jnp.take(table, raw_rows.astype(jnp.int32), axis=0)


def storage_bytes(array) -> int:
  """Bytes an array takes as stored (integers for `ScaledImages`)."""
  return int(array.raw.nbytes) if isinstance(array, ScaledImages) else int(np.asarray(array).nbytes)


def take_stored(array, rows):
  """`array[rows]` as stored: `ScaledImages` of those rows' bytes for 8-bit images, else an ndarray."""
  if isinstance(array, ScaledImages):
    return ScaledImages(array.raw[rows], array.max_value, array.scale)
  return np.asarray(array)[rows]


def take(array, rows) -> np.ndarray:
  """`array[rows]` as a host ndarray, for plain and `ScaledImages` arrays alike."""
  return array[rows] if isinstance(array, ScaledImages) else np.asarray(array)[rows]
