"""`ae-compare RUN_DIR|SWEEP_DIR ...`: compare finished runs from their run directories.

No W&B server needed: reads each run's config.yaml, summary.json, eval.json and
metrics.jsonl. Runs are grouped by the config values that differ between them, except
the seed, so seeds of one setting form one group; each group's metrics are aggregated
(mean, std, min, max over its runs). Writes, into `--out` (default: `<dir>/comparison`
for one sweep directory, else `./comparison`):

  runs.csv        one row per run: its group, the differing config values, all metrics
  groups.csv      one row per group and metric: n, mean, std, min, max
  comparison.md   the headline metrics per group as a markdown table (mean ± std)
  curves.png      train and eval loss curves of every run, coloured by group

Every multirun also writes this into its sweep directory when it ends (the Hydra callback
below, configured in conf/config.yaml). Jobs of a sweep that failed (`run_dir/failures.py`)
are listed with their status and reason in runs.csv and comparison.md; the multirun then
exits non-zero. A run's config is its config.yaml with its resumes' changes applied
(`run_dir/record.py`); an unreadable summary.json, eval.json or config.yaml is a one-line error.
"""
import argparse
import csv
import json
import os
import statistics
import sys
from typing import Any, Dict, List, Optional, Sequence

import yaml
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from ae_research.config.flatten import differing_keys, flatten_config
from ae_research.errors import DataError, UserError
from ae_research.run_dir import check_writable, failures, read_json, record
from ae_research.writers.jsonl import read_jsonl

# Never what distinguishes one setting from another.
_IGNORED = ("seed", "logger.", "trainer.resume", "trainer.init_from")
HEADLINE = ("eval/loss", "test/mse", "test/bce", "test/mse_over_pca_mse", "probe/linear_codes",
            "retrieval/precision@10", "test/nll_iwae", "train/samples_per_s")


def find_runs(paths: Sequence[str]) -> List[str]:
  """Run directories (those holding config.yaml and summary.json) at or below `paths`."""
  runs = []
  for path in paths:
    for root, dirs, files in os.walk(path):
      dirs[:] = sorted(d for d in dirs if d not in ("checkpoints", "wandb", "figures", "pretrain", ".hydra"))
      if "summary.json" in files and "config.yaml" in files:
        runs.append(root)
  return sorted(set(runs))


def _read(run_dir: str, name: str, read):
  try:
    return read(os.path.join(run_dir, name))
  except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: JSONDecodeError.
    why = str(e).splitlines()[0][:120] if str(e) else repr(e)
    raise DataError(f"{os.path.join(run_dir, name)} cannot be read ({why}); re-run that run with trainer.resume=true to "
                    "rewrite it, or leave its directory out") from None


def load_runs(run_dirs: Sequence[str]) -> List[Dict[str, Any]]:
  """[{"dir", "config" (flat), "metrics" (summary + eval, numbers only), "history"}]."""
  runs = []
  for d in run_dirs:
    metrics = {**_read(d, "summary.json", read_json), **_read(d, "eval.json", read_json)}
    cfg = _read(d, "config.yaml", lambda _: record.effective_config(d))
    runs.append({"dir": d, "config": flatten_config(OmegaConf.to_container(cfg)), "status": "finished", "error": "",
                 "metrics": {k: v for k, v in metrics.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None},
                 "history": _read(d, "metrics.jsonl", lambda p: read_jsonl(p) if os.path.exists(p) else [])})
  return runs


