"""metrics.jsonl: one JSON object per record, appended and flushed as it is written."""
import json
import math
import os
from typing import Any, Mapping

from ae_research.errors import OutputError
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
  """Appends records to metrics.jsonl; a write the disk refuses is an `OutputError` (a torn last line is
  dropped on resume, so the log stays readable)."""

  def __init__(self, path: str):
    self.path = path
    try:
      self._file = open(path, "a")
    except OSError as e:
      raise self._error(e) from None

  def _error(self, e: OSError) -> OutputError:
    return OutputError(f"cannot write {self.path} ({e.strerror}); free space or fix the directory's permissions, "
                       "then continue with trainer.resume=true (the checkpoints are intact)")

  def write_scalars(self, step, scalars: Mapping[str, Any]):
    record = {"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}
    try:
      self._file.write(json.dumps(record) + "\n")
      self._file.flush()
    except OSError as e:
      raise self._error(e) from None

  def close(self):
    try:
      self._file.close()
    except OSError:
      pass  # Its write already failed and was reported; what reached the disk is kept.
