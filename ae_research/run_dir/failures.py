"""The jobs of a sweep that failed, recorded in the sweep directory (`failed_jobs/<job>.json`).

A sweep finishes its good jobs whatever the bad ones do; each failure (a bad config, a refused
resume, a loss that turned NaN) is recorded here with its one-line reason, so the comparison can
mark it and the multirun can exit non-zero when it ends. Kept outside the job's run directory: a
refused job must not change the run directory it refused to touch. A new multirun in the same
sweep directory starts with none.
"""
import glob
import json
import os
import shutil
from typing import Any, Dict, List, Sequence

DIR = "failed_jobs"


def record(sweep_dir: str, job: Any, run_dir: str, overrides: Sequence[str], reason: str) -> None:
  """Records job `job` (its number) of the sweep in `sweep_dir` as failed with the one-line `reason`."""
  os.makedirs(os.path.join(sweep_dir, DIR), exist_ok=True)
  path = os.path.join(sweep_dir, DIR, f"{job}.json")
  with open(path + ".tmp", "w") as f:
    json.dump({"job": job, "run_dir": os.path.abspath(run_dir), "overrides": list(overrides), "error": reason}, f,
              indent=1)
  os.replace(path + ".tmp", path)


def clear(sweep_dir: str) -> None:
  shutil.rmtree(os.path.join(sweep_dir, DIR), ignore_errors=True)


def read(sweep_dir: str) -> List[Dict[str, Any]]:
  """The sweep's failure records, by job number."""
  out = []
  for path in glob.glob(os.path.join(sweep_dir, DIR, "*.json")):
    try:
      with open(path) as f:
        out.append(json.load(f))
    except (OSError, ValueError):
      out.append({"job": os.path.basename(path)[:-5], "run_dir": "", "overrides": [],
                  "error": f"{path}: unreadable failure record"})
  return sorted(out, key=lambda r: str(r.get("job")).zfill(8))