def group_runs(runs: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
  """Label ("key=value, ...", over the differing config keys but the seed) -> runs."""
  keys = [k for k in differing_keys([r["config"] for r in runs]) if not k.startswith(_IGNORED)]
  groups: Dict[str, List[Dict[str, Any]]] = {}
  for run in runs:
    label = ", ".join(f"{k}={run['config'].get(k)}" for k in keys) or run["config"].get("name", "all")
    run["group"] = label
    groups.setdefault(label, []).append(run)
  return groups


def aggregate(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
  """metric -> {n, mean, std, min, max} over `runs` (std 0 for a single run)."""
  out = {}
  for key in sorted(set().union(*(r["metrics"] for r in runs))):
    values = [float(r["metrics"][key]) for r in runs if key in r["metrics"]]
    out[key] = {"n": len(values), "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}
  return out


def _markdown(groups: Dict[str, Dict[str, Dict[str, float]]], metrics: Sequence[str]) -> str:
  lines = ["| group | runs | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
  for label, agg in groups.items():
    n = max((a["n"] for a in agg.values()), default=0)
    cells = [f"{agg[m]['mean']:.4g} ± {agg[m]['std']:.2g}" if m in agg else "–" for m in metrics]
    lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _plot_curves(runs: List[Dict[str, Any]], path: str) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ae_research.figures import save_figure  # pylint: disable=g-import-not-at-top  (sets the Agg backend)
  labels = sorted({r["group"] for r in runs})
  colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for ax, key in zip(axes, ("train/loss", "eval/loss")):
    for run in runs:
      rows = [r for r in run["history"] if key in r and ("epoch" in r or key == "train/loss")]
      if rows:
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], color=colours[run["group"]], alpha=0.8, lw=1)
    ax.set(xlabel="step", ylabel=key, title=key)
    ax.set_yscale("log")
  handles = [plt.Line2D([], [], color=colours[label], label=label) for label in labels]
  fig.legend(handles=handles, loc="lower center", ncol=min(len(labels), 3), fontsize=8)
  save_figure(fig, path, dpi=110, rect=(0, 0.06 * (1 + (len(labels) - 1) // 3), 1, 1))


def _failed_section(failed: List[Dict[str, Any]]) -> str:
  lines = [f"\n## Failed jobs ({len(failed)})\n", "| job | status | run_dir | reason |", "|---|---|---|---|"]
  lines += [f"| {f.get('job')} | failed | {f.get('run_dir')} | {str(f.get('error')).replace('|', '/')} |"
            for f in failed]
  return "\n".join(lines) + "\n"


def compare(paths: Sequence[str], out: Optional[str] = None, metrics: Sequence[str] = ()) -> Optional[str]:
  """Writes the comparison of the runs under `paths` (and the failed jobs recorded there) into `out`;
  returns `out` (None: neither runs nor failures)."""
  run_dirs = find_runs(paths)
  failed = [f for p in paths for f in failures.read(p)]
  if not run_dirs and not failed:
    return None
  out = out or (os.path.join(paths[0], "comparison") if len(paths) == 1 else "comparison")
  runs = load_runs(run_dirs)  # Before anything is written: an unreadable run stops here.
  os.makedirs(out, exist_ok=True)
  groups = group_runs(runs)
  aggregates = {label: aggregate(members) for label, members in groups.items()}
  varying = sorted({k for k in differing_keys([r["config"] for r in runs]) if not k.startswith(("logger.",))})
  metric_keys = sorted(set().union(*(r["metrics"] for r in runs)))
  with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["run_dir", "group", "status", "error", *varying, *metric_keys])
    for r in runs:
      w.writerow([r["dir"], r["group"], r["status"], r["error"], *(r["config"].get(k) for k in varying),
                  *(r["metrics"].get(k, "") for k in metric_keys)])
    for fail in failed:
      w.writerow([fail.get("run_dir"), " ".join(fail.get("overrides", [])), "failed", fail.get("error"),
                  *([""] * (len(varying) + len(metric_keys)))])
  with open(os.path.join(out, "groups.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["group", "metric", "n", "mean", "std", "min", "max"])
    for label, agg in aggregates.items():
      for key, a in agg.items():
        w.writerow([label, key, a["n"], a["mean"], a["std"], a["min"], a["max"]])
  with open(os.path.join(out, "groups.json"), "w") as f:
    json.dump(aggregates, f, indent=2)
  headline = list(metrics) or [m for m in HEADLINE if any(m in a for a in aggregates.values())]
  with open(os.path.join(out, "comparison.md"), "w") as f:
    f.write(f"# Comparison of {len(runs)} runs in {len(groups)} groups\n\nMean ± std over each group's runs "
            f"(seeds). Per-run values: runs.csv; every metric: groups.csv.\n\n")
    f.write(_markdown(aggregates, headline))
    if failed:
      f.write(_failed_section(failed))
    f.write("\n![curves](curves.png)\n")
  if runs:
    _plot_curves(runs, os.path.join(out, "curves.png"))
  return out


class CompareCallback(Callback):
  """Writes `<sweep dir>/comparison/` when a multirun ends (any launcher or sweeper), and ends the
  multirun with a non-zero exit status when some of its jobs failed.

  Being the app's callback (conf/config.yaml), it also checks that a run's or sweep's directory
  can be written before Hydra writes to it: Hydra's own failure there is a traceback.
  """

  @staticmethod
  def _writable(directory: str) -> None:
    try:
      check_writable(directory)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  def on_run_start(self, config, **kwargs) -> None:
    self._writable(str(config.hydra.run.dir))

  def on_multirun_start(self, config, **kwargs) -> None:
    self._writable(str(config.hydra.sweep.dir))
    failures.clear(str(config.hydra.sweep.dir))  # This multirun's failures only.

  def on_multirun_end(self, config, **kwargs) -> None:
    sweep_dir = str(config.hydra.sweep.dir)
    try:
      out = compare([sweep_dir])
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    if out:
      print(f"comparison of the sweep's runs: {out}/comparison.md")
    failed = failures.read(sweep_dir)
    if failed:
      first = failed[0]
      print(f"error: {len(failed)} job(s) of the sweep failed (job #{first.get('job')}: {first.get('error')}); "
            f"{out}/comparison.md lists them; fix them and re-run the sweep with trainer.resume=true", file=sys.stderr)
      sys.exit(2)


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(prog="ae-compare", description=__doc__.splitlines()[0])
  parser.add_argument("paths", nargs="+", help="run directories, or directories holding them (a sweep)")
  parser.add_argument("--out", help="output directory (default: <dir>/comparison or ./comparison)")
  parser.add_argument("--metrics", nargs="*", default=(), help=f"columns of comparison.md (default: {HEADLINE})")
  args = parser.parse_args(argv)
  missing = [p for p in args.paths if not os.path.isdir(p)]
  if missing:
    sys.exit(f"error: not a directory: {', '.join(missing)}; pass run or sweep directories")
  try:
    out = compare(args.paths, args.out, args.metrics)
  except UserError as e:
    sys.exit(f"error: {e}")
  if out is None:
    sys.exit(f"error: no finished runs (config.yaml + summary.json) under {', '.join(args.paths)}")
  print(f"wrote {out}/comparison.md, runs.csv, groups.csv, groups.json, curves.png")


if __name__ == "__main__":
  main()
