"""Benchmark rows run in a process of their own, so that each one's peak memory is its own: the child's
peak resident set size from the kernel (`wait4`'s rusage, Linux's VmHWM of the exited child), for our
runs (`python -m ae_research.train`) and PyTorch's scripts alike."""
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, Optional, Sequence, Tuple


def run_measured(argv: Sequence[str], env: Optional[Dict[str, str]] = None) -> Tuple[str, float]:
  """(stdout, peak RSS in MiB) of `argv`; a non-zero exit raises CalledProcessError with its stderr."""
  # Output to files, not pipes: the child must be reaped by wait4 (for its rusage), not by communicate().
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(list(argv), stdout=out, stderr=err, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    out.seek(0), err.seek(0)
    stdout, stderr = out.read(), err.read()
  if code != 0:
    raise subprocess.CalledProcessError(code, list(argv), stdout, stderr)
  return stdout, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux.


def run_json_script(python: str, script: str, *args) -> Dict[str, Any]:
  """The JSON line `script` prints last (run by `python`, e.g. one with torch), with its `peak_rss_mib`."""
  out, peak = run_measured([python, "-W", "ignore", script, *map(str, args)])
  lines = out.strip().splitlines()
  if not lines:
    raise ValueError(f"{script} printed nothing: its last line must be its JSON result")
  return {**json.loads(lines[-1]), "peak_rss_mib": peak}


def train_in_process_of_its_own(overrides: Sequence[str], run_dir: str) -> Dict[str, Any]:
  """summary.json of `python -m ae_research.train OVERRIDES` in a fresh process, with its `peak_rss_mib`
  (start-up, data, compilation, training and evaluation: the whole run's high-water mark)."""
  _, peak = run_measured([sys.executable, "-m", "ae_research.train", *overrides, f"hydra.run.dir={run_dir}"])
  with open(os.path.join(run_dir, "summary.json")) as f:
    return {**json.load(f), "peak_rss_mib": peak}
