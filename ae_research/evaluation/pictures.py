"""Figures of what a model generates and how its code is organised: samples from its prior, latent
traversals and interpolations between test pairs. Evaluators without metrics: listed in
`evaluation.evaluators` like the others (their PNGs go to figures/ and W&B)."""
import os

import jax
import numpy as np

from ae_research import batched
from ae_research.evaluation.base import Evaluator
from ae_research.metrics.distributions import DiagonalGaussian
from ae_research.models.capabilities import Generative, Quantised, Reconstructs, StochasticEncoder, has


class PriorSamples(Evaluator):
  """A rows x cols grid of decoded samples of the model's prior (samples.png)."""
  needs = (Generative,)
  in_default = False  # A figure to ask for: it costs a decode per run.

  def __init__(self, rows: int = 8, cols: int = 8):
    self.rows, self.cols = rows, cols

  def __call__(self, ctx):
    return {}

  def figures(self, ctx, figures_dir):
    from ae_research.figures.grids import labelled_grid  # pylint: disable=g-import-not-at-top
    from flax import nnx  # pylint: disable=g-import-not-at-top
    model = nnx.merge(ctx.s.graphdef, ctx.variables)
    images = np.asarray(model.sample(self.rows * self.cols, jax.random.PRNGKey(ctx.seed)))
    return {"samples": labelled_grid(images, self.rows, self.cols, os.path.join(figures_dir, "samples.png"),
                                     ctx.data.value_range, f"{ctx.name}: samples of the prior")}


def _per_dim_order(ctx) -> np.ndarray:
  """Code dimensions, most informative first: by mean KL to the prior for a stochastic encoder, else by
  variance over the test codes."""
  codes = ctx.test_codes
  if has(ctx.model, StochasticEncoder):
    posterior = ctx.apply(_posterior, ctx.variables, {"image": ctx.test["image"][:2000]})
    kl = DiagonalGaussian(posterior["mean"], posterior["log_var"]).kl_per_dim().mean(axis=0)
    return np.argsort(-np.asarray(kl))
  return np.argsort(-codes.var(axis=0))


def _posterior(model, batch, rng, extra):
  del rng, extra
  q = model.posterior(batch["image"])
  return {"mean": q.mean.reshape(q.mean.shape[0], -1), "log_var": q.log_var.reshape(q.log_var.shape[0], -1)}


class Traversals(Evaluator):
  """Latent traversals (traversals.png): from a test example's code, each of the `dims` most informative
  dimensions (by KL, or by variance) swept from -3 sigma to +3 sigma in `steps` steps (sigma: the prior's
  for a generative model, the dimension's spread over the test codes otherwise), the others fixed."""
  needs = (Reconstructs,)
  in_default = False

  def __init__(self, dims: int = 10, steps: int = 11, example: int = 0):
    self.dims, self.steps, self.example = dims, steps, example

  def unavailable(self, s):
    if has(s.model, Quantised) or len(s.aux_shapes["code"]) != 2:
      return "the code is not a continuous vector"
    return None

  def __call__(self, ctx):
    return {}

  def figures(self, ctx, figures_dir):
    from ae_research.figures.grids import labelled_grid  # pylint: disable=g-import-not-at-top
    codes = ctx.test_codes
    order = _per_dim_order(ctx)[:self.dims]
    generative = has(ctx.model, Generative)
    centre = np.zeros(codes.shape[1], np.float32) if generative else codes.mean(axis=0)
    sigma = np.ones(codes.shape[1], np.float32) if generative else codes.std(axis=0)
    base = codes[self.example]
    grid = np.repeat(base[None, None], len(order), 0).repeat(self.steps, 1)  # (dims, steps, D)
    offsets = np.linspace(-3.0, 3.0, self.steps, dtype=np.float32)
    for row, d in enumerate(order):
      grid[row, :, d] = centre[d] + offsets * sigma[d]
    decoded = ctx.apply.images(batched.decode, ctx.variables, grid.reshape(-1, codes.shape[1]))
    return {"traversals": labelled_grid(decoded, len(order), self.steps, os.path.join(figures_dir, "traversals.png"),
                                        ctx.data.value_range, f"{ctx.name}: latent traversals (-3 to +3 sigma)",
                                        row_labels=[f"z[{d}]" for d in order],
                                        col_labels=[f"{o:+.1f}" for o in offsets])}


class Interpolations(Evaluator):
  """Linear interpolations in code space between `pairs` pairs of test examples, `steps` steps each
  (interpolations.png): the end columns are the pair's own reconstructions."""
  needs = (Reconstructs,)
  in_default = False

  def __init__(self, pairs: int = 6, steps: int = 10):
    self.pairs, self.steps = pairs, steps

  def __call__(self, ctx):
    return {}

  def figures(self, ctx, figures_dir):
    from ae_research.figures.grids import labelled_grid  # pylint: disable=g-import-not-at-top
    codes = ctx.apply.images(batched.encode, ctx.variables, ctx.test["image"][:2 * self.pairs])
    codes = codes.reshape(2 * self.pairs, -1)
    t = np.linspace(0.0, 1.0, self.steps, dtype=np.float32)[None, :, None]
    mixed = (1 - t) * codes[0::2, None] + t * codes[1::2, None]  # (pairs, steps, D)
    shape = ctx.s.aux_shapes["code"][1:]
    decoded = ctx.apply.images(batched.decode, ctx.variables, mixed.reshape(-1, *shape))
    return {"interpolations": labelled_grid(decoded, self.pairs, self.steps,
                                            os.path.join(figures_dir, "interpolations.png"), ctx.data.value_range,
                                            f"{ctx.name}: interpolations between test pairs")}
