"""Reader for the original IDX files of MNIST and Fashion-MNIST (optionally gzipped).

Every structural fault (bad magic number, truncated payload, trailing bytes, broken
gzip stream) is a `DataError` naming the file: never a silently partial data set.
A gzipped file is decompressed once (`read_idx_cached`): its array is kept as `.npy` in the cache.
"""
import contextlib
import gzip
import hashlib
import logging
import os
import zlib

import numpy as np

from ae_research.cache import cache_dir
from ae_research.errors import DataError

log = logging.getLogger(__name__)

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
  """Returns the array stored in one IDX file (`.gz` or raw)."""
  try:
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
      raw = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: unreadable or truncated ({e}); delete it and fetch the data set again") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise DataError(f"{path}: not an IDX file (bad magic number); delete it and fetch the data set again")
  dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{path}: truncated IDX header; delete it and fetch the data set again")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(raw) != expected:
    raise DataError(f"{path}: {len(raw)} bytes but its header {shape} implies {expected}; "
                    "the file is truncated or corrupt: delete it and fetch the data set again")
  return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_file(directory: str, stem: str):
  """The path of `stem` (e.g. 'train-images-idx3-ubyte') in `directory`, gzipped or not."""
  for name in (stem + ".gz", stem):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def read_idx_cached(path: str) -> np.ndarray:
  """`read_idx(path)`, from `<cache>/idx/` after the first time for a `.gz` file.

  Decompressing Fashion-MNIST's training images takes 0.3 s of every run's start-up; loading the
  decoded array takes milliseconds. An entry is keyed by the file's real path, size and modification
  time, so an edited or replaced file is decoded again; an unreadable entry is decoded and replaced.
  """
  directory = cache_dir("idx") if path.endswith(".gz") else None
  if directory is None:
    return read_idx(path)
  stat = os.stat(path)
  key = hashlib.sha256(f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
  entry = os.path.join(directory, f"{os.path.basename(path)[:-3]}-{key}.npy")
  if os.path.exists(entry):
    try:
      return np.load(entry)
    except (OSError, ValueError) as e:
      log.warning("IDX cache entry %s is unreadable (%s); decoding %s again", entry, e, path)
  array = read_idx(path)
  tmp = f"{entry}.{os.getpid()}.tmp.npy"  # Per process: runs that start together write their own.
  try:
    np.save(tmp, array)
    os.replace(tmp, entry)
  except OSError:  # A read-only or full cache: the data set is still read, just not kept.
    with contextlib.suppress(OSError):
      os.remove(tmp)
  return array
