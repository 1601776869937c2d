"""Which config keys say what a run trains, and which may change when it is resumed or reused.

Every key of the flat resolved config (`config.flatten`) is one of three kinds:

* **ignored**: how the run is executed, logged and evaluated, never what it learns: the length
  of training (`trainer.epochs`, `trainer.max_steps`: a finished run is matched on them
  separately), logging and checkpoint intervals, devices, figures, the compilation cache,
  `logger.*` (W&B mode, ...), `evaluation.*`, `name`, `objective_metric`, and where the data
  files are found (`dataset.data_dir`, `dataset.tfds_data_dir`, `dataset.download`,
  `dataset.on_device`).
* **resumable**: an optimiser's numeric hyperparameters (`optimizer.learning_rate`, `b1`,
  `weight_decay`, `clip_grad_norm`, the schedule's `warmup_steps`, ... and the same keys of
  `param_groups.<g>.optimizer`): a resume may change them (e.g. lower the learning rate; the
  change is recorded in `resumes.jsonl`), but a finished run is reused only when they match.
* **identity**: everything else: `seed`, `model.*`, `loss.*`, `dataset.*`, `corruption.*`,
  `task.*`, `param_groups.*`, `trainer.init_from`, `trainer.greedy_epochs`, and the
  optimiser's structure (`_target_`, `name`, `schedule`, and the integer and boolean
  arguments optax takes as static, e.g. `memory_size`, `nesterov`, as `optim.py` does). A
  resume must keep them; a new key is identity unless listed above.
"""
import hashlib
import json
import re
from typing import Any, Dict, Mapping, Tuple

from ae_research.config.flatten import MISSING_VALUE

IGNORED = ("trainer.epochs", "trainer.max_steps", "trainer.resume", "trainer.devices", "trainer.log_every_steps",
           "trainer.eval_every_epochs", "trainer.eval_every_steps", "trainer.checkpoint_every_epochs",
           "trainer.checkpoint_every_steps", "trainer.checkpoint_min_interval_s", "trainer.keep_checkpoints",
           "trainer.eval_batch_size", "trainer.figures", "trainer.figure_examples", "trainer.compilation_cache",
           "trainer.compiler_options", "trainer.compiler_options.", "trainer.share_program", "trainer.scan_unroll",
           "trainer.distributed.", "logger.", "evaluation.",
           "name", "objective_metric", "dataset.data_dir", "dataset.tfds_data_dir", "dataset.download",
           "dataset.on_device")
_OPTIMIZER = re.compile(r"^(?:optimizer|param_groups\.[^.]+\.optimizer)\.([^.]+)$")
_STRUCTURE = ("_target_", "name", "schedule")
_SCHEDULE_ARGS = ("learning_rate", "warmup_steps", "end_learning_rate", "decay_rate", "clip_grad_norm")

Change = Tuple[Any, Any]  # (old value, new value); MISSING_VALUE where a config lacks the key.


def kind(key: str, old: Any = None, new: Any = None) -> str:
  """"ignored", "resumable" or "identity" (see the module docstring) for a key that changed old -> new."""
  if any(key == k or (k.endswith(".") and key.startswith(k)) for k in IGNORED):
    return "ignored"
  match = _OPTIMIZER.match(key)
  if not match or match.group(1) in _STRUCTURE:
    return "identity"
  if match.group(1) in _SCHEDULE_ARGS:
    return "resumable"
  static = any(isinstance(v, (bool, int)) and not isinstance(v, float) for v in (old, new) if v != MISSING_VALUE)
  return "identity" if static else "resumable"


def fingerprint(flat: Mapping[str, Any]) -> str:
  """sha256 of the keys that are not ignored: equal for two configs exactly when a finished run may be reused."""
  kept = {k: v for k, v in flat.items() if kind(k, v, v) != "ignored"}
  return "sha256:" + hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _replaces(key: str, other: Mapping[str, Any]) -> bool:
  """Whether `key`, absent from the flat config `other`, takes the place of a value there: `other` holds
  a value at one of its parents (`corruption: null` vs `corruption.probability`) or a node below it."""
  parts = key.split(".")
  return (any(".".join(parts[:i]) in other for i in range(1, len(parts)))
          or any(k.startswith(key + ".") for k in other))


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Dict[str, Change]:
  """{key: (old, new)} for every key whose value differs (but `trainer.resume`, which a resume always sets).

  A key only one config has is a change when it replaces a value of the other (null -> a node); one
  whose parent node both have is a key the code added (or dropped) since the run started, not a change:
  otherwise every new config key would make every earlier run unusable.
  """
  out = {}
  for k in sorted(set(old) | set(new)):
    if k == "trainer.resume":
      continue
    if k in old and k in new:
      if old[k] != new[k]:
        out[k] = (old[k], new[k])
    elif _replaces(k, new if k in old else old):
      out[k] = (old.get(k, MISSING_VALUE), new.get(k, MISSING_VALUE))
  return out


def of_kind(diff: Mapping[str, Change], *kinds: str) -> Dict[str, Change]:
  return {k: v for k, v in diff.items() if kind(k, *v) in kinds}


def describe(diff: Mapping[str, Change], limit: int = 3) -> str:
  """"model.activation: relu → tanh, seed: 0 → 1 (and 2 more)": the first `limit` changes, values shortened;
  a node that replaced a value is one change (`corruption: None → {_target_: ..., probability: 0.3}`)."""
  def short(value):
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
  shown, below_shown = [], set()
  for key, (old, new) in diff.items():
    if key in below_shown:
      continue
    below = [k for k in diff if k.startswith(key + ".")]
    if below:
      below_shown.update(below)
      side = 1 if new == MISSING_VALUE else 0
      node = "{" + ", ".join(f"{k[len(key) + 1:]}: {diff[k][side]}" for k in below) + "}"
      old, new = (old, node) if side else (node, new)
    shown.append(f"{key}: {short(old)} → {short(new)}")
  return ", ".join(shown[:limit]) + (f" (and {len(shown) - limit} more)" if len(shown) > limit else "")
