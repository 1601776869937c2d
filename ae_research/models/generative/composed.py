"""The generative autoencoder composed from parts in config: an encoder backbone, a latent, a decoder
backbone, and optionally a prior, a decoder likelihood and a FactorVAE discriminator.

    model:
      _target_: ae_research.models.generative.GenerativeAutoencoder
      encoder: {_target_: ...backbones.LocatelloConvEncoder, _partial_: true}
      latent: {_target_: ...latents.GaussianLatent, _partial_: true, dim: 10}
      decoder: {_target_: ...backbones.LocatelloConvDecoder, _partial_: true}
      prior: {_target_: ...priors.VampPrior, _partial_: true}          # or null
      likelihood: {_target_: ...likelihoods.BernoulliLikelihood, _partial_: true}   # or null
      adversary: null

Each part is a factory (`_partial_: true`) the model calls with the shapes and keys it knows; conf/model/
composes them from the groups model/backbone, model/latent, model/prior, model/likelihood and
model/adversary. The model declares exactly the capabilities its parts give: a stochastic encoder with
a Gaussian latent, a prior to sample with a prior, a decoder likelihood with a likelihood, a codebook
with a vector-quantised latent, a discriminator with an adversary. Parts that cannot work together are
a one-line ConfigError when the model is built.

The training call's aux: "code" and "logits" always; "px" (the likelihood's distribution of x);
"prior_sample" (B draws of the prior: MMD terms); with a Gaussian latent "posterior", "kl" (closed form
against N(0, I), else the one-sample estimate), "kl_per_dim" (N(0, I) only), "log_qzx", "log_pz" and,
with a likelihood, "log_w" (K, B): log importance weights of `samples` = K draws per example (IWAE);
with a VQ latent the quantiser's "indices", "commitment", "codebook_error"; with an adversary
"tc_estimate", "discriminator_loss"; with `decoder_jacobian` the decoder's squared Jacobian norm.
"""
from typing import Any, Callable, FrozenSet, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.metrics.distributions import StandardNormal, kl_divergence
from ae_research.models.base import Autoencoder, get_activation
from ae_research.models.capabilities import (ExplicitLikelihood, Filters, Generative, Quantised, Reconstructs,
                                             StochasticEncoder)
from ae_research.models.generative.adversary import Adversary
from ae_research.models.generative.jacobian import decoder_jacobian_sq_norm

Factory = Callable[..., Any]


def _factory(part: str, value: Any, required: bool = True) -> Optional[Factory]:
  if value is None and not required:
    return None
  if not callable(value) or isinstance(value, nnx.Module):
    raise ConfigError(f"model.{part}: give a factory (a node with _target_ and _partial_: true), got "
                      f"{type(value).__name__}")
  return value


