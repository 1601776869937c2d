"""The run directory: preparing it, writing JSON atomically, telling whether a run finished.

Light to import (no JAX at module level): the CLI asks `finished_summary` before it
imports the trainer. Who may write the directory is `lock.py`; what it records of its
config (and so whether it may be reused or resumed) is `record.py`. Reading a trained run
back is `training/saved.py`.
"""
import json
import os
from typing import Any, Dict, Optional

from ae_research.errors import ConfigError, OutputError


def check_writable(workdir: str, probe_name: str = ".write_test") -> str:
  """Creates `workdir` if needed and checks a file can be written there; returns its absolute path."""
  workdir = os.path.abspath(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, probe_name)
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f"cannot write to the run directory {workdir} ({e.strerror}); "
                      "choose a writable hydra.run.dir") from None
  return workdir


def prepare(workdir: str) -> str:
  """Creates `workdir` (and figures/) and checks it is writable; returns its absolute path."""
  import jax  # pylint: disable=g-import-not-at-top
  workdir = check_writable(workdir, f".write_test.{jax.process_index()}")
  try:
    os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot write to the run directory {workdir} ({e.strerror}); "
                      "choose a writable hydra.run.dir") from None
  return workdir


def write_json(path: str, obj: Dict[str, Any]) -> None:
  """Writes `obj` to `path` atomically: a crash leaves the old file or the new one, never half."""
  tmp = path + ".tmp"
  try:
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
  except OSError as e:
    raise OutputError(f"cannot write {path} ({e.strerror}); free space or fix the directory's permissions, then "
                      "continue with trainer.resume=true (the checkpoints are intact)") from None


def read_json(path: str) -> Dict[str, Any]:
  """The JSON object at `path`, or {} when there is none."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def finished_summary(workdir: str, cfg: Any) -> Optional[Dict[str, Any]]:
  """The run's summary.json if it finished the training `cfg` asks for, else None.

  A run writes summary.json only when it ends; it counts as finished for `cfg` when it
  trained for the same `trainer.epochs` and `trainer.max_steps` (asking for more epochs
  on a resumed run trains on) and its config's fingerprint matches `cfg`'s; a finished run
  of another config is refused (`ConfigError`), never taken for this one.
  """
  from ae_research.run_dir import record  # pylint: disable=g-import-not-at-top  (imports this module)
  try:
    summary = read_json(os.path.join(workdir, "summary.json"))
  except (OSError, ValueError):
    return None  # Unreadable: train (resume) again rather than trust it.
  planned = {"trainer/epochs": cfg.trainer.epochs, "trainer/max_steps": cfg.trainer.max_steps}
  if not summary or any(summary.get(k, "missing") != v for k, v in planned.items()):
    return None
  return summary if record.check_finished(workdir, cfg, summary) else None
