"""Benchmark rows run in a process of their own, so that each one's peak memory is its own: the child's
peak resident set size (Linux's VmHWM), for our runs (`python -m ae_research.train`) and PyTorch's
scripts alike."""
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Optional, Sequence, Tuple

POLL_S = 0.02


def _vm_hwm_mib(pid: int) -> float:
  """The process's peak resident set (VmHWM, of its own address space since its exec), 0 once it is gone."""
  try:
    with open(f"/proc/{pid}/status") as f:
      return next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), 0.0)
  except OSError:
    return 0.0


def run_measured(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> Tuple[str, float]:
  """(stdout, peak RSS in MiB) of `argv`; a non-zero exit raises CalledProcessError with its stderr.

  The peak is VmHWM read while the child runs (every POLL_S): the exited child's rusage would not do, as
  Linux carries the high-water mark of the forked parent's address space across exec (a 1.3 GiB pytest
  worker's `python -c pass` reported 1,343 MiB)."""
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(list(argv), stdout=out, stderr=err, text=True, env=env)
    peak = 0.0
    while proc.poll() is None:
      peak = max(peak, _vm_hwm_mib(proc.pid))
      time.sleep(POLL_S)
    out.seek(0), err.seek(0)
    stdout, stderr = out.read(), err.read()
  if proc.returncode != 0:
    raise subprocess.CalledProcessError(proc.returncode, list(argv), stdout, stderr)
  return stdout, peak


def run_json_script(python: str, script: str, *args) -> Dict[str, Any]:
  """The JSON line `script` prints last (run by `python`, e.g. one with torch), with its `peak_rss_mib`."""
  out, peak = run_measured([python, "-W", "ignore", script, *map(str, args)])
  lines = out.strip().splitlines()
  if not lines:
    raise ValueError(f"{script} printed nothing: its last line must be its JSON result")
  return {**json.loads(lines[-1]), "peak_rss_mib": peak}


def train_in_process_of_its_own(overrides: Sequence[str], run_dir: str,
                                env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
  """summary.json of `python -m ae_research.train OVERRIDES` in a fresh process (environment `env`,
  default this one's), with its `peak_rss_mib` (start-up, data, compilation, training and evaluation:
  the whole run's high-water mark)."""
  _, peak = run_measured([sys.executable, "-m", "ae_research.train", *overrides, f"hydra.run.dir={run_dir}"], env)
  with open(os.path.join(run_dir, "summary.json")) as f:
    return {**json.load(f), "peak_rss_mib": peak}
