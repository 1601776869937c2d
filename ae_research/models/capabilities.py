"""What a model can do, declared by the model and asked for by losses, evaluators and figures.

A capability is a mixin class: a model declares one by inheriting it and implementing its methods.
Callers never probe for methods or branch on flags; they ask `has(model, CAPABILITY)` or, where the
config asked for something that needs it, `require(model, CAPABILITY, who)`, which fails at start-up
with one line that names both (`evaluation.evaluators: likelihood needs a stochastic encoder; model
MLPAutoencoder has none`). A model built from parts (a latent, a prior, ...) declares exactly what its
parts give by overriding `Model.capabilities()`.
"""
from typing import ClassVar, FrozenSet, Iterable

import jax

from ae_research.errors import ConfigError


class Capability:
  """Base of the capability mixins; `phrase` completes "needs ..." and "has no ..." messages."""
  phrase: ClassVar[str] = "a capability"


class Reconstructs(Capability):
  """An autoencoder: `encode(x) -> code`, `decode(code) -> data-space output`, `decode_logits(code)`."""
  phrase = "an encoder and a decoder"


class Classifies(Capability):
  """A classifier: `__call__(x) -> (class logits, aux)`."""
  phrase = "class outputs"


class StochasticEncoder(Capability):
  """q(z|x): `posterior(x) -> DiagonalGaussian` (mean, scale, sample, log_prob, kl); the training
  forward pass samples from it and puts it in aux["posterior"], with aux["kl"] to the model's prior."""
  phrase = "a stochastic encoder"

  def posterior(self, x: jax.Array):
    raise NotImplementedError


class Generative(Capability):
  """A prior to sample: `prior() -> distribution over codes`, `sample(num, key) -> data-space samples`."""
  phrase = "a prior to sample"

  def prior(self):
    raise NotImplementedError

  def sample(self, num: int, key: jax.Array) -> jax.Array:
    raise NotImplementedError


class ExplicitLikelihood(Capability):
  """A decoder density: `log_likelihood(x, decoder_logits) -> log p(x|z)` per example (nats)."""
  phrase = "a decoder likelihood"

  def log_likelihood(self, x: jax.Array, logits: jax.Array) -> jax.Array:
    raise NotImplementedError


class Quantised(Capability):
  """A discrete code: `codebook() -> (K, D)` entries; aux["indices"] holds each example's code indices."""
  phrase = "a codebook"

  def codebook(self) -> jax.Array:
    raise NotImplementedError


class Filters(Capability):
  """A first layer whose kernel is a bank of image-shaped filters: `first_layer_filters()`
  ((inputs, units) dense or (k, k, in, out) conv)."""
  phrase = "first-layer filters"

  def first_layer_filters(self) -> jax.Array:
    raise NotImplementedError


class Stacked(Capability):
  """Layers trained greedily one at a time: `num_stacked_layers`, and `stage` (0: the whole stack)."""
  phrase = "stacked layers (greedy pre-training)"

  @property
  def num_stacked_layers(self) -> int:
    raise NotImplementedError


ALL = (Reconstructs, Classifies, StochasticEncoder, Generative, ExplicitLikelihood, Quantised, Filters, Stacked)


def declared(model) -> FrozenSet[type]:
  """The capability classes `model` inherits (what `Model.capabilities()` returns by default)."""
  return frozenset(c for c in ALL if isinstance(model, c))


def capabilities(model) -> FrozenSet[type]:
  return model.capabilities() if hasattr(model, "capabilities") else declared(model)


def has(model, capability: type) -> bool:
  return capability in capabilities(model)


def require(model, capability: type, who: str) -> None:
  """Raises the one-line ConfigError when `model` lacks `capability` (`who` is what asked for it)."""
  if not has(model, capability):
    raise ConfigError(f"{who} needs {capability.phrase}; model {type(model).__name__} has none")


def names(caps: Iterable[type]) -> str:
  return ", ".join(sorted(c.phrase for c in caps)) or "none"
