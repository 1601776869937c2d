"""The dSprites generative model: five factors and a point-sampling renderer for them.

The factors and their values are those of the original data set (Matthey et al. 2017,
github.com/deepmind/dsprites-dataset: README and the npz's `metadata`), less its constant
colour: shape (square, ellipse, heart), scale (6 values, linspace(0.5, 1, 6)),
orientation (40 values, linspace(0, 2 pi, 40) as the original's `latents_values`: both ends
are included, so index 39 (2 pi) draws the same image as index 0 and index 10 is 92.3
degrees, not 90), posX and posY (32 values each, linspace(0, 1, 32)).

Geometry (the original's drawing code is not published; these choices are ours), in units
of the canvas side, which is 1:
  * every shape's farthest point from its centre is `_RADIUS` = 0.15 sqrt(2) at scale 1, so
    one margin keeps all of them inside the canvas at every orientation;
  * square: side 0.3 (20 px at 64x64 and scale 1, 10 px at scale 0.5: "about a third of
    the canvas"), axis-aligned at orientation 0;
  * ellipse: 2:1, semi-axes `_RADIUS` (along x at orientation 0) and `_RADIUS` / 2;
  * heart: the region (x^2 + y^2 - 1)^3 <= x^2 y^3 (point down at orientation 0), scaled
    so that its farthest point (the point) is `_RADIUS` from its centroid;
  * a shape's centre is its centroid, and it rotates about it, counter-clockwise on screen
    as the orientation grows;
  * position: posX index j puts the centre at x = (16 + j) / 64 of the width, posY index j
    at y = (16 + j) / 64 of the height from the top. At 64x64 that is the pixel corner
    between columns 15 + j and 16 + j: one position step is exactly one pixel, so moving
    a shape shifts its image without resampling it, and the square covers an even number
    of whole pixels (10, 12, ..., 20 wide), its area exactly proportional to scale^2.
    The centres span columns 16..47: 16 pixels of margin on the left, 17 on the right.

Pixels are point-sampled at their centres (binary images, no anti-aliasing). Other
resolutions draw the same geometry directly (at 32x32 a position step is half a pixel).
"""
from typing import Sequence

import numpy as np

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_VALUES = (np.arange(3, dtype=np.float64), np.linspace(0.5, 1.0, 6), np.linspace(0.0, 2 * np.pi, 40),
                 np.linspace(0.0, 1.0, 32), np.linspace(0.0, 1.0, 32))

_HALF_SIDE = 0.15
_RADIUS = _HALF_SIDE * np.sqrt(2)
_ELLIPSE_AXES = (_RADIUS, _RADIUS / 2)
# The heart region's centroid is at y = 0.29349 of its curve's units (measured on a 6001^2 grid);
# its farthest point from there is the point at y = -1, 1.29349 away.
_HEART_CENTROID_Y = 0.29349
_HEART_UNIT = _RADIUS / (1 + _HEART_CENTROID_Y)
_CENTRE_MIN, _CENTRE_SPAN = 16 / 64, 31 / 64
_CHUNK_PIXELS = 1 << 23  # Window pixels per vectorised step: a few float64 temporaries of 64 MB each.


