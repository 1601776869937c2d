"""metrics.jsonl: one JSON object per record, appended and flushed as it is written."""
import json
import math
import os
from typing import Any, Mapping

from ae_research.writers.base import MetricWriter


def _plain(value: Any) -> Any:
  value = value.item() if hasattr(value, "item") else value
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep them visible as strings.
  return value


def read_jsonl(path: str):
  """The records; a torn last line (the process was killed mid-write) is dropped."""
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  records = []
  for i, line in enumerate(lines):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if i != len(lines) - 1:
        raise
  return records


def truncate_after(path: str, step: int) -> None:
  """Drops records past `step` (written after the checkpoint a resumed run restarts from)."""
  if not os.path.exists(path):
    return
  kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in kept)
  os.replace(tmp, path)  # Atomic: a crash leaves either the old or the new file.


class JsonlWriter(MetricWriter):

  def __init__(self, path: str):
    self.path = path
    self._file = open(path, "a")

  def write_scalars(self, step, scalars: Mapping[str, Any]):
    record = {"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()

  def close(self):
    self._file.close()
