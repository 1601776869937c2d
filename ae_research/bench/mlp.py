"""The SPEC 1 MLP four ways, in alternating rounds on the same data (issue 27): the hand-written `lax.scan`
loop (bench/reference.py), the framework's trainer in this process, `ae-train` as users run it (a
subprocess with the default logging: JSONL, W&B offline without an API key, a progress bar), and PyTorch
eager (bench/torch_mlp.py, flush_denormal off and on) where a Python with torch is at hand.

This machine's speed drifts by 10-20% between runs: each round runs all four back to back and the
reported ratios are medians of the rounds' ratios, with their range.
"""
import os
import statistics
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from ae_research.bench.conv import torch_python
from ae_research.bench.processes import run_json_script, train_in_process_of_its_own
from ae_research.bench.reference import time_reference

TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_mlp.py")
# What `ae-train` writes as a user runs it, but evaluation and figures (the row times training).
CLI_EXTRA = ["evaluation.enabled=false", "trainer.figures=false"]


def time_cli(overrides: Sequence[str], run_dir: str) -> Dict[str, Any]:
  """summary.json (with `peak_rss_mib`) of `python -m ae_research.train OVERRIDES` in a fresh process."""
  env = dict(os.environ)
  env.pop("WANDB_MODE", None)  # The default logger.wandb.mode=auto decides, as for a user.
  return train_in_process_of_its_own([*overrides, *CLI_EXTRA], run_dir, env)


def time_torch(python: str, images: np.ndarray, epochs: int, batch_size: int, flush: bool, workdir: str):
  path = os.path.join(workdir, "torch_mlp_images.npy")
  if not os.path.exists(path):
    np.save(path, np.asarray(images, np.float32).reshape(len(images), -1))
  return run_json_script(python, TORCH_SCRIPT, path, epochs, batch_size, int(flush))


def bench_mlp(overrides: Sequence[str], epochs: int, workdir: str, train: Callable[[Sequence[str], str], Dict],
              pairs: int = 1, bar=None) -> Dict[str, Any]:
  """`pairs` rounds of: hand-written loop, trainer in process, `ae-train` subprocess, PyTorch (off, on)."""
  from ae_research.config import build, compose_config  # pylint: disable=g-import-not-at-top
  data = build(compose_config(list(overrides)).dataset, "dataset")
  images = np.asarray(data.train["image"])  # The hand-written loop and PyTorch read float32 images.
  python, why = torch_python()
  runs: Dict[str, List[float]] = {"reference": [], "framework": [], "cli": [], "torch": [], "torch_flush": []}
  peaks: Dict[str, List[float]] = {"cli": [], "torch": [], "torch_flush": []}  # Rows in processes of their own.
  reference_epoch_s, reference_compile_s, torch_info = [], None, None
  for i in range(pairs):
    if bar is not None:
      bar.set_description(f"MLP rows ({i + 1}/{pairs})")
    ref = time_reference(images, epochs=epochs, batch_size=data.batch_size)
    runs["reference"].append(ref["samples_per_s"])
    reference_epoch_s.append(ref["epoch_s"])
    reference_compile_s = reference_compile_s or ref["compile_s"]
    one = list(overrides) + ["trainer.devices=1"]
    runs["framework"].append(train(one, os.path.join(workdir, f"mlp_framework_{i}"))["train/samples_per_s"])
    cli = time_cli(one, os.path.join(workdir, f"mlp_cli_{i}"))
    runs["cli"].append(cli["train/samples_per_s"])
    peaks["cli"].append(cli["peak_rss_mib"])
    for flush in (False, True) if python else ():
      row = time_torch(python, images, epochs, data.batch_size, flush, workdir)
      runs["torch_flush" if flush else "torch"].append(row["samples_per_s"])
      peaks["torch_flush" if flush else "torch"].append(row["peak_rss_mib"])
      torch_info = {"version": row["version"], "threads": row["threads"], "params": row["params"]}
  median = statistics.median
  ratio = lambda a, b: [x / y for x, y in zip(runs[a], runs[b])]
  out = {"dataset": data.name, "num_train": data.num_train, "pairs": pairs, "epochs": epochs,
         "batch_size": data.batch_size, "torch_skipped": why, "torch": torch_info,
         "reference_epoch_s": median(reference_epoch_s), "reference_compile_s": reference_compile_s,
         **{f"{k}_samples_per_s": median(v) if v else None for k, v in runs.items()},
         "all_samples_per_s": runs, "peak_rss_mib": {k: median(v) if v else None for k, v in peaks.items()}}
  for a, b in (("framework", "reference"), ("cli", "reference"), ("cli", "framework"), ("reference", "torch_flush"),
               ("cli", "torch_flush")):
    r = ratio(a, b)
    out[f"{a}_over_{b}"] = {"median": median(r), "min": min(r), "max": max(r)} if r else None
  return out


def markdown(m: Dict[str, Any]) -> List[str]:
  fmt = lambda key: "–" if m.get(key) is None else f"{m[key]:,.0f}"
  over = lambda key: "–" if not m.get(key) else f"{m[key]['median']:.2f}x ({m[key]['min']:.2f}-{m[key]['max']:.2f})"
  t = m.get("torch") or {}
  lines = ["", f"SPEC 1 MLP on {m['dataset']} ({m['num_train']} training examples, batch {m['batch_size']}, "
           f"{m['epochs']} epochs, 1 device; median of {m['pairs']} alternating rounds; ratios: median and range "
           "of the rounds'):", "", "| run | samples/s | ratio |", "|---|---|---|",
           f"| hand-written `lax.scan` loop | {fmt('reference_samples_per_s')} | 1.00x |",
           f"| trainer in process (`train_and_evaluate`) | {fmt('framework_samples_per_s')} | "
           f"{over('framework_over_reference')} the loop |",
           f"| `ae-train` subprocess, default logging | {fmt('cli_samples_per_s')} | {over('cli_over_reference')} the "
           f"loop, {over('cli_over_framework')} in process |"]
  if m.get("torch"):
    lines += [f"| PyTorch {t['version']} eager ({t['threads']} threads) | {fmt('torch_samples_per_s')} | – |",
              f"| PyTorch eager, flush_denormal | {fmt('torch_flush_samples_per_s')} | `ae-train` is "
              f"{over('cli_over_torch_flush')} this |"]
  else:
    lines.append(f"\nPyTorch rows skipped: {m['torch_skipped']}.")
  peak = {k: "–" if v is None else f"{v:,.0f}" for k, v in (m.get("peak_rss_mib") or {}).items()}
  if peak:
    lines += ["", f"Peak RSS (MiB, median of the rounds; each a process of its own): `ae-train` {peak['cli']}, "
              f"PyTorch {peak['torch']} (flush_denormal {peak['torch_flush']})."]
  return lines
