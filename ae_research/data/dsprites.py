"""dSprites (Matthey et al. 2017): 737,280 binary images of 2-D shapes, one per combination of
five factors, drawn here (see `dsprites_render` for the geometry) or read from the original file.

Drawn images are generated once per resolution and cached, bit-packed, in
`<cache root>/dsprites/dsprites_r{R}_v{VERSION}.npz` (see `ae_research.cache`); drawing has no
randomness, so a regenerated cache is bit-identical. A cache that cannot be read back is
drawn again and rewritten; an unwritable cache root means drawing in memory every time.

Images are kept as uint8 {0, 1} (737,280 x R x R bytes: 3.0 GB at 64x64, 755 MB at 32x32);
as float32 they take four times that (12.1 GB, 3.0 GB). `load_dsprites_arrays` returns the
uint8 arrays, `load_dsprites` the float32 `ArrayDataset`.
"""
import logging
import os
import zipfile
import zlib
from typing import Optional, Tuple

import numpy as np

from ae_research.cache import cache_dir
from ae_research.data.dataset import SCALES, ArrayDataset, check_scale, scale_pixels
from ae_research.data.dsprites_render import FACTOR_NAMES, FACTOR_SIZES, SHAPE_NAMES, render
from ae_research.data.storage import ScaledImages
from ae_research.errors import ConfigError, DataError
from ae_research.metrics.ground_truth import ArraySampler

__all__ = ["FACTOR_NAMES", "FACTOR_SIZES", "SHAPE_NAMES", "VERSION", "dsprites_sampler", "factor_grid",
           "factor_index", "dsprites_images", "release_images", "load_dsprites", "load_dsprites_arrays", "read_original"]

log = logging.getLogger("ae_research")

VERSION = 1  # Of the drawing: bump it with any change to dsprites_render, so old caches are not read.
NUM_IMAGES = int(np.prod(FACTOR_SIZES))
RESOLUTIONS = (64, 32)
ORIGINAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def _open_npz(path: str) -> np.lib.npyio.NpzFile:
  with open(path, "rb") as f:  # np.load would read a lone .npy, or call anything else pickled data.
    if f.read(4) != b"PK\x03\x04":
      raise ValueError("not an .npz (zip) archive")
  return np.load(path, allow_pickle=False)


def factor_grid() -> np.ndarray:
  """Every factor combination once, int32 (737280, 5), in the original's order (posY fastest)."""
  return np.stack(np.unravel_index(np.arange(NUM_IMAGES), FACTOR_SIZES), axis=1).astype(np.int32)


def factor_index(factors: np.ndarray) -> np.ndarray:
  """Rows of `factor_grid()` holding factor combinations (N, 5): their mixed-radix index."""
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
    raise ValueError(f"factors must be (N, {len(FACTOR_SIZES)}), got shape {factors.shape}")
  return np.ravel_multi_index(tuple(factors.T), FACTOR_SIZES)


def _check_resolution(resolution: int) -> None:
  if resolution not in RESOLUTIONS:
    raise ConfigError(f"dataset.resolution={resolution}: dSprites comes at {' or '.join(map(str, RESOLUTIONS))}")


def cache_file(resolution: int) -> Optional[str]:
  """Where the drawn images at `resolution` are cached; None when the cache root is not writable."""
  directory = cache_dir("dsprites")
  return directory and os.path.join(directory, f"dsprites_r{resolution}_v{VERSION}.npz")


def _read_cache(path: str, resolution: int) -> Optional[np.ndarray]:
  """The cached uint8 images, or None (with a warning) when the file is not a complete cache of them."""
  try:
    with _open_npz(path) as z:
      meta = (int(z["version"]), int(z["resolution"]), tuple(z["factor_sizes"].tolist()))
      packed = z["packed"]  # Reading the whole member checks the zip's CRC-32: flipped bits fail here.
    expected = (NUM_IMAGES, resolution, resolution // 8)
    if meta != (VERSION, resolution, FACTOR_SIZES) or packed.shape != expected or packed.dtype != np.uint8:
      raise ValueError(f"holds {packed.shape} {packed.dtype} of version/resolution/sizes {meta}")
  except _READ_ERRORS as e:
    log.warning("dSprites cache %s is unreadable or incomplete (%s); drawing the images again", path,
                str(e).splitlines()[0])
    return None
  return _unpack(packed, resolution)


# Byte -> its 8 bits as 8 bytes, read as one uint64: unpacking is then one gather, 3x faster than
# np.unpackbits(axis=-1) (1.5 s against 4.5 s for the 64x64 grid, measured).
_BITS_AS_BYTES = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).view(np.uint64).reshape(256)


