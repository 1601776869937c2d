"""The generative models on 64x64 dSprites (issue 24): a β-VAE, a VQ-VAE and a FactorVAE, each on
disentanglement_lib's conv net (conf/model/backbone/locatello_conv.yaml), through the framework's trainer
against the same networks and objectives in PyTorch eager (bench/torch_generative.py), with and without
`torch.set_flush_denormal(True)`, where a Python with torch is at hand (bench/conv.py's `torch_python`).
Alternating rounds: each model ours, then PyTorch, then the next model. PyTorch reads a spec written from
the very config our run trains (sizes, loss weights, optimisers, batch size), so the two cannot drift apart;
both sides' parameter counts are reported as the check that the networks match.
"""
import json
import math
import os
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ae_research.bench.conv import QUICK_CONV_CHUNKS, torch_python
from ae_research.bench.processes import run_json_script
from ae_research.errors import ConfigError

TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_generative.py")
TORCH_WARMUP = 5  # torch_generative.WARMUP: steps PyTorch takes before its clock starts.
# name -> (what it is, overrides, --quick's smaller latent / discriminator). VQ-VAE's experiment trains on
# pythae's ResNet; here it gets the same conv net as the other two, so the rows differ in the latent only.
MODELS = {
    "vae": ("β-VAE (β = 4), 10-D Gaussian latent", ["experiment=beta_vae"], []),
    "vq_vae": ("VQ-VAE, 16 x 64-D codes, 512 EMA entries", ["experiment=vq_vae", "model/backbone=locatello_conv"],
               ["model.latent.tokens=2", "model.latent.dim=8", "model.latent.num_codes=16"]),
    "factor_vae": ("FactorVAE (γ = 10), 6 x 1000 discriminator", ["experiment=factor_vae"],
                   ["model.adversary.hidden=[32,32]"]),
}
# (overrides, steps, log_every_steps). Full: dSprites (its test split only feeds the end-of-run loss, kept
# small: evaluation is not what is timed), 30 steps in compiled chunks of 10; --quick: 16x16 blocks, a net of
# 4-8 channels, 4 steps, chunks as loops.
FULL = (["dataset=dsprites", "dataset.num_test=1000"], 30, 10)
QUICK = (["dataset=blocks", "dataset.image_size=16", "dataset.max_size=12", "dataset.num_train=512",
          "dataset.num_test=64", "model.encoder.channels=[4,4,8,8]", "model.encoder.dense=16",
          "model.decoder.channels=[8,4,4]", "model.decoder.dense=16", QUICK_CONV_CHUNKS], 4, 2)
# What the PyTorch script implements, by loss term: the framework's term class each name must be.
TERMS = {"nll": "NegativeLogLikelihood", "kl": "GaussianKL", "commitment": "Commitment",
         "tc": "FactorTotalCorrelation", "discriminator": "DiscriminatorLoss"}


def _target(node) -> str:
  return str(node["_target_"]).rsplit(".", 1)[-1] if node is not None else "None"


def _require(ok: bool, what: str) -> None:
  if not ok:
    raise ConfigError(f"bench/torch_generative.py does not implement {what}")


def _adam(o) -> Dict[str, float]:
  _require(o.name == "adam" and o.get("schedule", "constant") == "constant" and o.get("clip_grad_norm") is None,
           f"optimizer {o.name} (schedule {o.get('schedule')}, clipping {o.get('clip_grad_norm')})")
  return {"learning_rate": float(o.learning_rate), "b1": float(o.get("b1", 0.9)), "b2": float(o.get("b2", 0.999)),
          "eps": float(o.get("eps", 1e-8))}  # optax.adam's defaults, which PyTorch's Adam shares.


