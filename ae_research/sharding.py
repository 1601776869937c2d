"""Data parallelism over a 1-D device mesh: batch sharded on "data", state replicated."""
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ae_research.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(num_devices: Optional[int] = None) -> Mesh:
  """A mesh over the first `num_devices` local devices (all by default).

  Built with `Mesh` (Auto axis types) rather than `jax.make_mesh`, whose Explicit
  default cannot mix with single-device arrays in one jit.
  """
  devices = jax.local_devices()
  if num_devices is not None and not 0 < num_devices <= len(devices):
    raise ConfigError(f"trainer.devices={num_devices}: this process sees {len(devices)} device(s); "
                      f"choose 1..{len(devices)} or null for all")
  return Mesh(np.array(devices[:num_devices or len(devices)]), (DATA_AXIS,))


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
  return jax.device_put(tree, replicated(mesh))
