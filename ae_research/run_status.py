"""Is a run directory already finished? (Sweeps that are re-run skip finished jobs.)"""
import json
import os
from typing import Any, Dict, Optional


def finished_summary(workdir: str, cfg: Any) -> Optional[Dict[str, Any]]:
  """The run's summary.json if it finished the training `cfg` asks for, else None.

  A run writes summary.json only when it ends; it counts as finished for `cfg` when it
  trained for the same `trainer.epochs` and `trainer.max_steps` (asking for more epochs
  on a resumed run trains on).
  """
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      summary = json.load(f)
  except (OSError, ValueError):
    return None  # Unreadable: train (resume) again rather than trust it.
  planned = {"trainer/epochs": cfg.trainer.epochs, "trainer/max_steps": cfg.trainer.max_steps}
  return summary if all(summary.get(k, "missing") == v for k, v in planned.items()) else None
