"""`ae-bench [--quick] [--out DIR]`: training speed of the framework on the devices present.

For the deep 2-D MLP AE (SPEC 1), the VAE (SPEC 3a) and the conv AE (SPEC 5), through the
framework's own trainer (`train_and_evaluate`, evaluation off): compile time, steady-state
samples/s (median epoch after the first), FLOP/s from XLA's cost analysis of one step, as a
fraction of a peak measured in the same run (a large fp32 matmul); one device vs all
devices; population throughput for K members in one program vs K sequential runs; and the MLP
rows (bench/mlp.py): the hand-written `lax.scan` loop, the trainer in process, `ae-train` as a subprocess
with default logging and PyTorch eager, in alternating rounds on the same data. Population rows
time K members in one program against K actual runs one after another (steady samples/s
and wall time), and a single run with and without the member axis (vmapped K = 1), which
is how the trainer's layout for K = 1 was chosen. The end-to-end row runs `make demo`'s
config in a fresh process, cold and then warm (persistent compilation cache), split into
start-up, compilation, training, evaluation and figures. The conv rows (bench/conv.py) time the conv
AE with model.conv_impl=auto against xla, and against PyTorch eager when torch is at hand. The generative
rows (bench/generative.py) time a β-VAE, a VQ-VAE and a FactorVAE on 64x64 dSprites (disentanglement_lib's
conv net) against the same networks and objectives in PyTorch eager, with both sides' parameter counts; the
β-grid row (bench/beta_grid.py) trains beta_vae's kl {1, 2, 4, 8} x seed {0, 1, 2} as one population against
the 12 runs in sequence. Writes bench.json and bench.md.
`--quick` shrinks everything (8x8 digits or 16x16 blocks, narrow nets, a few steps) for the test suite.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from tqdm import tqdm

from ae_research.bench import beta_grid
from ae_research.bench import conv as conv_bench
from ae_research.bench import generative
from ae_research.bench import metric_times
from ae_research.bench import mlp as mlp_bench
from ae_research.bench import processes
from ae_research.config import compose_config
from ae_research.process import freeze_collector_at_exit

EXTRA = []
COMMON = ["evaluation.enabled=false", "trainer.figures=false", "logger.wandb.mode=disabled", "logger.progress=false",
          "logger.jsonl=false"]
MODELS = {  # name -> (SPEC section, overrides: full, quick)
    "mlp_2d": ("SPEC 1 deep MLP AE 784-128-64-10-2", ["trainer.epochs=4"],
               ["dataset=digits", "trainer.epochs=3"]),
    "mlp_2d_streamed": ("SPEC 1, streamed from the host (dataset.on_device=false)",
                        ["trainer.epochs=4", "dataset.on_device=false"],
                        ["dataset=digits", "trainer.epochs=3", "dataset.on_device=false"]),
    "vae": ("SPEC 3a VAE 784-512-2 (blocks)", ["experiment=vae_blocks_2d", "trainer.epochs=4"],
            ["experiment=vae_blocks_2d", "debug=default", "trainer.epochs=3", "dataset.num_train=5120",
             "dataset.num_test=512"]),
    "conv": ("SPEC 5 conv AE (colourisation)", ["experiment=conv_colorize", "trainer.max_steps=24",
                                                 "trainer.log_every_steps=6"],
             ["experiment=conv_colorize", "debug=default", "trainer.max_steps=6", "trainer.log_every_steps=3",
              "dataset.size=16", "dataset.num_train=592", "dataset.num_test=148", "model.channels=[4,8,8]",
              "model.output_shape=[16,16,3]", conv_bench.QUICK_CONV_CHUNKS]),
}


def matmul_peak(n: Optional[int] = None, repeats: int = 5) -> float:
  """FLOP/s of the best of `repeats` n x n fp32 matmuls on the default device."""
  n = n or (1024 if jax.default_backend() == "cpu" else 8192)
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


def step_flops(cfg) -> Optional[float]:
  """XLA's FLOP count of one training step of `cfg`'s model (None if the backend gives none).

  Counted on the lowered (unoptimised) program, which needs no compilation: within 0.2-4% of the
  compiled program's count for the three models here (fusion moves elementwise work, not matmuls or
  convolutions), and 0.6-1.2 s of compilation cheaper per model on this CPU (2026-11-24)."""
  from ae_research import step as step_lib  # pylint: disable=g-import-not-at-top
  from ae_research.state import create_train_state  # pylint: disable=g-import-not-at-top
  from ae_research.training.setup import setup  # pylint: disable=g-import-not-at-top
  s = setup(cfg, devices=1)
  state = create_train_state(s.params, s.model_state, s.tx, cfg.seed)
  batch = {k: v[:s.plan.batch_size] for k, v in s.data.train.items() if k != "label"}
  train_step = step_lib.make_train_step(s.loss_fn(), s.tx, s.update_mask)
  cost = jax.jit(train_step).lower(state, batch, jax.random.PRNGKey(0)).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) if cost and cost.get("flops") else None


def _train(overrides: Sequence[str], workdir: str) -> Dict[str, Any]:
  from ae_research.training import train_and_evaluate  # pylint: disable=g-import-not-at-top
  return train_and_evaluate(compose_config(list(overrides) + COMMON), workdir)


def _train_alone(overrides: Sequence[str], workdir: str) -> Dict[str, Any]:
  """`_train` in a process of its own: the summary and the run's peak memory (`peak_rss_mib`)."""
  return processes.train_in_process_of_its_own(list(overrides) + COMMON, workdir)