def _unpack(packed: np.ndarray, resolution: int) -> np.ndarray:
  """uint8 (N, R, R) of `_pack`'s (N, R, R / 8); R (one of RESOLUTIONS) is a multiple of 8."""
  return _BITS_AS_BYTES[packed].view(np.uint8).reshape(len(packed), resolution, resolution)


def _pack(images: np.ndarray) -> np.ndarray:
  """np.packbits of each row of pixels; done on whole images at once (1.7x faster than along axis -1)."""
  return np.packbits(images.reshape(len(images), -1), axis=-1).reshape(*images.shape[:-1], -1)


def _write_cache(path: str, images: np.ndarray, resolution: int) -> None:
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with open(tmp, "wb") as f:
      # Uncompressed: zlib would shrink the 377 MB of the 64x64 grid to 2.6 MB, but inflating it takes
      # longer (2-3 s) than drawing the images again.
      np.savez(f, packed=_pack(images), version=VERSION, resolution=resolution,
               factor_sizes=np.asarray(FACTOR_SIZES))
    os.replace(tmp, path)  # Atomic: a crash, or another process writing the same file, never leaves half of one.
  except OSError as e:
    log.warning("cannot write the dSprites cache %s (%s); working without it", path, e.strerror)
    if os.path.exists(tmp):
      os.remove(tmp)


# The last images read or drawn, with the identity of the cache file they are (path, inode, size, mtime; the
# path names the resolution): the runs of a study, sweep or notebook in one process then read the file once (a
# 32x32 study's three populations: 1.3 s each), and a cache file rewritten or damaged since is read again.
_held: Optional[Tuple[Tuple[str, int, int, int], np.ndarray]] = None


def _identity(path: str) -> Tuple[str, int, int, int]:
  st = os.stat(path)
  return path, st.st_ino, st.st_size, st.st_mtime_ns


def _hold(identity: Tuple[str, int, int, int], images: np.ndarray) -> np.ndarray:
  """Keeps `images` (read-only: every caller shares them) for the next call; one set at a time."""
  global _held
  images.setflags(write=False)
  _held = (identity, images)
  return images


def release_images() -> None:
  """Drops the images this process keeps (their memory returns once no data set uses them)."""
  global _held
  _held = None


def dsprites_images(resolution: int = 64) -> np.ndarray:
  """The drawn images of `factor_grid()`, uint8 (737280, R, R) in {0, 1}, read-only: from the cache,
  else drawn (about 5 s at 64x64, 2 s at 32x32) and cached. The process keeps the last set it read
  (755 MB at 32x32, 3.0 GB at 64x64) for as long as its cache file is unchanged."""
  _check_resolution(resolution)
  path = cache_file(resolution)
  if path and os.path.exists(path):
    identity = _identity(path)  # Before the read: a file replaced during it is not taken for the one read.
    if _held is not None and _held[0] == identity:
      return _held[1]
    images = _read_cache(path, resolution)
    if images is not None:
      return _hold(identity, images)
  images = render(factor_grid(), resolution).view(np.uint8)
  if path:
    _write_cache(path, images, resolution)
    if os.path.exists(path):  # Written (an unwritable cache only warns).
      return _hold(_identity(path), images)
  return images