def torch_spec(cfg) -> Dict[str, Any]:
  """What torch_generative.py builds, read from the config our run trains; a part it cannot build fails here."""
  m, loss = cfg.model, cfg.loss
  _require(_target(m.encoder) == "LocatelloConvEncoder" and _target(m.decoder) == "LocatelloConvDecoder",
           f"backbones {_target(m.encoder)} / {_target(m.decoder)}")
  _require(_target(m.likelihood) == "BernoulliLikelihood" and _target(m.get("prior")) in ("StandardNormalPrior", "None")
           and m.samples == 1, f"likelihood {_target(m.likelihood)}, prior {_target(m.get('prior'))}")
  _require(all(TERMS.get(k) == _target(t) for k, t in loss.terms.items()) and loss.batch_reduction == "mean"
           and not any((loss.get("warmup_steps") or {}).values()), f"the loss terms {dict(loss.terms)}")
  kind = _target(m.latent)
  _require(kind in ("GaussianLatent", "VectorQuantisedLatent"), f"latent {kind}")
  latent = ({"kind": "gaussian", "dim": m.latent.dim} if kind == "GaussianLatent" else
            {"kind": "vq", **{k: m.latent[k] for k in ("tokens", "dim", "num_codes", "decay", "restart_below")}})
  spec = {"encoder": {k: list(m.encoder[k]) if k != "dense" else m.encoder[k] for k in ("channels", "kernel_sizes",
                                                                                        "dense")},
          "decoder": {"channels": list(m.decoder.channels), "kernel_size": m.decoder.kernel_size,
                      "dense": m.decoder.dense},
          "latent": latent, "weights": {k: float(v) for k, v in loss.weights.items()},
          "batch_size": cfg.dataset.batch_size, "optimizer": _adam(cfg.optimizer), "adversary": None}
  if m.get("adversary") is not None:
    spec["adversary"] = {"hidden": list(m.adversary.hidden), "negative_slope": m.adversary.negative_slope}
    spec["adversary_optimizer"] = _adam(cfg.param_groups.adversary.optimizer)
  return spec


