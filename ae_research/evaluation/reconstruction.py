"""How well a model reconstructs: the test pass (per-example errors and codes), and the evaluators
that read it or the model's outputs: reconstruction, noisy input, PCA and colourisation baselines,
the encoder's Jacobian norm.
"""
import math
import os
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ae_research import batched
from ae_research.data.corruption import GaussianNoise
from ae_research.evaluation import baselines
from ae_research.evaluation.base import PAIRED_TARGETS, PROBE_SEED, EvalContext, Evaluator
from ae_research.errors import ConfigError
from ae_research.losses.base import EncoderView, reconstruction_target
from ae_research.losses.regularizers import jacobian_sq_norm
from ae_research.metrics.arrays import per_example
from ae_research.metrics.likelihoods import bernoulli_nll_values, mse, psnr
from ae_research.models.capabilities import Generative, Reconstructs, has


def _path(figures_dir: str, name: str) -> str:
  return os.path.join(figures_dir, f"{name}.png")


def per_example_reconstruction(model, batch, rng, extra, *, corruption, value_range) -> Dict[str, jax.Array]:
  """MSE, PSNR (and BCE for sigmoid outputs of [0, 1] data; the corrupted input's PSNR under a
  corruption) of each example, and its code. The model runs deterministically (a VAE decodes its mean)."""
  del extra
  noise_rng, _ = jax.random.split(rng)  # The second key is the likelihood's (likelihood.py).
  clean = batch["image"]
  inputs = clean if corruption is None else corruption(noise_rng, clean)
  recon, aux = model(inputs)
  target = reconstruction_target(aux, batch, clean)
  lo, hi = value_range
  error = mse(recon, target)
  out = {"mse": error, "psnr": psnr(error, hi - lo), "code": per_example(aux["code"])}
  if model.output_activation == "sigmoid" and lo >= 0.0:
    out["bce"] = bernoulli_nll_values(aux["logits"], target).mean(axis=1)
  if corruption is not None and inputs.shape == target.shape:
    out["psnr_corrupted"] = psnr(mse(inputs, target), hi - lo)
  return out


def test_pass(ctx: EvalContext) -> Dict[str, np.ndarray]:
  """`per_example_reconstruction` over the test split (corrupted as in training), as host arrays."""
  return ctx.apply(per_example_reconstruction, ctx.variables, ctx.test, jax.random.PRNGKey(ctx.seed),
                   corruption=ctx.s.corruption, value_range=tuple(ctx.data.value_range))


def code_size(s) -> int:
  """Values in one example's flattened code (aux["code"])."""
  return math.prod(s.aux_shapes["code"][1:])


class Reconstruction(Evaluator):
  """test/mse, test/psnr (test/bce, test/psnr_corrupted where they apply) and code statistics; figures:
  inputs and outputs (or grey, predicted and true colour), denoising under the training corruption,
  the test codes by label, and the decoder over a 30x30 grid of 2-D codes."""
  needs = (Reconstructs,)

  def __call__(self, ctx):
    per = ctx.test_pass()
    out = {f"test/{k}": float(np.mean(v)) for k, v in per.items() if k != "code"}
    codes = per["code"]
    out.update({"codes/dim": int(codes.shape[1]), "codes/mean_activation": float(codes.mean()),
                "codes/frac_near_zero": float(np.mean(np.abs(codes) < 1e-2)),
                "codes/frac_units_dead": float(np.mean(np.all(np.abs(codes) < 1e-6, axis=0)))})
    return out

  def figures(self, ctx, figures_dir):
    from ae_research.figures.grids import manifold_codes, manifold_grid  # pylint: disable=g-import-not-at-top
    from ae_research.figures.images import image_rows  # pylint: disable=g-import-not-at-top
    from ae_research.figures.latent import code_scatter  # pylint: disable=g-import-not-at-top
    data, name, n = ctx.data, ctx.name, ctx.figure_examples
    shown = ctx.test["image"][:n]
    recon = ctx.apply.images(batched.reconstruct, ctx.variables, shown)
    out = {}
    if data.has_paired_targets:
      out["colorization"] = image_rows([("grey input", shown), ("predicted colour", recon),
                                        ("true colour", ctx.test["target"][:n])], _path(figures_dir, "colorization"),
                                       data.value_range, title=name)
    else:
      out["reconstructions"] = image_rows([("input", shown), ("reconstruction", recon)],
                                          _path(figures_dir, "reconstructions"), data.value_range, title=name)
      if ctx.s.corruption is not None:
        out["denoising"] = denoising_figure(ctx, ctx.s.corruption, "corrupted", figures_dir, n)
    codes = ctx.test_codes
    out["codes"] = code_scatter(codes, ctx.test["label"], _path(figures_dir, "codes"), data.label_name,
                                title=f"{name}: test-set codes", class_names=data.class_names)
    if codes.shape[1] == 2 and len(ctx.s.aux_shapes["code"]) == 2 and ctx.s.model.stage == 0:
      extent = (-3.0, 3.0, -3.0, 3.0) if has(ctx.model, Generative) else tuple(
          v for d in range(2) for v in np.percentile(codes[:, d], [1, 99]))
      decoded = ctx.apply.images(batched.decode, ctx.variables, manifold_codes(30, *extent))
      out["manifold"] = manifold_grid(decoded, 30, extent, _path(figures_dir, "manifold"), data.value_range,
                                      title=f"{name}: decoder over a 30x30 code grid")
    return out


