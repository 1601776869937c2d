"""Streamed training input: batches gathered on the host and put on the device ahead of their chunk.

When a training split does not fit on the device (`dataset.on_device=false`, or `auto` deciding by
size), its rows stay on the host (in memory, or memory-mapped from a cache file) and each chunk of
steps gets its batches as one (steps, [members,] batch, row) array per key, sharded over the mesh.
The rows of each step are the ones the on-device path gathers: the same epoch order (drawn by the
same program from the run's key) indexed the same way, so a streamed run trains on the same batches
and resumes at the same place. Gathering is vectorised numpy indexing, no per-record Python; a
background thread assembles and transfers the next chunk's batches while the device trains on the
current one (a bounded prefetch of one chunk).
"""
import collections
import threading
from typing import Callable, Dict, Optional, Tuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from ae_research.sharding import DATA_AXIS, POPULATION_AXIS, put, to_host

Key = Tuple[int, int]  # (first step, steps): what a chunk's batches cover.


def device_budget_bytes() -> int:
  """Half the first device's memory when it reports it (GPU, TPU), else a quarter of this host's RAM
  (XLA:CPU shares it with everything else the process holds)."""
  try:
    stats = jax.local_devices()[0].memory_stats() or {}
  except Exception:  # Backends without memory statistics.
    stats = {}
  if stats.get("bytes_limit"):
    return int(stats["bytes_limit"]) // 2
  return os_memory_bytes() // 4


def os_memory_bytes() -> int:
  import os  # pylint: disable=g-import-not-at-top
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class HostStream:
  """The batches of chunks of steps, from host rows, prefetched one chunk ahead.

  Args:
    rows: key -> (N, D) host arrays (flattened storage, `step.flatten_rows`).
    order: (base keys, epoch) -> the epoch's (steps, batch) example indices (with a leading member axis
      for a population), the same program as the on-device path's.
    rng: the members' base keys, as the state holds them.
    steps_per_epoch, total_steps: the run's plan.
    stacked: whether members have their own axis.
  """

  def __init__(self, rows: Dict[str, np.ndarray], order: Callable, rng, steps_per_epoch: int, total_steps: int,
               mesh, stacked: bool):
    self.rows, self.order, self.rng = rows, order, rng
    self.spe, self.total_steps, self.stacked = steps_per_epoch, total_steps, stacked
    spec = P(None, POPULATION_AXIS, DATA_AXIS) if stacked else P(None, DATA_AXIS)
    self.sharding = NamedSharding(mesh, spec)
    self._orders: "collections.OrderedDict[int, np.ndarray]" = collections.OrderedDict()
    self._lock = threading.Lock()  # The order cache is shared by the caller and the prefetch thread.
    self._pending: Optional[Tuple[Key, "_Prefetch"]] = None

  def _epoch_order(self, epoch: int) -> np.ndarray:
    with self._lock:
      if epoch not in self._orders:
        self._orders[epoch] = to_host(self.order(self.rng, np.int32(epoch)))
        while len(self._orders) > 4:  # Chunks read one or two epochs' orders (more for tiny epochs: recomputed).
          self._orders.popitem(last=False)
      return self._orders[epoch]

  def indices(self, first: int, steps: int) -> np.ndarray:
    """(steps, [members,] batch) example indices of steps first..first+steps (past the run's end: repeats)."""
    out = []
    for step in range(first, first + steps):
      step = min(step, self.total_steps - 1)
      order = self._epoch_order(step // self.spe)
      out.append(order[..., step % self.spe, :])
    return np.stack(out)

  def _assemble(self, key: Key) -> Dict[str, jax.Array]:
    idx = self.indices(*key)
    flat = idx.reshape(-1)
    return {k: put(v[flat].reshape(*idx.shape, v.shape[1]), self.sharding) for k, v in self.rows.items()}

  def batches(self, first: int, steps: int, used: int) -> Dict[str, jax.Array]:
    """The stored rows of steps first..first+steps, on the device (a chunk of `used` <= `steps` steps reads
    the first `used`); starts assembling the next chunk's, steps first+used.., in the background."""
    key = (first, steps)
    if self._pending is not None and self._pending[0] == key:
      out = self._pending[1].result()
    else:
      out = self._assemble(key)
    follow = first + used
    self._pending = None
    if follow < self.total_steps:
      self._pending = ((follow, steps), _Prefetch(self._assemble, (follow, steps)))
    return out


class _Prefetch:
  """`fn(arg)` on a daemon thread (a run that ends or fails never waits for, or leaks, its next chunk)."""

  def __init__(self, fn, arg):
    self._value, self._error = None, None
    self._thread = threading.Thread(target=self._run, args=(fn, arg), name="stream-prefetch", daemon=True)
    self._thread.start()

  def _run(self, fn, arg):
    try:
      self._value = fn(arg)
    except BaseException as e:  # Re-raised where the batches are used.
      self._error = e

  def result(self):
    self._thread.join()
    if self._error is not None:
      raise self._error
    return self._value


def fits_on_device(nbytes: int, budget: Optional[int] = None) -> bool:
  return nbytes <= (device_budget_bytes() if budget is None else budget)

