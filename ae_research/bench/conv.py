"""The conv AE's convolutions (issue 27): `model.conv_impl=auto` (models/conv_ops) against `xla` (the flax
modules) through the framework's trainer, in alternating pairs, and the same network in PyTorch eager
(with and without `torch.set_flush_denormal(True)`) where a Python with torch is at hand: this one, or
$AE_BENCH_TORCH_PYTHON. PyTorch runs in a subprocess, between the pairs, on the same training images; `ae-bench`
runs ours in processes of their own too (bench/processes.py), so that every row has its own peak memory.
"""
import os
import statistics
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ae_research.bench.processes import run_json_script

IMPLS = ("auto", "xla")
# Every --quick conv run (here, bench/cli.py's conv row, bench/generative.py's rows) compiles its chunks as loops:
# unrolled (the CPU default, what the full rows time) the quick conv row compiled for 8.4 of its 11.5 s under
# the test suite's fast-compile flags; --quick's numbers are not judged, its rows and keys are the same either way.
QUICK_CONV_CHUNKS = "trainer.scan_unroll=rolled"
# (overrides, steps): the default conv AE on Fashion-MNIST; --quick: 8x8 digits, narrow, a few steps.
FULL = (["model=conv"], 60)
QUICK = (["model=conv", "dataset=digits", "debug=default", "model.channels=[4,8]", QUICK_CONV_CHUNKS], 6)
TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_conv.py")


def torch_python() -> tuple:
  """(a Python that imports torch, None) or (None, why not)."""
  candidates = [os.environ["AE_BENCH_TORCH_PYTHON"]] if os.environ.get("AE_BENCH_TORCH_PYTHON") else []
  for python in candidates + [sys.executable]:
    try:
      ok = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False).returncode == 0
    except OSError:  # $AE_BENCH_TORCH_PYTHON names no executable: the reason below says so.
      ok = False
    if ok:
      return python, None
  return None, ("torch is not importable by this Python" + (" nor by $AE_BENCH_TORCH_PYTHON" if candidates else "")
                + "; set AE_BENCH_TORCH_PYTHON to a Python with torch for the PyTorch rows")


def time_torch(python: str, images: np.ndarray, channels: Sequence[int], steps: int, batch_size: int,
               flush_denormal: bool, workdir: str) -> Dict[str, Any]:
  path = os.path.join(workdir, "torch_images.npy")
  if not os.path.exists(path):
    np.save(path, np.asarray(images, np.float32))
  return run_json_script(python, TORCH_SCRIPT, path, ",".join(map(str, channels)), steps, batch_size,
                          int(flush_denormal))


def bench_conv_impls(quick: bool, workdir: str, train: Callable[[Sequence[str], str], Dict[str, Any]],
                     pairs: int = 3, bar=None) -> Dict[str, Any]:
  """`pairs` rounds of: conv_impl=auto, conv_impl=xla, PyTorch (flush_denormal off, on); medians."""
  from ae_research.config import build, compose_config  # pylint: disable=g-import-not-at-top
  overrides, steps = QUICK if quick else FULL
  overrides = list(overrides) + [f"trainer.max_steps={steps}", "trainer.compilation_cache=false"]
  cfg = compose_config(overrides)
  python, why = torch_python()
  data = build(cfg.dataset, "dataset") if python else None
  runs: Dict[str, List[Dict[str, Any]]] = {impl: [] for impl in IMPLS}
  torch_runs: Dict[bool, List[Dict[str, Any]]] = {False: [], True: []}
  for i in range(pairs):
    for impl in IMPLS:
      if bar is not None:
        bar.set_description(f"conv_impl={impl} ({i + 1}/{pairs})")
      runs[impl].append(train(overrides + [f"model.conv_impl={impl}"], os.path.join(workdir, f"conv_{impl}_{i}")))
    for flush in (False, True) if python else ():
      torch_runs[flush].append(time_torch(python, data.train["image"], cfg.model.channels, steps,
                                          cfg.dataset.batch_size, flush, workdir))
  median = lambda rows, key: statistics.median(r[key] for r in rows)
  result = {"dataset": cfg.dataset.name, "channels": list(cfg.model.channels), "steps": steps, "pairs": pairs,
            "batch_size": cfg.dataset.batch_size, "torch": None, "torch_skipped": why}
  for impl in IMPLS:
    result[impl] = {"samples_per_s": median(runs[impl], "train/samples_per_s"),
                    "compile_s": median(runs[impl], "time/compile_s"),
                    "peak_rss_mib": median(runs[impl], "peak_rss_mib") if "peak_rss_mib" in runs[impl][0] else None,
                    "all_samples_per_s": [r["train/samples_per_s"] for r in runs[impl]]}
  result["auto_over_xla"] = statistics.median(a["train/samples_per_s"] / x["train/samples_per_s"]
                                              for a, x in zip(runs["auto"], runs["xla"]))
  if python:
    result["torch"] = {("flush_denormal" if flush else "default"): {
        "samples_per_s": median(rows, "samples_per_s"), "all_samples_per_s": [r["samples_per_s"] for r in rows],
        "peak_rss_mib": median(rows, "peak_rss_mib"), "version": rows[0]["version"], "threads": rows[0]["threads"]}
        for flush, rows in torch_runs.items()}
  return result


def markdown(conv: Optional[Dict[str, Any]]) -> List[str]:
  if not conv:
    return []
  lines = ["", f"Conv AE {conv['channels']} on {conv['dataset']} (batch {conv['batch_size']}, {conv['steps']} steps, "
           f"median of {conv['pairs']} alternating rounds): samples/s and compile s.", "",
           "| convolutions | samples/s | compile s | peak RSS MiB |", "|---|---|---|---|"]
  mib = lambda row: "–" if row.get("peak_rss_mib") is None else f"{row['peak_rss_mib']:,.0f}"
  for impl in IMPLS:
    lines.append(f"| model.conv_impl={impl} | {conv[impl]['samples_per_s']:,.0f} | {conv[impl]['compile_s']:.1f} | "
                 f"{mib(conv[impl])} |")
  for name, row in (conv["torch"] or {}).items():
    lines.append(f"| PyTorch {row['version']} eager ({name.replace('_', ' ')}, {row['threads']} threads) | "
                 f"{row['samples_per_s']:,.0f} | – | {mib(row)} |")
  lines.append(f"\nauto / xla: {conv['auto_over_xla']:.2f}x (median of the pairs' ratios)."
               + (f" PyTorch rows skipped: {conv['torch_skipped']}." if conv["torch_skipped"] else ""))
  return lines
