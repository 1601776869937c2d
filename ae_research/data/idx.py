"""Reader for the original IDX files of MNIST and Fashion-MNIST (optionally gzipped).

Every structural fault (bad magic number, truncated payload, trailing bytes, broken
gzip stream) is a `DataError` naming the file: never a silently partial data set.
"""
import gzip
import os
import zlib

import numpy as np

from ae_research.errors import DataError

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
