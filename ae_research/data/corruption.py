"""Input corruption for denoising autoencoders, applied inside the compiled step.

Each process is `corrupt(rng, x) -> x_tilde`, fresh noise per batch from the step's key;
the loss compares the reconstruction of x_tilde with the clean x (Vincent et al. 2008).
"""
import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError


def _check_probability(name: str, p: float) -> None:
  if not 0 <= p < 1:
    raise ConfigError(f"corruption.{name}={p}: must lie in [0, 1)")


class MaskingNoise:
  """Each input value is set to `fill` (0: the "masking noise" of SPEC 2) with probability p."""

  def __init__(self, probability: float = 0.3, fill: float = 0.0):
    _check_probability("probability", probability)
    self.probability, self.fill = probability, fill

  def __call__(self, rng: jax.Array, x: jax.Array) -> jax.Array:
    keep = jax.random.bernoulli(rng, 1.0 - self.probability, x.shape)
    return jnp.where(keep, x, jnp.asarray(self.fill, x.dtype))


class GaussianNoise:
  """x + sigma * N(0, 1), optionally clipped to [low, high]."""

  def __init__(self, sigma: float = 0.1, clip: bool = False, low: float = 0.0, high: float = 1.0):
    if sigma < 0:
      raise ConfigError(f"corruption.sigma={sigma}: must be >= 0")
    self.sigma, self.clip, self.low, self.high = sigma, clip, low, high

  def __call__(self, rng: jax.Array, x: jax.Array) -> jax.Array:
    noisy = x + self.sigma * jax.random.normal(rng, x.shape, x.dtype)
    return jnp.clip(noisy, self.low, self.high) if self.clip else noisy


class SaltAndPepper:
  """A fraction of the values is set to `low` or `high` (each with probability 1/2)."""

  def __init__(self, fraction: float = 0.1, low: float = 0.0, high: float = 1.0):
    _check_probability("fraction", fraction)
    self.fraction, self.low, self.high = fraction, low, high

  def __call__(self, rng: jax.Array, x: jax.Array) -> jax.Array:
    hit_key, salt_key = jax.random.split(rng)
    hit = jax.random.bernoulli(hit_key, self.fraction, x.shape)
    salt = jax.random.bernoulli(salt_key, 0.5, x.shape)
    return jnp.where(hit, jnp.where(salt, self.high, self.low).astype(x.dtype), x)
