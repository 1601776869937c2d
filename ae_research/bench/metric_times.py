"""Wall time of each evaluation metric on `n` samples (10,000 by default, the evaluators' default; --quick 500).

The inputs are synthetic but shaped as in a run: a 10-D code that is a noisy random-linear function of
dSprites-like factors (5 factors of 3, 6, 40, 32, 32 values) for the disentanglement metrics, and
128-D features of two Gaussian samples for the sample-quality metrics (the feature network's width).
FactorVAE and betaVAE scores draw factors from a sampler whose observation is the factor vector, with
that random-linear code as the representation (no rendering: the scores' own cost). Each metric runs once to compile (not
timed), then once timed: what a second evaluation costs in a long run.
"""
import time
from typing import Callable, Dict, List

import jax
import numpy as np

from ae_research.metrics import disentanglement as dis
from ae_research.metrics import ground_truth as gt
from ae_research.metrics import sample_quality as sq

FACTOR_SIZES = (3, 6, 40, 32, 32)
CODE_DIM, FEATURE_DIM = 10, 128


def _timed(fn: Callable[[], object]) -> float:
  jax.block_until_ready(fn())  # Compiles (and warms the caches); not counted.
  t = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t


class _FactorSampler:
  """A `GroundTruthSampler` whose observation is the factor vector itself (the code is computed from it)."""
  factor_sizes = FACTOR_SIZES
  factor_names = tuple(f"factor_{k}" for k in range(len(FACTOR_SIZES)))

  def sample_factors(self, n, rng):
    return np.stack([rng.integers(0, s, n) for s in FACTOR_SIZES], axis=1)

  def observations(self, factors):
    return factors.astype(np.float32)


def bench_metrics(n: int = 10_000, seed: int = 0) -> List[Dict[str, float]]:
  """One row per metric: {"metric", "samples", "seconds"}."""
  rng = np.random.default_rng(seed)
  mixing = rng.normal(size=(len(FACTOR_SIZES), CODE_DIM)).astype(np.float32)
  scale = 1.0 / np.asarray(FACTOR_SIZES, np.float32)[:, None]

  def represent(observations):
    return np.asarray(observations) @ (scale * mixing) + 0.05 * rng.normal(size=(len(observations), CODE_DIM))

  sampler = _FactorSampler()
  factors = sampler.sample_factors(n, rng)
  codes = represent(factors).astype(np.float32)
  half = n // 2
  real = rng.normal(size=(n, FEATURE_DIM)).astype(np.float32)
  fake = (rng.normal(size=(n, FEATURE_DIM)) + 0.1).astype(np.float32)
  subset = min(1000, n // 2)
  runs = {
      "disent/mig": lambda: dis.mig(codes, factors)["mig"],
      "disent/modularity": lambda: dis.modularity(codes, factors),
      "disent/dci (forest)": lambda: dis.dci(codes[:half], factors[:half], codes[half:], factors[half:])["disentanglement"],
      "disent/sap": lambda: dis.sap(codes[:half], factors[:half], codes[half:], factors[half:])["sap"],
      "disent/factor_vae_score": lambda: gt.factor_vae_score(represent, sampler, np.random.default_rng(1),
                                                             num_train=n, num_eval=half, num_variance_estimate=n)["eval_accuracy"],
      "disent/beta_vae_score": lambda: gt.beta_vae_score(represent, sampler, np.random.default_rng(1),
                                                         num_train=n, num_eval=half)["eval_accuracy"],
      "samples/fid": lambda: sq.fid(real, fake),
      "samples/kid": lambda: sq.kid(real, fake, jax.random.key(0), subset_size=subset)[0],
      "samples/precision+recall": lambda: sq.precision_recall(real, fake)[0],
      "samples/density+coverage": lambda: sq.density_coverage(real, fake)[0],
  }
  return [{"metric": name, "samples": n, "seconds": _timed(fn)} for name, fn in runs.items()]


def markdown(rows: List[Dict[str, float]]) -> List[str]:
  lines = ["## Evaluation metrics (one timed call after a warm-up; synthetic inputs shaped as a run's)", "",
           "| metric | samples | seconds |", "|---|---|---|"]
  return lines + [f"| {r['metric']} | {r['samples']:,} | {r['seconds']:.2f} |" for r in rows]