def bench_models(quick: bool, workdir: str, peak: float, bar) -> List[Dict[str, Any]]:
  rows = []
  n = len(jax.devices())
  for name, (spec, full, small) in MODELS.items():
    overrides = small if quick else full
    cfg = compose_config(list(overrides) + COMMON)
    flops = step_flops(cfg)
    # 1 vs all devices for every model; --quick compares them for the MLP only.
    for devices in sorted({1, n}) if not quick or name == "mlp_2d" else [n]:
      bar.set_description(f"{name} on {devices} device(s)")
      summary = _train(list(overrides) + [f"trainer.devices={devices}"], os.path.join(workdir, f"{name}_{devices}"))
      rate = summary["train/samples_per_s"]
      flop_s = flops * rate / cfg.dataset.batch_size if flops else None
      rows.append({"model": name, "spec": spec, "devices": devices, "batch_size": cfg.dataset.batch_size,
                   "compile_s": summary["time/compile_s"], "samples_per_s": rate,
                   "step_flops": flops, "flop_per_s": flop_s, "fraction_of_peak": flop_s / peak if flop_s else None})
      bar.update()
  return rows


def bench_population(quick: bool, workdir: str, sizes: Sequence[int], bar) -> List[Dict[str, Any]]:
  """K members (seeds 0..K-1, learning rates alternating) in one program vs the same K runs one after
  another: steady samples/s of all members together, and wall time of the whole training."""
  from ae_research.training import train  # pylint: disable=g-import-not-at-top
  overrides = list(MODELS["mlp_2d"][2 if quick else 1]) + COMMON
  rows = []
  # Member i is the same run for every K: each is trained on its own once, and the K-run sequence of a
  # larger K reuses the smaller K's runs (their wall times too) instead of training them again.
  sequential: List[Tuple[float, float]] = []  # (steady samples/s, wall s) of run i alone
  for k in sizes:
    cfgs = [compose_config(overrides + [f"seed={i}", f"optimizer.learning_rate={(1e-3, 3e-3)[i % 2]}"])
            for i in range(k)]
    bar.set_description(f"population K={k}")
    t = time.perf_counter()
    summaries = train(cfgs, [os.path.join(workdir, f"population_{k}", str(i)) for i in range(k)],
                      stacked=True)
    population_s = time.perf_counter() - t
    rate = summaries[0].get("population/samples_per_s") or summaries[0]["train/samples_per_s"]
    bar.set_description(f"{k} sequential runs")
    for i in range(len(sequential), k):
      t = time.perf_counter()
      run_rate = train([cfgs[i]], [os.path.join(workdir, "sequential", str(i))])[0]["train/samples_per_s"]
      sequential.append((run_rate, time.perf_counter() - t))
    sequential_s = sum(wall for _, wall in sequential[:k])
    sequential_rate = k / sum(1.0 / r for r, _ in sequential[:k])  # All K runs' samples over their steady times.
    rows.append({"members": k, "samples_per_s": rate, "per_member_samples_per_s": rate / k,
                 "sequential_samples_per_s": sequential_rate, "speedup_vs_sequential": rate / sequential_rate,
                 "wall_s": population_s, "sequential_wall_s": sequential_s})
    bar.update()
  return rows


