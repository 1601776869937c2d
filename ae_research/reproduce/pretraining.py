"""Pre-training, then supervised fine-tuning: the comparison behind seeds 001 and 004 (Vincent et
al. 2008; Erhan et al. 2010; Masci et al. 2011, table 1).

Phase 1 trains the autoencoders (one per pre-training method) on every training image, no
labels. Phase 2 fine-tunes, for each label count and seed, a classifier made from each
autoencoder's encoder (`trainer.init_from`) and the same classifier from random weights.
The runs of one label count differ only in seed and initialisation, so they train as one
population (one compiled program). The claim: pre-training lowers the test error, by most
where labels are fewest.
"""
import os
import statistics
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ae_research.reproduce.claims import Claim, Metrics

LABEL_COUNTS = (100, 1000, 10000, 60000)
SEEDS = (0, 1, 2)
RANDOM = "random"


def label(init: str, count: int, seed: int) -> str:
  return f"ft_{init}_n{count}_s{seed}"


def finetune_runs(sources: Mapping[str, Optional[str]], steps: int, batch_size: int, learning_rate: float,
                  counts: Sequence[int] = LABEL_COUNTS, seeds: Sequence[int] = SEEDS,
                  extra: Sequence[str] = ()) -> Dict[str, List[str]]:
  """Phase 2: {run label: overrides}; `sources` maps an initialisation's name to the phase-1 run it
  loads (None: random weights)."""
  runs = {}
  for count in counts:
    for init, source in sources.items():
      for seed in seeds:
        runs[label(init, count, seed)] = [
            "task=classify", f"task.labelled={count}", f"seed={seed}", f"dataset.batch_size={batch_size}",
            "trainer.epochs=1000000", f"trainer.max_steps={steps}", f"trainer.eval_every_steps={max(steps // 4, 1)}",
            f"trainer.checkpoint_every_steps={steps}", "trainer.keep_checkpoints=1", "trainer.greedy_epochs=0",
            "trainer.figures=false", "optimizer=adam", f"optimizer.learning_rate={learning_rate}",
            *([f"trainer.init_from={{dirs[{source}]}}"] if source else []), *extra]
  return runs


def table(metrics: Metrics, inits: Sequence[str], counts: Sequence[int]) -> Dict[str, float]:
  """Mean and std over seeds of the test error: {"error/<init>/<count>": mean, "std/<init>/<count>": std}."""
  out = {}
  for init in inits:
    for count in counts:
      errors = [m["test/error"] for key, m in metrics.items() if key.startswith(f"ft_{init}_n{count}_s")]
      if errors:
        out[f"error/{init}/{count}"] = statistics.fmean(errors)
        out[f"std/{init}/{count}"] = statistics.stdev(errors) if len(errors) > 1 else 0.0
        out[f"seeds/{init}/{count}"] = len(errors)
  return out


def gains(derived: Mapping[str, float], init: str, counts: Sequence[int]) -> List[float]:
  """Test-error reduction (points) of `init` over random initialisation at each label count."""
  return [100 * (derived[f"error/{RANDOM}/{n}"] - derived[f"error/{init}/{n}"]) for n in counts]


def verdict(derived: Mapping[str, float], methods: Sequence[str], counts: Sequence[int]) -> str:
  """holds: every method lowers the error at every count, most at the fewest labels; mixed: some do
  at the fewest labels; does not hold: none do."""
  per_method = []
  for method in methods:
    g = gains(derived, method, counts)
    per_method.append((all(x > 0 for x in g) and g[0] >= max(g), g[0] > 0))
  if all(full for full, _ in per_method):
    return "holds"
  return "mixed" if any(few for _, few in per_method) else "does not hold"


def counts_run(metrics: Metrics) -> List[int]:
  """The label counts among the fine-tuning runs (labels ft_<init>_n<count>_s<seed>)."""
  return sorted({int(k.split("_n")[1].split("_")[0]) for k in metrics if k.startswith("ft_")})


def counts_derived(derived: Mapping[str, float]) -> List[int]:
  return sorted({int(k.split("/")[2]) for k in derived if k.startswith(f"error/{RANDOM}/")})


def claim(methods: Sequence[str]) -> Claim:
  def measured(m):
    d = m["derived"]
    counts = counts_derived(d)
    parts = "; ".join(f"{method}: " + ", ".join(f"{g:+.1f}" for g in gains(d, method, counts)) for method in methods)
    return (f"test error of random initialisation minus pre-trained, in points, at {', '.join(map(str, counts))} "
            f"labels - {parts} (mean of {int(d[f'seeds/{RANDOM}/{counts[0]}'])} seeds; table below)")
  return Claim("Unsupervised pre-training lowers the supervised test error, by most where labels are fewest.",
               measured, lambda m: verdict(m["derived"], methods, counts_derived(m["derived"])))


def derive(metrics: Metrics, methods: Sequence[str]) -> Dict[str, float]:
  counts = counts_run(metrics)
  out = table(metrics, [RANDOM, *methods], counts)
  for method in methods:
    if all(f"error/{i}/{n}" in out for i in (RANDOM, method) for n in counts):
      out.update({f"gain/{method}/{n}": g for n, g in zip(counts, gains(out, method, counts))})
  return out


def report(derived: Mapping[str, float], inits: Sequence[str], counts: Sequence[int], report_dir: str,
           title: str) -> Tuple[List[str], Dict[str, str]]:
  """A markdown table (test error, mean +- std over seeds) and the error-vs-labels plot."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ae_research.figures import save_figure  # pylint: disable=g-import-not-at-top
  lines = ["| labels | " + " | ".join(inits) + " |", "|---|" + "---|" * len(inits)]
  for n in counts:
    cells = [f"{100 * derived[f'error/{i}/{n}']:.1f} ± {100 * derived[f'std/{i}/{n}']:.1f}"
             if f"error/{i}/{n}" in derived else "–" for i in inits]
    lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
  lines += ["", f"Test error (%) over {int(derived.get(f'seeds/{inits[0]}/{counts[0]}', 0))} seeds per cell."]
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for init in inits:
    shown = [n for n in counts if f"error/{init}/{n}" in derived]
    ax.errorbar(shown, [100 * derived[f"error/{init}/{n}"] for n in shown],
                yerr=[100 * derived[f"std/{init}/{n}"] for n in shown], marker="o", capsize=3, label=init)
  ax.set(xscale="log", xlabel="labelled training examples", ylabel="test error (%)")
  ax.legend()
  path = save_figure(fig, os.path.join(report_dir, "figures", "error_vs_labels.png"), title)
  return lines, {"error_vs_labels": path}
