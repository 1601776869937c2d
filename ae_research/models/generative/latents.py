"""The latent layer of the composed generative autoencoder: from the encoder's features (B, F) to the code
(B, d) the decoder reads. `latent(h, rng, train, samples) -> (code, aux)`; `encode(h)` is the
deterministic code (a Gaussian's mean, a quantised vector).

- `DeterministicLatent`: one Dense layer (autoencoders, WAE, RAE);
- `GaussianLatent`: q(z|x) = N(mean(h), diag(exp(log_var(h)))), reparameterised (Kingma & Welling 2014);
  aux "posterior" (`metrics.distributions.DiagonalGaussian`) and "draws" (K, B, d) when K samples are asked
  for (IWAE); the code is the first draw (the mean when no key is given);
- `VectorQuantisedLatent`: Dense to `tokens` vectors of `dim`, each snapped to the nearest of `num_codes`
  EMA codebook entries (`models/quantiser.py`, van den Oord et al. 2017), straight-through gradients.
"""
from typing import Any, ClassVar, Dict, Optional, Tuple

import jax
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.metrics.distributions import DiagonalGaussian
from ae_research.models.base import get_activation
from ae_research.models.quantiser import VectorQuantiser

Aux = Dict[str, Any]


def _check_dim(kind: str, **sizes) -> None:
  for key, value in sizes.items():
    if value <= 0:
      raise ConfigError(f"model.latent ({kind}): {key} must be positive, got {value}")


class DeterministicLatent(nnx.Module):
  """code = activation(Dense(h)) of `dim` units."""
  kind: ClassVar[str] = "deterministic"

  def __init__(self, features: int, dim: int = 16, activation: str = "linear", *, rngs: nnx.Rngs):
    _check_dim(self.kind, dim=dim)
    get_activation(activation)
    self.code_dim, self.activation = dim, activation
    self.dense = nnx.Linear(features, dim, rngs=rngs)

  def encode(self, h: jax.Array) -> jax.Array:
    return get_activation(self.activation)(self.dense(h))

  def __call__(self, h: jax.Array, *, rng: Optional[jax.Array] = None, train: bool = False,
               samples: int = 1) -> Tuple[jax.Array, Aux]:
    del rng, train, samples
    return self.encode(h), {}


class GaussianLatent(nnx.Module):
  """A diagonal Gaussian posterior of `dim` dimensions from two Dense heads (mean, log-variance)."""
  kind: ClassVar[str] = "gaussian"

  def __init__(self, features: int, dim: int = 10, *, rngs: nnx.Rngs):
    _check_dim(self.kind, dim=dim)
    self.code_dim = dim
    self.mean = nnx.Linear(features, dim, rngs=rngs)
    self.log_var = nnx.Linear(features, dim, rngs=rngs)

  def posterior(self, h: jax.Array) -> DiagonalGaussian:
    return DiagonalGaussian(self.mean(h), self.log_var(h))

  def encode(self, h: jax.Array) -> jax.Array:
    return self.mean(h)

  def __call__(self, h: jax.Array, *, rng: Optional[jax.Array] = None, train: bool = False,
               samples: int = 1) -> Tuple[jax.Array, Aux]:
    del train
    posterior = self.posterior(h)
    draws = posterior.mean[None] if rng is None else posterior.sample(rng, samples)  # (K, B, d)
    return draws[0], {"posterior": posterior, "draws": draws}


class VectorQuantisedLatent(nnx.Module):
  """Dense(h) -> `tokens` x `dim` vectors, each quantised to one of `num_codes` entries; the code is the
  quantised vectors flattened, (B, tokens * dim). The codebook is model state (EMA, decay 0.99; entries
  whose average use falls below `restart_below` restart at encoder outputs of the batch)."""
  kind: ClassVar[str] = "vector-quantised"

  def __init__(self, features: int, tokens: int = 16, dim: int = 64, num_codes: int = 512, decay: float = 0.99,
               restart_below: float = 1e-3, *, rngs: nnx.Rngs):
    _check_dim(self.kind, tokens=tokens, dim=dim, num_codes=num_codes)
    if not 0.0 <= decay < 1.0:
      raise ConfigError(f"model.latent.decay={decay}: must lie in [0, 1)")
    self.tokens, self.dim, self.code_dim = tokens, dim, tokens * dim
    self.project = nnx.Linear(features, tokens * dim, rngs=rngs)
    self.quantiser = VectorQuantiser(num_codes, dim, decay=decay, restart_below=restart_below, rngs=rngs)

  def _continuous(self, h: jax.Array) -> jax.Array:
    return self.project(h).reshape(h.shape[0], self.tokens, self.dim)

  def encode(self, h: jax.Array) -> jax.Array:
    z_q, _ = self.quantiser(self._continuous(h))
    return z_q.reshape(h.shape[0], -1)

  def __call__(self, h: jax.Array, *, rng: Optional[jax.Array] = None, train: bool = False,
               samples: int = 1) -> Tuple[jax.Array, Aux]:
    del samples
    z_q, vq = self.quantiser(self._continuous(h), rng=rng, train=train)
    return z_q.reshape(h.shape[0], -1), vq
