"""Input corruption for denoising autoencoders, applied inside the compiled step.

Each process is `corrupt(rng, x) -> x_tilde`, fresh noise per batch from the step's key;
the loss compares the reconstruction of x_tilde with the clean x (Vincent et al. 2008).
They are frozen dataclasses: equal settings compare and hash equal, so compiled
evaluation programs are shared between runs (population members) that use them.
"""
import dataclasses

import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError


def _check_probability(name: str, p: float) -> None:
  if not 0 <= p < 1:
    raise ConfigError(f"corruption.{name}={p}: must lie in [0, 1)")


@dataclasses.dataclass(frozen=True)
class MaskingNoise:
  """Each input value is set to `fill` (0: the "masking noise" of SPEC 2) with probability p."""
  probability: float = 0.3
  fill: float = 0.0

  def __post_init__(self):
    _check_probability("probability", self.probability)

  def __call__(self, rng: jax.Array, x: jax.Array) -> jax.Array:
    keep = jax.random.bernoulli(rng, 1.0 - self.probability, x.shape)
    return jnp.where(keep, x, jnp.asarray(self.fill, x.dtype))


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
  """x + sigma * N(0, 1), optionally clipped to [low, high]."""
  sigma: float = 0.1
  clip: bool = False
  low: float = 0.0
  high: float = 1.0

  def __post_init__(self):
    if self.sigma < 0:
      raise ConfigError(f"corruption.sigma={self.sigma}: must be >= 0")

  def __call__(self, rng: jax.Array, x: jax.Array) -> jax.Array:
    noisy = x + self.sigma * jax.random.normal(rng, x.shape, x.dtype)
    return jnp.clip(noisy, self.low, self.high) if self.clip else noisy


@dataclasses.dataclass(frozen=True)
class SaltAndPepper:
  """A fraction of the values is set to `low` or `high` (each with probability 1/2)."""
  fraction: float = 0.1
  low: float = 0.0
  high: float = 1.0

  def __post_init__(self):
    _check_probability("fraction", self.fraction)

  def __call__(self, rng: jax.Array, x: jax.Array) -> jax.Array:
    hit_key, salt_key = jax.random.split(rng)
    hit = jax.random.bernoulli(hit_key, self.fraction, x.shape)
    salt = jax.random.bernoulli(salt_key, 0.5, x.shape)
    return jnp.where(hit, jnp.where(salt, self.high, self.low).astype(x.dtype), x)