def centre_px(position: np.ndarray, resolution: int) -> np.ndarray:
  """Pixel coordinate (pixel i spans [i, i + 1)) of a shape centre at position value(s) in [0, 1]."""
  return (_CENTRE_MIN + _CENTRE_SPAN * np.asarray(position, np.float64)) * resolution


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Whether points (u, v) of the shape's own frame (y up, unit scale, canvas units) are inside;
  overwrites u and v (they are temporaries of the caller's)."""
  if shape == 0:
    return np.maximum(np.abs(u), np.abs(v)) <= _HALF_SIDE
  if shape == 1:
    a, b = _ELLIPSE_AXES
    u *= 1 / a
    v *= 1 / b
    return u * u + v * v <= 1
  u *= 1 / _HEART_UNIT
  v *= 1 / _HEART_UNIT
  v += _HEART_CENTROID_Y
  u2, v2 = u * u, v * v
  r = u2 + v2 - 1
  return r * r * r <= u2 * v2 * v


def render_values(shape: Sequence[int], scale: Sequence[float], orientation: Sequence[float],
                  pos_x: Sequence[float], pos_y: Sequence[float], resolution: int = 64) -> np.ndarray:
  """Bool images (N, R, R) of shapes at factor *values*: scale in (0, 1], orientation in radians,
  positions in [0, 1]. Any such values work (e.g. exactly pi / 2), not only the grid's."""
  shape = np.asarray(shape, np.int64).reshape(-1)
  scale, angle, pos_x, pos_y = (np.broadcast_to(np.asarray(a, np.float64), shape.shape)
                                for a in (scale, orientation, pos_x, pos_y))
  # Within these ranges every shape stays inside the canvas (and inside the window drawn for it).
  if shape.size and not (0 < scale.min() and scale.max() <= 1 and 0 <= min(pos_x.min(), pos_y.min())
                         and max(pos_x.max(), pos_y.max()) <= 1):
    raise ValueError("render_values: scales must lie in (0, 1] and positions in [0, 1]")
  return _render(shape, scale, angle, centre_px(pos_x, resolution), centre_px(pos_y, resolution), resolution)


def _render(shape, scale, angle, cx, cy, resolution):
  """Bool images of shapes centred at pixel coordinates (cx, cy)."""
  if resolution < 8:
    raise ValueError(f"resolution={resolution}: dSprites needs at least 8x8 pixels")
  if shape.size and (shape.min() < 0 or shape.max() > 2):
    raise ValueError(f"shape indices must be 0 (square), 1 (ellipse) or 2 (heart), got {np.unique(shape)}")
  if not shape.size:
    return np.zeros((0, resolution, resolution), bool)
  # Each shape lies within _RADIUS * scale of its centre, so it is drawn in a window around the centre's
  # pixel. What the window holds depends only on where the centre is within that pixel: each distinct
  # window is drawn once (720 for the 64x64 grid, whose centres all lie on pixel corners), then copied.
  half = int(np.ceil(_RADIUS * resolution)) + 1
  ix, iy = np.floor(cx), np.floor(cy)
  columns = (shape, scale, angle, cx - ix, cy - iy)
  code = np.zeros(len(shape), np.int64)
  for col in columns:  # Distinct rows via one integer code: np.unique(axis=0) on floats is 20x slower.
    values, inverse = np.unique(col, return_inverse=True)
    code = code * len(values) + inverse
  _, first, which = np.unique(code, return_index=True, return_inverse=True)
  windows = _draw_windows(np.stack([col[first] for col in columns], axis=1), half, resolution)
  # Pasted one window position at a time; windows overhanging the canvas (at resolutions below 32) are
  # clipped, which loses nothing: the shape itself stays inside.
  out = np.zeros((len(shape), resolution, resolution), bool)
  ix, iy = ix.astype(np.int64), iy.astype(np.int64)
  origin = iy * (resolution + 1) + ix
  order = np.argsort(origin, kind="stable")
  bounds = np.flatnonzero(np.diff(origin[order])) + 1
  for rows in np.split(order, bounds):
    x0, y0 = ix[rows[0]] - half, iy[rows[0]] - half
    cols = slice(max(0, -x0), min(2 * half, resolution - x0))
    lines = slice(max(0, -y0), min(2 * half, resolution - y0))
    out[rows, max(0, y0):y0 + lines.stop, max(0, x0):x0 + cols.stop] = windows[which[rows]][:, lines, cols]
  return out


def _draw_windows(keys: np.ndarray, half: int, resolution: int) -> np.ndarray:
  """(M, 2 half, 2 half) windows of rows (shape, scale, orientation, centre's x and y within its pixel);
  the centre's pixel is at row and column `half` of the window."""
  width = 2 * half
  windows = np.empty((len(keys), width, width), bool)
  steps = np.arange(width) - half + 0.5
  chunk = max(1, _CHUNK_PIXELS // (width * width))
  for kind in range(3):
    rows = np.flatnonzero(keys[:, 0] == kind)
    for start in range(0, len(rows), chunk):
      idx = rows[start:start + chunk]
      _, scale, angle, fx, fy = keys[idx].T
      # Offsets of the pixel centres from the shape's, in canvas units per unit scale; y flipped (up) so
      # the orientation turns counter-clockwise on screen.
      size = scale[:, None] * resolution
      dx = (steps - fx[:, None]) / size
      dy = (fy[:, None] - steps) / size
      cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
      # Into the shape's frame: the sample points rotated by -orientation (window rows are y, columns x).
      u = cos * dx[:, None, :] + sin * dy[:, :, None]
      v = cos * dy[:, :, None] - sin * dx[:, None, :]
      windows[idx] = _inside(kind, u, v)
  return windows


def factor_values(factors: np.ndarray) -> tuple:
  """The five factor value arrays of integer factor indices (N, 5)."""
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
    raise ValueError(f"factors must be (N, {len(FACTOR_SIZES)}) indices, got shape {factors.shape}")
  bad = [name for name, size, col in zip(FACTOR_NAMES, FACTOR_SIZES, factors.T)
         if col.size and (col.min() < 0 or col.max() >= size)]
  if bad:
    raise ValueError(f"factor indices out of range for {', '.join(bad)} (sizes {FACTOR_SIZES})")
  return tuple(values[col] for values, col in zip(FACTOR_VALUES, factors.T))


def render(factors: np.ndarray, resolution: int = 64) -> np.ndarray:
  """Bool images (N, R, R) of integer factor indices (N, 5) in `FACTOR_NAMES` order
  (`.view(np.uint8)` makes them 0/1 bytes without a copy)."""
  shape, scale, angle, _, _ = factor_values(factors)
  factors = np.asarray(factors)
  # Centres from the position indices, exactly: (16 + j) / 64 of the side is a dyadic fraction.
  cx, cy = ((16 + factors[:, 3 + axis].astype(np.float64)) * (resolution / 64) for axis in (0, 1))
  return _render(shape.astype(np.int64), scale, angle, cx, cy, resolution)
