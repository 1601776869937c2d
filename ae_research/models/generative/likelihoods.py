"""Decoder likelihoods p(x|z) of the composed generative autoencoder.

A likelihood module says how many decoder outputs each pixel takes (`params_per_pixel`), the data range
it is defined on (`value_range`), and turns decoder outputs into a per-pixel distribution (`distribution`,
a pytree that travels in aux["px"] like the posterior): `log_prob(x)` per example (nats, summed over
pixels, `metrics.likelihoods`) and `mean` (the data-space reconstruction). Learnt scales are the
module's parameters, trained with the rest.

- `BernoulliLikelihood`: logits; data in [0, 1] (binarised, or grey levels as probabilities);
- `GaussianLikelihood`: mean = the decoder output; sigma fixed, or learnt, one for all pixels ("global")
  or one per pixel ("per_pixel");
- `DiscretisedLogisticLikelihood`: a logistic per pixel (mean and log-scale from the decoder) discretised
  to `bins` levels on [low, high] (Salimans et al. 2017, PixelCNN++), for 8-bit images.
"""
import math
from typing import Sequence, Tuple

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.metrics.likelihoods import bernoulli_log_prob, discretised_logistic_log_prob, gaussian_log_prob

SIGMAS = ("fixed", "global", "per_pixel")


@flax.struct.dataclass
class BernoulliPixels:
  logits: jax.Array

  @property
  def mean(self) -> jax.Array:
    return jax.nn.sigmoid(self.logits)

  def log_prob(self, x: jax.Array) -> jax.Array:
    return bernoulli_log_prob(self.logits, x)


@flax.struct.dataclass
class GaussianPixels:
  mean: jax.Array
  log_scale: jax.Array  # Broadcasts to `mean`.

  def log_prob(self, x: jax.Array) -> jax.Array:
    return gaussian_log_prob(x, self.mean, self.log_scale)


@flax.struct.dataclass
class LogisticPixels:
  loc: jax.Array
  log_scale: jax.Array
  bins: int = flax.struct.field(pytree_node=False, default=256)
  low: float = flax.struct.field(pytree_node=False, default=0.0)
  high: float = flax.struct.field(pytree_node=False, default=1.0)

  @property
  def mean(self) -> jax.Array:
    return jnp.clip(self.loc, self.low, self.high)

  def log_prob(self, x: jax.Array) -> jax.Array:
    return discretised_logistic_log_prob(x, self.loc, self.log_scale, self.bins, self.low, self.high)


class BernoulliLikelihood(nnx.Module):
  name = "bernoulli"
  params_per_pixel = 1
  output_activation = "sigmoid"  # The evaluators' BCE reads the logits of sigmoid outputs.

  def __init__(self, output_shape: Sequence[int], *, rngs: nnx.Rngs):
    del output_shape, rngs
    self.value_range: Tuple[float, float] = (0.0, 1.0)

  def distribution(self, outputs: jax.Array) -> BernoulliPixels:
    return BernoulliPixels(outputs)


class GaussianLikelihood(nnx.Module):
  """N(x; decoder output, sigma^2) per pixel. `sigma` is the fixed value or the learnt one's start;
  sigma^2 = 1/2 makes -log p(x|z) the squared error plus a constant (the WAE's and RAE's cost)."""
  name = "gaussian"
  params_per_pixel = 1
  output_activation = "linear"

  def __init__(self, output_shape: Sequence[int], sigma: float = 1.0, learn: str = "fixed", *, rngs: nnx.Rngs):
    del rngs
    if learn not in SIGMAS:
      raise ConfigError(f"model.likelihood.learn={learn!r}: choose one of {', '.join(SIGMAS)}")
    if not sigma > 0:
      raise ConfigError(f"model.likelihood.sigma={sigma}: must be positive")
    self.value_range = (-math.inf, math.inf)
    self.learn = learn
    if learn == "fixed":
      self.fixed_log_scale = math.log(sigma)
    else:
      shape = tuple(output_shape) if learn == "per_pixel" else ()
      self.log_scale = nnx.Param(jnp.full(shape, math.log(sigma), jnp.float32))

  def distribution(self, outputs: jax.Array) -> GaussianPixels:
    log_scale = jnp.asarray(self.fixed_log_scale, outputs.dtype) if self.learn == "fixed" else self.log_scale[...]
    return GaussianPixels(outputs, log_scale)


class DiscretisedLogisticLikelihood(nnx.Module):
  """The decoder gives each pixel's location and log-scale (two outputs per channel; log-scales floored
  at `min_log_scale`, -7 as in PixelCNN++). `low`/`high`: the data's range (dataset.scale=unit: [0, 1])."""
  name = "discretised_logistic"
  params_per_pixel = 2
  output_activation = "linear"

  def __init__(self, output_shape: Sequence[int], bins: int = 256, low: float = 0.0, high: float = 1.0,
               min_log_scale: float = -7.0, *, rngs: nnx.Rngs):
    del output_shape, rngs
    if bins < 2 or not low < high:
      raise ConfigError(f"model.likelihood: need bins >= 2 and low < high, got {bins}, [{low}, {high}]")
    self.bins, self.low, self.high, self.min_log_scale = bins, low, high, min_log_scale
    self.value_range = (low, high)

  def distribution(self, outputs: jax.Array) -> LogisticPixels:
    loc, log_scale = jnp.split(outputs, 2, axis=-1)
    return LogisticPixels(loc, jnp.maximum(log_scale, self.min_log_scale), self.bins, self.low, self.high)
