"""The β grid of issue 24: `experiment=beta_vae` with loss.weights.kl in {1, 2, 4, 8} x seed {0, 1, 2}, the 12
runs as one population (one compiled program: `training.train(cfgs, workdirs, stacked=True)`) against the same
12 runs one after another, as bench_population (bench/cli.py) times its K: steady samples/s of all members
together, and wall time of the whole grid (setup, compilation, training, the end-of-run loss, checkpoints).

Full: the experiment's model (disentanglement_lib's conv net, Bernoulli decoder, batch 64, Adam 1e-4) on
28x28 blocks, Fashion-MNIST's shape, so the very network beta_vae trains by default, with a 1,000-image test
split: the end-of-run loss on Fashion-MNIST's 10,000 test images took 122 s of the population's 201 s
(2026-12-03, 10 steps, loaded 2-core machine) and would have been most of what this row times. 20 steps in
chunks of 5; every run compiles (no persistent cache, whose contents would make the row depend on what
ran before).
--quick: a 16-unit MLP backbone on 8x8 digits (too small for the conv net), kl {1, 4} x seed 0, 4 steps, with
the persistent cache (the test suite's next run compiles nothing): a 2 x 2 grid cost 1.5-3 s more per suite.
"""
import os
import time
from typing import Any, Dict, List, Optional, Sequence

BETAS, SEEDS = (1, 2, 4, 8), (0, 1, 2)
# (overrides, log_every_steps, betas, seeds)
FULL = (["experiment=beta_vae", "dataset=blocks", "dataset.num_train=10000", "dataset.num_test=1000",
         "trainer.max_steps=20", "trainer.compilation_cache=false"], 5, BETAS, SEEDS)
QUICK = (["experiment=beta_vae", "dataset=digits", "model/backbone=mlp", "model.encoder.hidden=[16]",
          "trainer.max_steps=4"], 2, (1, 4), (0,))


def _finished(results: List[Any]) -> List[Dict[str, Any]]:
  """The runs' summaries; a run that failed raises its error (a bench row of a failed run means nothing)."""
  for r in results:
    if isinstance(r, Exception):
      raise r
  return results


def bench_beta_grid(quick: bool, workdir: str, common: Sequence[str], bar=None,
                    steps: Optional[int] = None) -> Dict[str, Any]:
  """The grid as one population, then as len(grid) runs in sequence; `common`: the bench's overrides
  (evaluation and logging off), `steps` overrides the size's (e.g. a smoke test)."""
  from ae_research.config import compose_config  # pylint: disable=g-import-not-at-top
  from ae_research.training import train  # pylint: disable=g-import-not-at-top
  overrides, log_every, betas, seeds = QUICK if quick else FULL
  overrides = list(overrides) + list(common) + ([f"trainer.max_steps={steps}"] if steps else [])
  cfg0 = compose_config(overrides)
  overrides.append(f"trainer.log_every_steps={min(log_every, cfg0.trainer.max_steps)}")
  grid = [(b, s) for b in betas for s in seeds]
  cfgs = [compose_config(overrides + [f"loss.weights.kl={b}", f"seed={s}"]) for b, s in grid]
  if bar is not None:
    bar.set_description(f"β grid: {len(grid)} members in one program")
  t = time.perf_counter()
  population = _finished(train(cfgs, [os.path.join(workdir, "grid", str(i)) for i in range(len(grid))],
                               stacked=True))
  population_s = time.perf_counter() - t
  sequential = []
  for i, cfg in enumerate(cfgs):
    if bar is not None:
      bar.set_description(f"β grid: run {i + 1}/{len(grid)} alone")
    t = time.perf_counter()
    summary = _finished(train([cfg], [os.path.join(workdir, "grid_sequential", str(i))]))[0]
    sequential.append((summary["train/samples_per_s"], time.perf_counter() - t, summary["time/compile_s"]))
  rate = population[0]["population/samples_per_s"]
  sequential_rate = len(grid) / sum(1.0 / r for r, _, _ in sequential)  # All runs' samples over their steady times.
  sequential_s = sum(wall for _, wall, _ in sequential)
  return {"dataset": cfg0.dataset.name, "steps": cfg0.trainer.max_steps,
          "batch_size": cfg0.dataset.batch_size, "backbone": cfg0.model.encoder._target_.rsplit(".", 1)[-1],
          "betas": list(betas), "seeds": list(seeds), "members": len(grid),
          "compilation_cache": bool(cfg0.trainer.compilation_cache),
          "population": {"samples_per_s": rate, "wall_s": population_s,
                         "compile_s": population[0]["time/compile_s"]},
          "sequential": {"samples_per_s": sequential_rate, "wall_s": sequential_s,
                         "compile_s": sum(c for _, _, c in sequential),
                         "all_samples_per_s": [r for r, _, _ in sequential]},
          "samples_per_s_ratio": rate / sequential_rate, "wall_ratio": sequential_s / population_s}


def markdown(grid: Optional[Dict[str, Any]]) -> List[str]:
  if not grid:
    return []
  n, p, s = grid["members"], grid["population"], grid["sequential"]
  betas, seeds = ", ".join(map(str, grid["betas"])), ", ".join(map(str, grid["seeds"]))
  cache = "the persistent compilation cache on" if grid["compilation_cache"] else "every run compiling"
  return ["", f"β grid: beta_vae ({grid['backbone']}) with loss.weights.kl in {{{betas}}} x seed {{{seeds}}}, {n} runs "
          f"of {grid['steps']} steps (batch {grid['batch_size']}) on {grid['dataset']}, {cache}:", "",
          "| the grid as | samples/s (all members) | wall s | compile s |", "|---|---|---|---|",
          f"| one population (one program) | {p['samples_per_s']:,.0f} | {p['wall_s']:.1f} | {p['compile_s']:.1f} |",
          f"| {n} runs in sequence | {s['samples_per_s']:,.0f} | {s['wall_s']:.1f} | {s['compile_s']:.1f} |", "",
          f"One program: **{grid['samples_per_s_ratio']:.2f}x** the samples/s of the runs in sequence, which take "
          f"{grid['wall_ratio']:.2f}x its wall time."]
