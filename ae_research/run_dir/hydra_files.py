"""`.hydra/` (Hydra's record of a job: config.yaml, hydra.yaml, overrides.yaml), written by us.

Hydra writes these files before the task starts, so a run that is then refused (a resume with a
changed config, a directory another process holds) would already have overwritten the record of
the run it refused to touch. `ae-train` therefore starts Hydra with `hydra.output_subdir=null`
(`NO_SUBDIR`) and writes the same three files here: at once into a directory that holds no run
yet, else once the trainer has accepted the job (`record.record_start` calls `write_deferred`,
after every check that needs the checkpoint, such as a resume asking for fewer steps than done).
"""
import os
from typing import Any, Dict, List, Tuple

from omegaconf import DictConfig, OmegaConf

SUBDIR = ".hydra"
NO_SUBDIR = "hydra.output_subdir=null"


def with_own_record(argv: List[str]) -> List[str]:
  """`argv` with Hydra's own writing of `.hydra/` turned off, unless the user chose an output_subdir."""
  if any(a.startswith(("hydra.output_subdir=", "hydra/output_subdir=")) for a in argv):
    return list(argv)
  return list(argv) + [NO_SUBDIR]


_deferred: Dict[str, Tuple[DictConfig, Any]] = {}  # Real path of a run directory -> what to write there.


def save(workdir: str, task_cfg: DictConfig, hydra_root: Any, holds_run: bool = False) -> None:
  """Writes `workdir/.hydra/` as Hydra would have (`hydra_root`: the config holding the `hydra` node),
  or, when the directory `holds_run`, once the trainer accepts the job; nothing when Hydra wrote it
  itself (the user set hydra.output_subdir)."""
  if hydra_root.hydra.output_subdir is not None:
    return
  if holds_run:
    _deferred[os.path.realpath(workdir)] = (task_cfg, hydra_root)
  else:
    _write(workdir, task_cfg, hydra_root)


def write_deferred(workdir: str) -> None:
  """Writes the `.hydra/` that `save` kept back for `workdir`, if any."""
  pending = _deferred.pop(os.path.realpath(workdir), None)
  if pending is not None:
    _write(workdir, *pending)


def forget(workdir: str) -> None:
  """Drops what `save` kept back for `workdir` (its job ended without being accepted)."""
  _deferred.pop(os.path.realpath(workdir), None)


def _write(workdir: str, task_cfg: DictConfig, hydra_root: Any) -> None:
  hydra_cfg = OmegaConf.create(OmegaConf.to_container(hydra_root, resolve=False))  # A plain, writable copy.
  hydra_cfg.hydra.output_subdir = SUBDIR
  hydra_cfg.hydra.overrides.hydra = [o for o in hydra_cfg.hydra.overrides.hydra if o != NO_SUBDIR]
  out = os.path.join(workdir, SUBDIR)
  os.makedirs(out, exist_ok=True)
  for name, cfg in (("config.yaml", task_cfg), ("hydra.yaml", hydra_cfg),
                    ("overrides.yaml", hydra_cfg.hydra.overrides.task)):
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
      f.write(OmegaConf.to_yaml(cfg))
