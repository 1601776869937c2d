"""Multi-process (multi-host) set-up: `jax.distributed` from the config or the environment.

`trainer.distributed.enabled=true` initialises JAX's distributed runtime before anything
touches a device: with `coordinator_address`, `num_processes` and `process_id` set, from
those; otherwise from the cluster environment JAX detects (SLURM, Open MPI, TPU pods,
Kubernetes). On CPU, collectives go through gloo. Afterwards the mesh spans every
process's devices (`sharding.make_mesh`), every process holds the (small) data set and
the replicated state as global arrays, each global batch is gathered on device and
sharded over all processes' devices, orbax writes checkpoints collectively, and only
process 0 writes metrics, figures, summaries and W&B.
"""
import logging
from typing import Any

import jax

from ae_research.errors import ConfigError

log = logging.getLogger("ae_research")


def initialize(dcfg: Any) -> None:
  """Starts jax.distributed as `trainer.distributed` asks (no-op when disabled or already up)."""
  if dcfg is None or not dcfg.enabled or jax.distributed.is_initialized():
    return
  explicit = {"coordinator_address": dcfg.coordinator_address, "num_processes": dcfg.num_processes,
              "process_id": dcfg.process_id}
  given = {k: v for k, v in explicit.items() if v is not None}
  if given and len(given) != len(explicit):
    missing = ", ".join(f"trainer.distributed.{k}" for k in explicit if k not in given)
    raise ConfigError(f"trainer.distributed: set all of coordinator_address, num_processes and process_id, or "
                      f"none (to read them from SLURM/MPI/TPU); missing {missing}")
  if dcfg.cpu_collectives:
    jax.config.update("jax_cpu_collectives_implementation", dcfg.cpu_collectives)
  try:
    jax.distributed.initialize(**given, initialization_timeout=dcfg.timeout_s)
  except (RuntimeError, ValueError) as e:
    raise ConfigError(f"trainer.distributed: could not start ({str(e).splitlines()[0][:200]}); check the "
                      "coordinator address/port and that every process was started") from None
  log.info("process %d of %d; %d local and %d global devices", jax.process_index(), jax.process_count(),
           jax.local_device_count(), jax.device_count())


def is_main_process() -> bool:
  return jax.process_index() == 0
