"""Baselines that depend only on the data and the evaluation settings (raw-pixel probes, PCA),
computed once and cached on disk.

An entry's key is a fingerprint of everything its value depends on: the baseline's name and
settings and the bytes of the very arrays it reads, so a changed data set, preprocessing or
setting can never reuse a stale entry. Entries are small JSON files in
`<cache root>/baselines/` (see `ae_research/cache.py`), written atomically.
"""
import hashlib
import json
import os
from typing import Any, Callable, Dict, Mapping, Sequence

import numpy as np

from ae_research.cache import cache_dir
from ae_research.data import storage
from ae_research.run_dir import read_json, write_json

VERSION = 2  # Bump when a baseline's computation changes.


def fingerprint(name: str, settings: Mapping[str, Any], arrays: Sequence[Any]) -> str:
  """A key for `name` with `settings` on exactly these arrays' values. 8-bit images (`ScaledImages`)
  are hashed as their bytes and the 256 values they decode to: a quarter of the float32 bytes.
  SHA-256, not BLAKE2: CPUs with SHA extensions hash 2.5x faster (62 MB: 0.04 s vs 0.11 s here), and a
  warm run's cached baselines hash about 200 MB."""
  h = hashlib.sha256()
  h.update(json.dumps({"name": name, "version": VERSION, **settings}, sort_keys=True).encode())
  for a in arrays:
    parts = (a.raw, a.table) if isinstance(a, storage.ScaledImages) else (a,)
    for part in parts:
      part = np.ascontiguousarray(part)
      h.update(f"{part.shape}{part.dtype.str}".encode())
      h.update(memoryview(part).cast("B"))
  return h.hexdigest()[:32]


def cached(name: str, settings: Mapping[str, Any], arrays: Sequence[np.ndarray],
           compute: Callable[[], Dict[str, float]], enabled: bool = True) -> Dict[str, float]:
  """`compute()`, or its value from an earlier run with the same inputs."""
  directory = cache_dir("baselines") if enabled else None
  if directory is None:
    return compute()
  path = os.path.join(directory, f"{name}-{fingerprint(name, settings, arrays)}.json")
  try:
    hit = read_json(path)
  except (OSError, ValueError):
    hit = {}  # Unreadable: compute again and overwrite.
  if hit:
    return hit
  value = compute()
  try:
    write_json(path, value)
  except OSError:
    pass  # A read-only cache still gives the right value.
  return value


def pixel_linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                       enabled: bool = True) -> float:
  """Linear-probe accuracy on raw pixels: what codes must beat to be better features."""
  from ae_research.evaluation import probes  # pylint: disable=g-import-not-at-top
  compute = lambda: {"accuracy": probes.linear_probe_accuracy(train_x, train_y, test_x, test_y)}
  return cached("pixel_linear_probe", {}, [train_x, train_y, test_x, test_y], compute, enabled)["accuracy"]


def pixel_knn(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, knn_k: int,
              enabled: bool = True) -> float:
  """k-NN accuracy on raw pixels."""
  from ae_research.evaluation import probes  # pylint: disable=g-import-not-at-top
  compute = lambda: {"accuracy": probes.knn_accuracy(train_x, train_y, test_x, test_y, k=knn_k)}
  return cached("pixel_knn", {"knn_k": knn_k}, [train_x, train_y, test_x, test_y], compute, enabled)["accuracy"]


def pca_mse(train: np.ndarray, test: np.ndarray, dim: int, max_train: int = 20_000, seed: int = 0,
            enabled: bool = True) -> float:
  """PCA reconstruction MSE at `dim` components (SPEC 1's linear baseline)."""
  from ae_research.evaluation import probes  # pylint: disable=g-import-not-at-top
  train = storage.take_stored(train, probes.subset(len(train), max_train, seed))  # What the fit reads (and the key).
  compute = lambda: {"mse": probes.pca_reconstruction_mse(np.asarray(train), test, dim, max_train=len(train))}
  return cached("pca_mse", {"dim": dim}, [train, test], compute, enabled)["mse"]


__all__ = ["fingerprint", "cached", "pixel_linear_probe", "pixel_knn", "pca_mse"]
