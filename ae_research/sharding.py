"""Data parallelism over a (population, data) device mesh.

Every run trains K >= 1 members on one mesh: members are spread over the "population"
axis (gcd(K, devices) devices; 1 for a single run) and each member's batch is sharded over
"data"; anything else is replicated. XLA inserts the gradient all-reduce.
"""
import math
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ae_research.errors import ConfigError

DATA_AXIS = "data"
POPULATION_AXIS = "population"


def _devices(num_devices: Optional[int]) -> list:
  """The first `num_devices` local devices (all by default); with several processes every
  process's devices (each process contributes its local ones)."""
  if jax.process_count() > 1:
    if num_devices not in (None, jax.device_count()):
      raise ConfigError(f"trainer.devices={num_devices}: with {jax.process_count()} processes training uses all "
                        f"{jax.device_count()} devices; set trainer.devices=null")
    return list(jax.devices())
  devices = jax.local_devices()
  if num_devices is not None and not 0 < num_devices <= len(devices):
    raise ConfigError(f"trainer.devices={num_devices}: this process sees {len(devices)} device(s); "
                      f"choose 1..{len(devices)} or null for all")
  return devices[:num_devices or len(devices)]


def make_mesh(num_devices: Optional[int] = None, members: int = 1) -> Mesh:
  """A (population, data) mesh: gcd(members, devices) devices hold members, the rest share a batch.

  Built with `Mesh` (Auto axis types) rather than `jax.make_mesh`, whose Explicit default
  cannot mix with single-device arrays in one jit.
  """
  devices = _devices(num_devices)
  p = math.gcd(members, len(devices))
  return Mesh(np.array(devices).reshape(p, len(devices) // p), (POPULATION_AXIS, DATA_AXIS))


def local_mesh(mesh: Mesh) -> Mesh:
  """This process's devices as a (1, n) mesh: for work only process 0 does (final evaluation, figures)."""
  if jax.process_count() == 1:
    return mesh
  return Mesh(np.array(jax.local_devices()).reshape(1, -1), (POPULATION_AXIS, DATA_AXIS))


def data_size(mesh: Mesh) -> int:
  return mesh.shape[DATA_AXIS]


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def member_sharded(mesh: Mesh) -> NamedSharding:
  """Leading axis = members, spread over the population axis."""
  return NamedSharding(mesh, P(POPULATION_AXIS))


def check_divisible(batch_size: int, mesh: Mesh, key: str = "dataset.batch_size") -> None:
  n = data_size(mesh)
  if batch_size % n:
    raise ConfigError(f"{key}={batch_size} is not divisible by the {n} devices in use; use a multiple of "
                      f"{n} (e.g. {batch_size + n - batch_size % n}) or set trainer.devices")


def put(tree: Any, sharding: NamedSharding) -> Any:
  """Host values laid out with `sharding`; with several processes as global arrays (every
  process passes the same full values and keeps the shards its devices hold)."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def make(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(make, tree)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  return put(tree, replicated(mesh))


def to_host(tree: Any) -> Any:
  """Numpy copies of replicated arrays, also where they span other processes' devices."""
  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_shards[0].data)
    return np.asarray(x) if isinstance(x, jax.Array) else x
  return jax.tree.map(fetch, tree)