def denoising_figure(ctx: EvalContext, noise, label: str, figures_dir: str, n: int) -> str:
  from ae_research.figures.images import image_rows  # pylint: disable=g-import-not-at-top
  shown = ctx.test["image"][:n]
  noisy = np.asarray(noise(jax.random.PRNGKey(ctx.seed), shown))
  return image_rows([("clean", shown), (label, noisy), ("reconstructed", ctx.apply.images(batched.reconstruct,
                                                                                          ctx.variables, noisy))],
                    _path(figures_dir, "denoising"), ctx.data.value_range, title=f"{ctx.name}: denoising")


class NoisyInput(Evaluator):
  """Gaussian noise of std `sigma` (clipped to the data's range) on the test images of a model trained
  without corruption, to see whether it removes it (seed 000's "image denoising" figure):
  test/noisy_input_psnr and test/noisy_reconstruction_psnr. In `default` when `sigma` is set."""
  needs = (Reconstructs,)

  def __init__(self, sigma: Optional[float] = None):
    self.sigma = sigma

  def included_by_default(self, s):
    return self.sigma is not None

  def unavailable(self, s):
    if s.corruption is not None:
      return "the model is trained with a corruption; its test pass already measures denoising"
    return "the data have paired targets" if s.data.has_paired_targets else None

  def check(self, s):
    if self.sigma is None or self.sigma < 0:
      raise ConfigError(f"evaluation.{self.name}.sigma={self.sigma}: set a noise std >= 0")

  def noise(self, s) -> GaussianNoise:
    lo, hi = s.data.value_range
    return GaussianNoise(sigma=float(self.sigma), clip=True, low=lo, high=hi)

  def __call__(self, ctx):
    noisy = ctx.apply(per_example_reconstruction, ctx.variables, ctx.test, jax.random.PRNGKey(ctx.seed),
                      corruption=self.noise(ctx.s), value_range=tuple(ctx.data.value_range))
    return {"test/noisy_input_psnr": float(noisy["psnr_corrupted"].mean()),
            "test/noisy_reconstruction_psnr": float(noisy["psnr"].mean())}

  def figures(self, ctx, figures_dir):
    return {"denoising": denoising_figure(ctx, self.noise(ctx.s), "noisy", figures_dir, ctx.figure_examples)}


class PCABaseline(Evaluator):
  """baseline/pca_mse (PCA at the code's dimension, SPEC 1's linear baseline) and
  test/mse_over_pca_mse, for codes smaller than the input that reconstruct the clean input."""
  needs = (Reconstructs,)

  def __init__(self, max_train: int = 20_000):
    self.max_train = max_train

  def unavailable(self, s):
    if s.data.has_paired_targets or s.corruption is not None:
      return "the model does not reproduce its clean input (paired targets or a corruption)"
    if code_size(s) >= math.prod(s.data.image_shape):
      return "the code is not smaller than the input"
    return None

  def __call__(self, ctx):
    pca = baselines.pca_mse(ctx.data.train["image"], ctx.test["image"], ctx.test_codes.shape[1],
                            max_train=self.max_train, seed=PROBE_SEED, enabled=ctx.cache)
    return {"baseline/pca_mse": pca, "test/mse_over_pca_mse": float(np.mean(ctx.test_pass()["mse"])) / pca}


class ColourisationBaseline(Evaluator):
  """baseline/grey_as_colour_mse: the grey input copied to the three channels, against the true colour."""
  needs = (Reconstructs, PAIRED_TARGETS)

  def unavailable(self, s):
    grey_to_colour = s.data.image_shape[-1] == 1 and s.data.target_shape[-1] == 3
    return None if grey_to_colour else "the paired targets are not colour images of grey inputs"

  def __call__(self, ctx):
    test = ctx.test
    return {"baseline/grey_as_colour_mse": float(np.mean(np.square(np.repeat(test["image"], 3, -1) - test["target"])))}


def per_example_jacobian(model, batch, rng, extra, *, corruption) -> Dict[str, jax.Array]:
  del extra
  noise_rng, _ = jax.random.split(rng)  # The same inputs as the test pass's.
  clean = batch["image"]
  inputs = clean if corruption is None else corruption(noise_rng, clean)
  _, aux = model(inputs)
  encoder = EncoderView(model.encode, model.sigmoid_code_kernel())
  return {"jacobian_norm": jnp.sqrt(jacobian_sq_norm(encoder, inputs, aux["code"]))}


class Jacobian(Evaluator):
  """test/jacobian_norm: mean ||d code / d x||_F on the test inputs (closed form for one sigmoid layer).
  In `default` for objectives with a term that reads the encoder (the contractive penalty)."""
  needs = (Reconstructs,)

  def included_by_default(self, s):
    return "encoder" in s.objective.reads()

  def __call__(self, ctx):
    out = ctx.apply(per_example_jacobian, ctx.variables, ctx.test, jax.random.PRNGKey(ctx.seed),
                    corruption=ctx.s.corruption)
    return {"test/jacobian_norm": float(np.mean(out["jacobian_norm"]))}

