"""How good a model's samples (and reconstructions) look, on the features of the data set's feature network.

`samples/*` compare decoded samples of the model's prior with the test images; `samples_gmm/*` samples of
an ex-post density instead: a Gaussian mixture fitted to the codes of training images (Ghosh et al. 2020,
RAE; Chadebec et al. 2022, pythae), which any autoencoder can be sampled with; `recon/*` the test
images' reconstructions, so deterministic and generative models compare on one scale. The metrics:
FID, KID (and its standard deviation over subsets), precision/recall (Kynkäänniemi et al. 2019),
density/coverage (Naeem et al. 2020); `metrics/sample_quality.py` defines them. NOT Inception features:
see `features.py`.
"""
import os
from typing import Dict

import jax
import numpy as np

from ae_research import batched
from ae_research.evaluation.base import CLASS_LABELS, Evaluator
from ae_research.evaluation.features import feature_network
from ae_research.metrics import expost
from ae_research.metrics.sample_quality import sample_quality
from ae_research.models.capabilities import Generative, Quantised, Reconstructs, has

SAMPLERS = ("prior", "expost_gmm")
PREFIX = {"prior": "samples", "expost_gmm": "samples_gmm"}


class _Quality(Evaluator):
  needs = (Reconstructs, CLASS_LABELS)  # The feature network learns the data set's labels.
  in_default = False

  def __init__(self, num_samples: int = 10_000, weights=None):
    self.num_samples, self.weights = num_samples, weights

  def _network(self, ctx):
    return ctx.once(("feature_network", self.weights),
                    lambda: feature_network(ctx.data, weights=self.weights, cache=ctx.cache))

  def _real(self, ctx) -> np.ndarray:
    images = ctx.test["image"][:self.num_samples]
    return ctx.once(("real_features", len(images)), lambda: self._network(ctx)(images))

  def _scores(self, ctx, fake_images, prefix: str) -> Dict[str, float]:
    real = self._real(ctx)
    out = sample_quality(real, self._network(ctx)(fake_images), jax.random.PRNGKey(ctx.seed),
                         subset_size=min(1000, len(real), len(fake_images)))
    scores = {f"{prefix}/{k}": float(v) for k, v in out.items()}
    scores[f"{prefix}/feature_accuracy"] = float(self._network(ctx).accuracy or float("nan"))
    return scores


class SampleQuality(_Quality):
  """`samples/{fid,kid,kid_std,precision,recall,density,coverage}` of `num_samples` samples of the prior
  (sampler=prior) or of an ex-post Gaussian mixture of `components` components fitted to `max_train`
  training codes (sampler=expost_gmm: `samples_gmm/*`); figure: a grid of the samples."""

  def __init__(self, sampler: str = "prior", num_samples: int = 10_000, components: int = 10,
               max_train: int = 10_000, weights=None):
    super().__init__(num_samples, weights)
    self.sampler, self.components, self.max_train = sampler, components, max_train

  def check(self, s):
    from ae_research.errors import ConfigError  # pylint: disable=g-import-not-at-top
    if self.sampler not in SAMPLERS:
      raise ConfigError(f"evaluation.{self.name}.sampler={self.sampler!r}: choose {', '.join(SAMPLERS)}")

  def unavailable(self, s):
    if self.sampler == "prior" and not has(s.model, Generative):
      return f"samples its prior; model {type(s.model).__name__} has none (use sampler=expost_gmm)"
    if self.sampler == "expost_gmm" and (has(s.model, Quantised) or len(s.aux_shapes["code"]) != 2):
      return "fits a Gaussian mixture to continuous vector codes"
    return None

  def samples(self, ctx) -> np.ndarray:
    def draw():
      key = jax.random.PRNGKey(ctx.seed + 2)
      if self.sampler == "prior":
        from flax import nnx  # pylint: disable=g-import-not-at-top
        model = nnx.merge(ctx.s.graphdef, ctx.variables)
        return np.concatenate([np.asarray(model.sample(min(2000, self.num_samples - i), jax.random.fold_in(key, i)))
                               for i in range(0, self.num_samples, 2000)])
      mixture = expost.fit_gaussian_mixture(ctx.train_codes(self.max_train), self.components, seed=ctx.seed)
      codes = np.asarray(mixture.sample(key, self.num_samples))
      return ctx.apply.images(batched.decode, ctx.variables, codes)
    return ctx.once(("samples", self.sampler, self.num_samples), draw)

  def __call__(self, ctx):
    return self._scores(ctx, self.samples(ctx), PREFIX[self.sampler])

  def figures(self, ctx, figures_dir):
    from ae_research.figures.grids import labelled_grid  # pylint: disable=g-import-not-at-top
    name = PREFIX[self.sampler]
    what = "its prior" if self.sampler == "prior" else f"an ex-post {self.components}-component Gaussian mixture"
    return {name: labelled_grid(self.samples(ctx)[:64], 8, 8, os.path.join(figures_dir, f"{name}.png"),
                                ctx.data.value_range, f"{ctx.name}: samples of {what}")}


class ReconstructionQuality(_Quality):
  """`recon/{fid,kid,...}`: the test images' reconstructions against the test images themselves."""

  def __call__(self, ctx):
    images = ctx.test["image"][:self.num_samples]
    return self._scores(ctx, ctx.apply.images(batched.reconstruct, ctx.variables, images), "recon")