def read_original(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """(uint8 images (N, 64, 64) in {0, 1}, int32 factors (N, 5)) from the original npz (its constant colour
  column dropped). Any N rows are accepted, so a part of the file is too; every fault is a `DataError`."""
  hint = f"expected {ORIGINAL_FILE} from github.com/deepmind/dsprites-dataset"
  try:
    with _open_npz(path) as z:
      images, classes = z["imgs"], z["latents_classes"]
  except FileNotFoundError:
    raise DataError(f"{path}: no such file; {hint}, or leave dataset.path unset to draw dSprites") from None
  except _READ_ERRORS as e:
    raise DataError(f"{path}: unreadable as dSprites ({str(e).splitlines()[0]}); {hint}") from None
  sizes = (1,) + FACTOR_SIZES
  if (images.ndim != 3 or images.shape[1:] != (64, 64) or len(images) == 0
      or classes.shape != (len(images), len(sizes)) or not np.issubdtype(classes.dtype, np.integer)):
    raise DataError(f"{path}: 'imgs' {images.shape} and 'latents_classes' {classes.shape} are not dSprites' "
                    f"(N, 64, 64) and (N, 6) integer classes; {hint}")
  if images.dtype not in (np.uint8, np.bool_) or images.max() > 1:
    raise DataError(f"{path}: 'imgs' must be binary uint8 (0/1), got {images.dtype} up to {images.max()}; {hint}")
  if classes.min() < 0 or (classes.max(axis=0) >= sizes).any():
    raise DataError(f"{path}: 'latents_classes' outside the factor sizes {sizes}; {hint}")
  if len(images) != NUM_IMAGES:
    log.info("%s holds %d of dSprites' %d images", path, len(images), NUM_IMAGES)
  return images.view(np.uint8), classes[:, 1:].astype(np.int32)


def downsample(images: np.ndarray) -> np.ndarray:
  """Halves binary images (N, 2R, 2R) -> (N, R, R): a pixel is on when at least 2 of its 4 are.

  Measured against drawing at 32x32 directly (which `dsprites_images` does), on 20,000 images: 3.6
  pixels of ~52 differ per image and areas grow 6.6% (3 of 4 shrinks them 7.0%, as many differ).
  """
  count = images[:, ::2, ::2] + images[:, 1::2, ::2]  # uint8 sums: values <= 4, a quarter of the memory.
  count += images[:, ::2, 1::2]
  count += images[:, 1::2, 1::2]
  return (count >= 2).view(np.uint8)


def load_dsprites_arrays(resolution: int = 64, path: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
  """(uint8 images (N, R, R) in {0, 1}, int32 factors (N, 5)): the drawn grid (N = 737280, rows in
  `factor_grid()` order), or the original file at `path` (halved by `downsample` at 32x32).

  Host memory: the images take N R^2 bytes (3.0 GB at 64x64, 755 MB at 32x32).
  """
  _check_resolution(resolution)
  if path is None:
    return dsprites_images(resolution), factor_grid()
  images, factors = read_original(path)
  return (images if resolution == 64 else downsample(images)), factors


def load_dsprites(name: str, batch_size: int, scale: str = "unit", seed: int = 0, resolution: int = 64,
                  path: Optional[str] = None, num_test: int = 10_000) -> ArrayDataset:
  """dSprites as an `ArrayDataset`: "image" (N, R, R, 1), "label" the shape index, "factors" (N, 5).

  The training split is every image (disentanglement_lib trains on the whole set). The test split is
  `num_test` of those same images, drawn with `np.random.default_rng(seed)`: NOT held out, so test
  metrics measure fit, not generalisation.

  Memory: the training images stay bytes (`ScaledImages`: N R^2 bytes, 3.0 GB at 64x64, 755 MB at
  32x32, on the host and, when they fit, on the device), read as float32 rows where needed; the test
  split (`num_test` images) is float32.
  """
  check_scale(scale)  # Before seconds of drawing or reading, not after.
  images, factors = load_dsprites_arrays(resolution, path)
  if not 0 < num_test <= len(images):
    raise ConfigError(f"dataset.num_test={num_test}: choose 1..{len(images)} (the dSprites images)")
  test_rows = np.sort(np.random.default_rng(seed).choice(len(images), num_test, replace=False))
  pixels = images[..., None]  # (N, R, R, 1) bytes in {0, 1}: read as float32 by ScaledImages, never copied whole.
  splits = []
  for rows in (slice(None), test_rows):
    split_factors = factors[rows]
    split_images = ScaledImages(pixels, 1.0, scale) if isinstance(rows, slice) else scale_pixels(
        pixels[rows], scale, max_value=1.0)
    splits.append({"image": split_images, "label": split_factors[:, 0].copy(), "factors": split_factors})
  return ArrayDataset(name=name, train=splits[0], test=splits[1], batch_size=batch_size, label_name="shape",
                      label_kind="factors", scale=scale, class_names=SHAPE_NAMES, factor_names=FACTOR_NAMES,
                      factor_sizes=FACTOR_SIZES,
                      ground_truth=dsprites_sampler(images, factors, scale) if len(images) == NUM_IMAGES else None)


def dsprites_sampler(images: np.ndarray, factors: Optional[np.ndarray] = None, scale: str = "unit") -> ArraySampler:
  """Ground truth for the disentanglement metrics: uniform factor samples and their images, float32
  (n, R, R, 1) in `scale`. `images` hold every factor combination once ((737280, R, R) bytes, rows in
  `factor_grid()` order unless `factors` gives each row's combination)."""
  if scale not in SCALES:
    raise ConfigError(f"dsprites_sampler scale={scale!r}: must be one of {', '.join(SCALES)}")
  pixels = images[..., None]
  observations = ScaledImages(pixels, 1.0, scale) if pixels.dtype == np.uint8 else pixels
  try:
    return ArraySampler(observations, factor_grid() if factors is None else factors, FACTOR_SIZES, FACTOR_NAMES)
  except ValueError as e:
    raise DataError(f"dSprites ground truth: {e}") from None
