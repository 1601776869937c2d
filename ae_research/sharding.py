"""Data parallelism over a 1-D device mesh: batch sharded on "data", state replicated."""
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ae_research.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(num_devices: Optional[int] = None) -> Mesh:
  """A mesh over the first `num_devices` devices (all by default); with several processes,
  over every process's devices (all of them: each process contributes its local ones).

  Built with `Mesh` (Auto axis types) rather than `jax.make_mesh`, whose Explicit
  default cannot mix with single-device arrays in one jit.
  """
  if jax.process_count() > 1:
    if num_devices not in (None, jax.device_count()):
      raise ConfigError(f"trainer.devices={num_devices}: with {jax.process_count()} processes training uses all "
                        f"{jax.device_count()} devices; set trainer.devices=null")
    return Mesh(np.array(jax.devices()), (DATA_AXIS,))
  devices = jax.local_devices()
  if num_devices is not None and not 0 < num_devices <= len(devices):
    raise ConfigError(f"trainer.devices={num_devices}: this process sees {len(devices)} device(s); "
                      f"choose 1..{len(devices)} or null for all")
  return Mesh(np.array(devices[:num_devices or len(devices)]), (DATA_AXIS,))


def local_mesh(mesh: Mesh) -> Mesh:
  """This process's part of `mesh`: for work that only process 0 does (final evaluation, figures)."""
  if jax.process_count() == 1:
    return mesh
  return Mesh(np.array(jax.local_devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh, key: str = "dataset.batch_size") -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(f"{key}={batch_size} is not divisible by the {n} devices in use; use a multiple of "
                      f"{n} (e.g. {batch_size + n - batch_size % n}) or set trainer.devices")


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """`tree` copied onto every device of `mesh`; with several processes, as global arrays
  (every process passes the same values)."""
  if jax.process_count() == 1:
    return jax.device_put(tree, replicated(mesh))
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def to_host(tree: Any) -> Any:
  """Host (numpy) copies of replicated arrays, also where they span other processes' devices."""
  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_shards[0].data)
    return np.asarray(x) if isinstance(x, jax.Array) else x
  return jax.tree.map(fetch, tree)