PHASES = ("to_first_step", "compile", "train", "eval", "figures", "checkpoint")


def bench_end_to_end(quick: bool, workdir: str, bar) -> List[Dict[str, Any]]:
  """`make demo`'s run (the default config; --quick: digits, 40 steps) as a user starts it, in a fresh
  process, twice with one new compilation cache: cold (compiles) and warm (the second run of a config).
  Wall time from outside the process, and its own phase timings from summary.json."""
  overrides = ["dataset=digits", "debug=default", "logger.wandb.mode=disabled"] if quick else []
  # A new cache directory for both: baselines and compiled programs (JAX_COMPILATION_CACHE_DIR would win).
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  env["AE_CACHE_DIR"] = os.path.join(workdir, "cache")
  rows = []
  for attempt in ("cold", "warm"):
    bar.set_description(f"end to end ({attempt})")
    run_dir = os.path.join(workdir, f"demo_{attempt}")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ae_research.train", *overrides, "logger.progress=false",
                    f"hydra.run.dir={run_dir}"], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    with open(os.path.join(run_dir, "summary.json")) as f:
      summary = json.load(f)
    row = {"run": attempt, "wall_s": wall, **{p: summary.get(f"time/{p}_s") for p in PHASES}}
    row["wall_over_compile_and_train"] = wall / (row["compile"] + row["train"])
    rows.append(row)
    bar.update()
  return rows


