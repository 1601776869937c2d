"""Disentanglement of a model's code from the ground-truth factors of its data (dSprites and the like).

The scores and their defaults are disentanglement_lib's (metrics/disentanglement.py and
metrics/ground_truth.py cite each definition). Codes are the model's `encode` (a posterior mean) of
observations drawn from the data's ground-truth sampler (every factor combination once, factors
uniform and independent), or, for data with factors but no complete grid, of random training
examples. Samples are drawn with the fixed evaluation seed, so runs with different seeds are scored on
the same observations; scores that draw the same number of observations share them.
"""
import os
from typing import Dict, Tuple

import numpy as np

from ae_research import batched
from ae_research.evaluation.base import FACTORS, PROBE_SEED, EvalContext, Evaluator
from ae_research.metrics import disentanglement as dm
from ae_research.metrics import ground_truth as gt
from ae_research.models.capabilities import Reconstructs

CHUNK = 4096  # Observations encoded per call: one compiled shape.
PARTS = ("train", "test")  # Independent draws of codes (a fitted classifier's training and test points).


def represent(ctx: EvalContext):
  """observations -> (n, D) codes (the model's `encode`, flattened), batched on the device."""
  return lambda obs: ctx.apply.images(batched.encode, ctx.variables, obs).reshape(len(obs), -1)


def factor_codes(ctx: EvalContext, num: int, part: str) -> Tuple[np.ndarray, np.ndarray]:
  """(num, D) codes and their (num, K) factors; `part` names independent draws ("train", "test")."""
  def draw():
    rng = np.random.default_rng([PROBE_SEED, num, PARTS.index(part)])
    sampler = ctx.data.ground_truth
    if sampler is not None:
      return gt.sample_codes(represent(ctx), sampler, num, rng, chunk_size=CHUNK)
    rows = rng.choice(ctx.data.num_train, size=min(num, ctx.data.num_train), replace=False)
    return represent(ctx)(ctx.data.train["image"][np.sort(rows)]), ctx.data.train["factors"][np.sort(rows)]
  return ctx.once(("factor_codes", num, part), draw)


class _FactorEvaluator(Evaluator):
  needs = (Reconstructs, FACTORS)
  in_default = False  # Chosen per experiment: several take seconds and the data must have factors.


class MIG(_FactorEvaluator):
  """disent/mig: the mutual information gap (Chen et al. 2018), codes discretised into `bins`
  histogram bins; figure: the code-dimension x factor mutual-information heat map it is computed from."""

  def __init__(self, num_samples: int = 10_000, bins: int = 20):
    self.num_samples, self.bins = num_samples, bins

  def _result(self, ctx) -> Dict:
    return ctx.once(("mig", self.num_samples, self.bins), lambda: dm.mig(*factor_codes(ctx, self.num_samples, "train"),
                                                                          bins=self.bins))

  def __call__(self, ctx):
    return {"disent/mig": float(self._result(ctx)["mig"])}

  def figures(self, ctx, figures_dir):
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    from ae_research.figures import save_figure  # pylint: disable=g-import-not-at-top
    mi = np.asarray(self._result(ctx)["mi"])
    names = list(ctx.data.factor_names or range(mi.shape[1]))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 0.32 * mi.shape[0] + 1.8))
    image = ax.imshow(mi, aspect="auto", cmap="viridis")
    ax.set(xticks=range(len(names)), xticklabels=names, yticks=range(mi.shape[0]), xlabel="factor",
           ylabel="code dimension")
    fig.colorbar(image, ax=ax, label="mutual information (nats)")
    return {"mutual_information": save_figure(fig, os.path.join(figures_dir, "mutual_information.png"),
                                              f"{ctx.name}: MIG {self._result(ctx)['mig']:.3f}")}


class Modularity(_FactorEvaluator):
  """disent/modularity (Ridgeway & Zemel 2018), from the same mutual-information matrix as MIG."""

  def __init__(self, num_samples: int = 10_000, bins: int = 20):
    self.num_samples, self.bins = num_samples, bins

  def __call__(self, ctx):
    return {"disent/modularity": dm.modularity(*factor_codes(ctx, self.num_samples, "train"), bins=self.bins)}


class DCI(_FactorEvaluator):
  """disent/dci_disentanglement, disent/dci_completeness, disent/dci_informativeness (Eastwood & Williams
  2018): from the feature importances of one classifier per factor fitted on `num_train` codes
  (`importance`: "forest", which agrees with dlib's gradient-boosted trees within 0.05, or "gbt", dlib's
  own, minutes per call); informativeness is test accuracy on `num_test` codes."""

  def __init__(self, num_train: int = 10_000, num_test: int = 5_000, importance: str = "forest"):
    self.num_train, self.num_test, self.importance = num_train, num_test, importance

  def check(self, s):
    from ae_research.errors import ConfigError  # pylint: disable=g-import-not-at-top
    if self.importance not in dm.IMPORTANCE_MODELS:
      raise ConfigError(f"evaluation.{self.name}.importance={self.importance!r}: choose "
                        f"{', '.join(dm.IMPORTANCE_MODELS)}")

  def __call__(self, ctx):
    out = dm.dci(*factor_codes(ctx, self.num_train, "train"), *factor_codes(ctx, self.num_test, "test"),
                 importance=self.importance, seed=PROBE_SEED)
    return {f"disent/dci_{k}": float(out[k]) for k in ("disentanglement", "completeness", "informativeness")}


class SAP(_FactorEvaluator):
  """disent/sap: the separated attribute predictability (Kumar et al. 2018), from one linear SVM per
  (code dimension, factor) fitted on `num_train` codes and scored on `num_test`."""

  def __init__(self, num_train: int = 10_000, num_test: int = 5_000):
    self.num_train, self.num_test = num_train, num_test

  def __call__(self, ctx):
    out = dm.sap(*factor_codes(ctx, self.num_train, "train"), *factor_codes(ctx, self.num_test, "test"))
    return {"disent/sap": float(out["sap"])}


class _SamplerEvaluator(_FactorEvaluator):
  def unavailable(self, s):
    return None if s.data.ground_truth is not None else "the data set has no ground-truth sampler (a complete grid)"


class FactorVAEScore(_SamplerEvaluator):
  """disent/factor_vae_score (Kim & Mnih 2018): majority-vote accuracy of predicting which factor a batch
  of `batch_size` observations shares from the code dimension of least normalised variance."""

  def __init__(self, batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
               num_variance_estimate: int = 10_000):
    self.kwargs = dict(batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                       num_variance_estimate=num_variance_estimate)

  def __call__(self, ctx):
    out = gt.factor_vae_score(represent(ctx), ctx.data.ground_truth, np.random.default_rng(PROBE_SEED),
                              chunk_size=CHUNK, **self.kwargs)
    return {"disent/factor_vae_score": out["eval_accuracy"]}


class BetaVAEScore(_SamplerEvaluator):
  """disent/beta_vae_score (Higgins et al. 2017): logistic-regression accuracy of predicting which factor
  pairs of observations share from their mean absolute code difference over a batch."""

  def __init__(self, batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000):
    self.kwargs = dict(batch_size=batch_size, num_train=num_train, num_eval=num_eval)

  def __call__(self, ctx):
    out = gt.beta_vae_score(represent(ctx), ctx.data.ground_truth, np.random.default_rng(PROBE_SEED),
                            chunk_size=CHUNK, **self.kwargs)
    return {"disent/beta_vae_score": out["eval_accuracy"]}
