"""Where ae-research keeps what it can compute once: data-only evaluation baselines and XLA's
compiled programs.

`$AE_CACHE_DIR` if set, else `$XDG_CACHE_HOME/ae-research`, else `~/.cache/ae-research`.
"""
import logging
import os
from typing import Optional

log = logging.getLogger("ae_research")


def cache_root() -> str:
  if os.environ.get("AE_CACHE_DIR"):
    return os.path.abspath(os.path.expanduser(os.environ["AE_CACHE_DIR"]))
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "ae-research")


def cache_dir(name: str) -> Optional[str]:
  """`<root>/<name>`, created; None (with a warning) where it cannot be written."""
  path = os.path.join(cache_root(), name)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    log.warning("cache %s is not writable (%s); working without it", path, e.strerror)
    return None
  return path


def enable_compilation_cache(enabled: bool = True) -> Optional[str]:
  """Turns on JAX's persistent compilation cache (a repeated run compiles nothing); returns its directory.

  `JAX_COMPILATION_CACHE_DIR`, when set, wins; `enabled=False` leaves JAX as it is.
  """
  if not enabled:
    return None
  import jax  # pylint: disable=g-import-not-at-top
  path = jax.config.jax_compilation_cache_dir or cache_dir("xla")
  if path:
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)  # Default 1 s misses most of ours.
  return path