def markdown(result: Dict[str, Any]) -> str:
  fmt = lambda v, f: "–" if v is None else format(v, f)
  lines = [f"# ae-bench ({'quick' if result['quick'] else 'full'}) — {result['device']}", "",
           f"Peak (best fp32 {result['peak_matmul_n']}² matmul): {result['peak_flop_per_s'] / 1e9:.1f} GFLOP/s. "
           f"Measured {result['date']}.", "",
           "| model | devices | batch | compile s | samples/s | GFLOP/s | % of peak |", "|---|---|---|---|---|---|---|"]
  for r in result["models"]:
    lines.append(f"| {r['model']} ({r['spec']}) | {r['devices']} | {r['batch_size']} | {r['compile_s']:.2f} | "
                 f"{r['samples_per_s']:,.0f} | {fmt(r['flop_per_s'] and r['flop_per_s'] / 1e9, '.2f')} | "
                 f"{fmt(r['fraction_of_peak'] and 100 * r['fraction_of_peak'], '.1f')} |")
  lines += mlp_bench.markdown(result["mlp"])
  lines += ["", "| population members K | samples/s, one program | K runs in sequence | ratio | wall s, one program "
            "| wall s, in sequence |", "|---|---|---|---|---|---|"]
  for r in result["population"]:
    lines.append(f"| {r['members']} | {r['samples_per_s']:,.0f} | {r['sequential_samples_per_s']:,.0f} | "
                 f"{r['speedup_vs_sequential']:.2f}x | {r['wall_s']:.1f} | {r['sequential_wall_s']:.1f} |")
  lines += ["", "K = 1 as a one-member population (the step vmapped over a member axis) runs "
            f"{result['population'][0]['speedup_vs_sequential']:.2f}x the plain single-run program."
            if result["population"] and result["population"][0]["members"] == 1 else ""]
  if result.get("end_to_end"):
    lines += ["", "End to end (`make demo`'s run in a fresh process; seconds; `to first step` includes imports, data "
              "and compilation):", "", "| run | wall | to first step | compile | train | eval | figures | checkpoints "
              "| wall / (compile + train) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["end_to_end"]:
      lines.append(f"| {r['run']} | {r['wall_s']:.1f} | " + " | ".join(fmt(r[p], ".2f") for p in PHASES)
                   + f" | {r['wall_over_compile_and_train']:.2f}x |")
  if result.get("metrics"):
    lines += ["", *metric_times.markdown(result["metrics"])]
  lines += conv_bench.markdown(result.get("conv_impl"))
  lines += generative.markdown(result.get("generative")) + beta_grid.markdown(result.get("beta_grid"))
  return "\n".join(lines) + "\n"


def run_bench(quick: bool = False, out: Optional[str] = None, population_sizes: Sequence[int] = ()) -> Dict[str, Any]:
  sizes = list(population_sizes) or ([1, 4] if quick else [1, 4, 16])
  out = out or os.path.join("runs", "bench", datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
  os.makedirs(out, exist_ok=True)
  n_models = len(MODELS) + (len(MODELS) if not quick else 1) * (len(jax.devices()) > 1)
  with tempfile.TemporaryDirectory() as workdir, tqdm(total=n_models + 6 + len(sizes), unit="run") as bar:
    peak = matmul_peak()
    result = {"quick": quick, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "device": f"{len(jax.devices())} x {jax.devices()[0].device_kind} ({jax.default_backend()}), "
                        f"{os.cpu_count()} CPU cores, {platform.machine()}",
              "jax": jax.__version__, "peak_matmul_n": 1024 if jax.default_backend() == "cpu" else 8192,
              "peak_flop_per_s": peak}
    # First (the β grid trains in this process, and its runs turn on the persistent compilation cache for the
    # rest of it): the generative and conv rows run in processes of their own (their peak memory is theirs),
    # and their full runs ask for no cache, so their compile seconds are cold compiles.
    result["generative"] = generative.bench_generative(quick, workdir, _train_alone, rounds=1 if quick else 2, bar=bar)
    bar.update()
    result["beta_grid"] = beta_grid.bench_beta_grid(quick, workdir, COMMON, bar)
    bar.update()
    result["models"] = bench_models(quick, workdir, peak, bar)
    result["conv_impl"] = conv_bench.bench_conv_impls(quick, workdir, _train_alone, pairs=1 if quick else 3, bar=bar)
    bar.update()
    mlp_overrides = list(MODELS["mlp_2d"][2 if quick else 1]) + COMMON
    result["mlp"] = mlp_bench.bench_mlp(mlp_overrides, 3 if quick else 4, workdir, _train, pairs=1 if quick else 5,
                                        bar=bar)
    result["population"] = bench_population(quick, workdir, sizes, bar)
    result["end_to_end"] = bench_end_to_end(quick, workdir, bar)
    result["metrics"] = metric_times.bench_metrics(500 if quick else 10_000)
  with open(os.path.join(out, "bench.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(out, "bench.md"), "w") as f:
    f.write(markdown(result))
  return result


def main(argv: Optional[Sequence[str]] = None) -> None:
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger("absl").setLevel(logging.WARNING)
  parser = argparse.ArgumentParser(prog="ae-bench", description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
  parser.add_argument("--out", help="output directory (default: runs/bench/<time>)")
  parser.add_argument("--population", type=int, nargs="*", default=(), help="population sizes (default 1 4 16)")
  args = parser.parse_args(argv)
  freeze_collector_at_exit()
  out = args.out or os.path.join("runs", "bench", datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
  result = run_bench(args.quick, out, args.population)
  print(markdown(result))
  print(f"wrote {out}/bench.json and bench.md")


if __name__ == "__main__":
  main()