def param_count(cfg, image_shape: Sequence[int]) -> int:
  """The model's trainable parameters (nnx.Param: a VQ codebook is model state, not counted), from shapes
  alone: nothing is initialised or compiled."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from ae_research.config import build  # pylint: disable=g-import-not-at-top
  model = nnx.eval_shape(lambda: build(cfg.model, "model", input_shape=tuple(image_shape), rngs=nnx.Rngs(0)))
  return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def save_images(data, count: int, path: str) -> None:
  """`count` random training images (enough that PyTorch never repeats a batch), float32 as our steps
  read them: the whole of dSprites as floats would take 12 GB."""
  rows = np.sort(np.random.default_rng(0).choice(len(data.train["image"]), count, replace=False))
  np.save(path, np.asarray(data.train["image"][rows], np.float32))


def time_torch(python: str, images: str, spec_path: str, steps: int, flush_denormal: bool) -> Dict[str, Any]:
  return run_json_script(python, TORCH_SCRIPT, images, spec_path, steps, int(flush_denormal))


def bench_generative(quick: bool, workdir: str, train: Callable[[Sequence[str], str], Dict[str, Any]],
                     rounds: int = 2, bar=None, steps: Optional[int] = None) -> Dict[str, Any]:
  """`rounds` rounds of: per model, ours, then PyTorch (flush_denormal off, on); medians, and the first
  round's compile seconds. `steps` overrides the size's (e.g. a smoke test)."""
  from ae_research.config import build, compose_config  # pylint: disable=g-import-not-at-top
  from ae_research.data.dsprites import release_images  # pylint: disable=g-import-not-at-top
  base, default_steps, log_every = QUICK if quick else FULL
  steps = steps or default_steps
  # Full: every run compiles, so compile s is a first run's. --quick keeps the persistent cache: its numbers are
  # not judged, and the test suite's next run then compiles nothing.
  # One device: PyTorch's side runs on this machine's CPU threads.
  trainer = [f"trainer.max_steps={steps}", f"trainer.log_every_steps={min(log_every, steps)}", "trainer.devices=1"]
  trainer += [] if quick else ["trainer.compilation_cache=false"]
  overrides = {name: model + base + (small if quick else []) + trainer for name, (_, model, small) in MODELS.items()}
  cfgs = {name: compose_config(o) for name, o in overrides.items()}
  python, why = torch_python()
  data = build(next(iter(cfgs.values())).dataset, "dataset")  # The same images for every model.
  shape = tuple(data.image_shape)
  images = os.path.join(workdir, "generative_images.npy")
  count = min(max(c.dataset.batch_size for c in cfgs.values()) * (steps + TORCH_WARMUP), len(data.train["image"]))
  if python:
    save_images(data, count, images)
  del data  # dSprites: 3 GB of bytes that each run (a process of its own) loads again: this one lets go of them.
  release_images()
  ours: Dict[str, List[Dict[str, Any]]] = {name: [] for name in MODELS}
  theirs: Dict[str, Dict[bool, List[Dict[str, Any]]]] = {name: {False: [], True: []} for name in MODELS}
  for i in range(rounds):
    for name, cfg in cfgs.items():
      if bar is not None:
        bar.set_description(f"generative {name} ({i + 1}/{rounds})")
      ours[name].append(train(overrides[name], os.path.join(workdir, f"generative_{name}_{i}")))
      spec_path = os.path.join(workdir, f"torch_{name}.json")
      with open(spec_path, "w") as f:
        json.dump(torch_spec(cfg), f)
      for flush in (False, True) if python else ():
        theirs[name][flush].append(time_torch(python, images, spec_path, steps, flush))
  median = statistics.median
  rows = []
  for name, (what, _, _) in MODELS.items():
    rates = [r["train/samples_per_s"] for r in ours[name]]
    row = {"model": name, "what": what, "batch_size": cfgs[name].dataset.batch_size,
           "params": param_count(cfgs[name], shape), "torch_params": None, "samples_per_s": median(rates),
           "all_samples_per_s": rates, "compile_s": ours[name][0]["time/compile_s"], "torch": None,
           "peak_rss_mib": median(r["peak_rss_mib"] for r in ours[name]) if "peak_rss_mib" in ours[name][0] else None,
           "ours_over_torch_flush": None}
    if python:
      runs = theirs[name]
      row["torch_params"] = runs[False][0]["params"]
      row["torch"] = {("flush_denormal" if flush else "default"): {
          "samples_per_s": median(r["samples_per_s"] for r in rs), "all_samples_per_s": [r["samples_per_s"] for r in rs],
          "peak_rss_mib": median(r["peak_rss_mib"] for r in rs), "version": rs[0]["version"],
          "threads": rs[0]["threads"]} for flush, rs in runs.items()}
      row["ours_over_torch_flush"] = median(o / t["samples_per_s"] for o, t in zip(rates, runs[True]))
    rows.append(row)
  return {"dataset": cfgs["vae"].dataset.name, "image_shape": list(shape), "steps": steps, "rounds": rounds,
          "torch_images": count if python else None, "torch_skipped": why, "models": rows}


NOTE = ("PyTorch differs in what does not change the computation: its own random draws (reparameterisation "
        "noise, FactorVAE's permutations, VQ restarts, batch order) and initial weights (the same LeCun-normal "
        "law); it trains on a float32 sample of {images} training images, ours on the whole set as bytes scaled "
        "inside the step; the flattening before the dense layers is NCHW and the transposed-conv kernels are in "
        "PyTorch's layout (the same functions with permuted weights); ours runs log_every_steps steps per "
        "compiled call (lax.scan), PyTorch one eager step at a time.")


def markdown(gen: Optional[Dict[str, Any]]) -> List[str]:
  if not gen:
    return []
  shape = "x".join(map(str, gen["image_shape"]))
  lines = ["", f"Generative models on {gen['dataset']} {shape}, disentanglement_lib's conv net ({gen['steps']} "
           f"steps; median of {gen['rounds']} alternating rounds; ours: the trainer's samples/s over every step "
           f"after compilation, PyTorch: after {TORCH_WARMUP} warm-up steps; compile s: the first round's):", "",
           "| model | batch | parameters (ours / PyTorch) | ours samples/s | compile s | PyTorch (default) "
           "| PyTorch (flush denormal) | ours / PyTorch-flush | peak RSS MiB (ours / PyTorch flush) |",
           "|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda v, f: "–" if v is None else format(v, f)
  for r in gen["models"]:
    t = r["torch"] or {}
    lines.append(f"| {r['model']} ({r['what']}) | {r['batch_size']} | {r['params']:,} / {fmt(r['torch_params'], ',')} "
                 f"| {r['samples_per_s']:,.0f} | {r['compile_s']:.1f} "
                 f"| {fmt(t.get('default', {}).get('samples_per_s'), ',.0f')} "
                 f"| {fmt(t.get('flush_denormal', {}).get('samples_per_s'), ',.0f')} "
                 f"| {fmt(r['ours_over_torch_flush'], '.2f')}{'x' if r['ours_over_torch_flush'] else ''} "
                 f"| {fmt(r.get('peak_rss_mib'), ',.0f')} / "
                 f"{fmt(t.get('flush_denormal', {}).get('peak_rss_mib'), ',.0f')} |")
  if gen["torch_skipped"]:
    return lines + ["", f"PyTorch rows skipped: {gen['torch_skipped']}."]
  first = gen["models"][0]["torch"]["default"]
  return lines + ["", f"PyTorch {first['version']} eager, {first['threads']} threads. "
                  + NOTE.format(images=f"{gen['torch_images']:,}")]