class GenerativeAutoencoder(Autoencoder, StochasticEncoder, Generative, ExplicitLikelihood, Quantised, Filters):
  """Encoder backbone -> latent -> decoder backbone, with optional prior, likelihood and adversary.

  Args:
    input_shape: the data's (H, W, C) (supplied by the trainer).
    encoder, latent, decoder, prior, likelihood, adversary: the parts' factories (see the module docstring).
    samples: posterior draws per example in the training call (K of the importance-weighted bound).
    decoder_jacobian: compute ||d decoder(z) / d z||_F^2 per example (RAE's gradient penalty).
    output_activation: the data-space output without a likelihood (with one, its mean).
    rngs: initialisation keys (supplied by the trainer).
  """

  encoder_modules = ("encoder", "latent")  # What `encode` reads (fine-tuning trains them).

  def __init__(self, input_shape: Sequence[int], encoder: Factory, latent: Factory, decoder: Factory,
               prior: Optional[Factory] = None, likelihood: Optional[Factory] = None,
               adversary: Optional[Factory] = None, samples: int = 1, decoder_jacobian: bool = False,
               output_activation: str = "sigmoid", *, rngs: nnx.Rngs):
    self.input_shape = tuple(input_shape)
    self.encoder = _factory("encoder", encoder)(input_shape=self.input_shape, rngs=rngs)
    self.latent = _factory("latent", latent)(features=self.encoder.features, rngs=rngs)
    self.latent_kind, d = self.latent.kind, self.latent.code_dim
    make_prior = _factory("prior", prior, required=False)
    self.code_prior = None if make_prior is None else make_prior(latent_dim=d, input_shape=self.input_shape,
                                                                 rngs=rngs)
    if self.code_prior is not None:
      self.code_prior.check(self.latent)
    elif self.latent_kind == "gaussian":
      raise ConfigError("model.prior: a gaussian latent needs a prior (its KL term is to the prior); set "
                        "model/prior=standard_normal or model/prior=vamp")
    make_likelihood = _factory("likelihood", likelihood, required=False)
    self.likelihood = None if make_likelihood is None else make_likelihood(output_shape=self.input_shape, rngs=rngs)
    per_pixel = 1 if self.likelihood is None else self.likelihood.params_per_pixel
    self.output_activation = output_activation if self.likelihood is None else self.likelihood.output_activation
    get_activation(self.output_activation)
    out_shape = (*self.input_shape[:-1], self.input_shape[-1] * per_pixel)
    self.decoder = _factory("decoder", decoder)(latent_dim=d, output_shape=out_shape, encoder=self.encoder, rngs=rngs)
    make_adversary = _factory("adversary", adversary, required=False)
    if make_adversary is not None and self.latent_kind == "vector-quantised":
      raise ConfigError("model.adversary: the FactorVAE discriminator needs a continuous latent; model.latent is "
                        "vector-quantised")
    self.adversary = None if make_adversary is None else make_adversary(latent_dim=d, rngs=rngs)
    if samples < 1:
      raise ConfigError(f"model.samples={samples}: must be >= 1")
    if samples > 1 and not (self.latent_kind == "gaussian" and self.likelihood is not None):
      raise ConfigError(f"model.samples={samples}: several posterior draws need a gaussian latent and a "
                        "likelihood (importance weights)")
    self.samples, self.decoder_jacobian = samples, decoder_jacobian

  # --- What the model can do. ---
  def capabilities(self) -> FrozenSet[type]:
    caps = {Reconstructs}
    caps |= {Filters} if self.encoder.first_layer_filters() is not None else set()
    caps |= {StochasticEncoder} if self.latent_kind == "gaussian" else set()
    caps |= {Generative} if self.code_prior is not None else set()
    caps |= {ExplicitLikelihood} if self.likelihood is not None else set()
    caps |= {Quantised} if self.latent_kind == "vector-quantised" else set()
    caps |= {Adversary} if self.adversary is not None else set()
    return frozenset(caps)

  def _lacks(self, what: str):
    return ConfigError(f"model {type(self).__name__} has no {what} with these parts")

  def posterior(self, x: jax.Array):
    if self.latent_kind != "gaussian":
      raise self._lacks("posterior (the latent is not gaussian)")
    return self.latent.posterior(self.encoder(x, train=False))

  def prior(self):
    if self.code_prior is None:
      raise self._lacks("prior")
    return self.code_prior.distribution(self.posterior)

  def sample(self, num: int, key: jax.Array) -> jax.Array:
    return self.decode(self.prior().sample(key, num))

  def codebook(self) -> jax.Array:
    if self.latent_kind != "vector-quantised":
      raise self._lacks("codebook")
    return self.latent.quantiser.codebook[...]

  @property
  def likelihood_range(self):
    return self.likelihood.value_range if self.likelihood is not None else (float("-inf"), float("inf"))

  def log_likelihood(self, x: jax.Array, logits: jax.Array) -> jax.Array:
    if self.likelihood is None:
      raise self._lacks("likelihood")
    return self.likelihood.distribution(logits).log_prob(x)

  def first_layer_filters(self) -> jax.Array:
    return self.encoder.first_layer_filters()

  # --- The interface every autoencoder implements. ---
  def encode(self, x: jax.Array) -> jax.Array:
    return self.latent.encode(self.encoder(x, train=False))

  def decode_logits(self, code: jax.Array) -> jax.Array:
    return self.decoder(code, train=False)

  def _data_space(self, logits: jax.Array):
    if self.likelihood is None:
      return None, get_activation(self.output_activation)(logits)
    px = self.likelihood.distribution(logits)
    return px, px.mean

  def decode(self, code: jax.Array) -> jax.Array:
    return self._data_space(self.decode_logits(code))[1]

  def __call__(self, x, *, rng=None, train=False):
    # Without a key the pass is deterministic (the posterior mean); the draws that do not shape the
    # reconstruction (prior samples, permutations) then use a fixed key, so aux has the same keys.
    keys = jax.random.split(jax.random.PRNGKey(0) if rng is None else rng, 3)
    batch = x.shape[0]
    code, aux = self.latent(self.encoder(x, train=train), rng=None if rng is None else keys[0], train=train,
                            samples=self.samples)
    draws = aux.pop("draws", code[None])
    logits_all = self.decoder(draws.reshape(-1, code.shape[-1]), train=train)  # All K draws in one pass.
    logits = logits_all[:batch]
    px, recon = self._data_space(logits)
    if px is not None:
      aux["px"] = px
    if self.code_prior is not None:
      prior = self.prior()  # A VampPrior encodes its pseudo-inputs without touching batch statistics.
      aux["prior_sample"] = prior.sample(keys[1], batch)
      if self.latent_kind == "gaussian":
        aux.update(self._kl_parts(aux["posterior"], prior, code))
        if self.likelihood is not None:
          aux["log_w"] = self._log_weights(x, aux["posterior"], prior, draws, logits_all)
    if self.adversary is not None:
      aux.update(self.adversary.outputs(code, keys[2]))
    if self.decoder_jacobian:
      aux["decoder_jacobian"] = decoder_jacobian_sq_norm(self.decode_logits, code)
    aux.update(code=code, logits=logits)
    return recon, aux

  @staticmethod
  def _kl_parts(posterior, prior, z):
    parts = {"kl": kl_divergence(posterior, prior, z), "log_qzx": posterior.log_prob(z), "log_pz": prior.log_prob(z)}
    if isinstance(prior, StandardNormal):
      parts["kl_per_dim"] = posterior.kl_per_dim()
    return parts

  def _log_weights(self, x, posterior, prior, draws, logits_all) -> jax.Array:
    """log p(x|z_k) + log p(z_k) - log q(z_k|x) of each draw, (K, B)."""
    k, batch = draws.shape[:2]
    tiled = jnp.broadcast_to(x[None], (k, *x.shape)).reshape(k * batch, *x.shape[1:])
    log_px = self.likelihood.distribution(logits_all).log_prob(tiled).reshape(k, batch)
    return log_px + prior.log_prob(draws) - posterior.log_prob(draws)
