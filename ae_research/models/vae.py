"""Gaussian variational autoencoder (Kingma & Welling 2014; SPEC 3, 3a, 3b)."""
import math
from typing import FrozenSet, Optional, Sequence

import jax
from flax import nnx

from ae_research.metrics.distributions import DiagonalGaussian, StandardNormal
from ae_research.metrics.likelihoods import bernoulli_log_prob
from ae_research.models.base import Autoencoder, get_activation, kernel_init
from ae_research.models.capabilities import ExplicitLikelihood, Filters, Generative, StochasticEncoder, declared
from ae_research.models.mlp import apply_stack, check_sizes, dense_stack


class VAE(Autoencoder, StochasticEncoder, Generative, ExplicitLikelihood, Filters):
  """q(z|x) = N(mean(x), diag(exp(log_var(x)))), p(z) = N(0, I), decoder p(x|z).

  `encode` returns the posterior mean; the training call samples z with the
  reparameterisation z = mean + exp(log_var / 2) * eps and puts the posterior and its KL to
  the prior in aux. The decoder is Bernoulli (sigmoid output, BCE) or Gaussian (any output
  activation, squared error), chosen by the loss config; only the Bernoulli decoder declares
  a likelihood (a Gaussian one trained with squared error has no calibrated variance).
  """

  encoder_modules = ("trunk", "mean")  # `encode` is the posterior mean.

  def __init__(self, input_shape: Sequence[int], latent_dim: int = 2, hidden: Sequence[int] = (512,),
               decoder_hidden: Optional[Sequence[int]] = None, activation: str = "relu",
               output_activation: str = "sigmoid", init: str = "glorot_uniform",
               output_shape: Optional[Sequence[int]] = None, *, rngs: nnx.Rngs):
    self.input_shape = tuple(input_shape)
    self.output_shape = tuple(output_shape or input_shape)
    check_sizes(latent_dim, hidden)
    get_activation(activation), get_activation(output_activation)  # pylint: disable=expression-not-assigned
    self.activation, self.output_activation, self.latent_dim = activation, output_activation, latent_dim
    decoder_hidden = tuple(reversed(tuple(hidden))) if decoder_hidden is None else tuple(decoder_hidden)
    self.trunk = dense_stack((math.prod(self.input_shape), *hidden), init, rngs)
    width = hidden[-1] if hidden else math.prod(self.input_shape)
    self.mean = nnx.Linear(width, latent_dim, kernel_init=kernel_init(init), rngs=rngs)
    self.log_var = nnx.Linear(width, latent_dim, kernel_init=kernel_init(init), rngs=rngs)
    self.decoder = dense_stack((latent_dim, *decoder_hidden, math.prod(self.output_shape)), init, rngs)

  def capabilities(self) -> FrozenSet[type]:
    caps = declared(self)
    return caps if self.output_activation == "sigmoid" else caps - {ExplicitLikelihood}

  def posterior(self, x: jax.Array) -> DiagonalGaussian:
    h = x.reshape(x.shape[0], -1)
    if len(self.trunk):
      h = apply_stack(self.trunk, h, self.activation, self.activation)
    return DiagonalGaussian(self.mean(h), self.log_var(h))

  def prior(self) -> StandardNormal:
    return StandardNormal(self.latent_dim)

  def encode(self, x: jax.Array) -> jax.Array:
    return self.posterior(x).mean

  def first_layer_filters(self) -> jax.Array:
    return (self.trunk[0] if len(self.trunk) else self.mean).kernel[...]

  def decode_logits(self, code: jax.Array) -> jax.Array:
    return apply_stack(self.decoder, code, self.activation).reshape(code.shape[0], *self.output_shape)

  def log_likelihood(self, x: jax.Array, logits: jax.Array) -> jax.Array:
    return bernoulli_log_prob(logits, x)

  def sample(self, num: int, key: jax.Array) -> jax.Array:
    return self.decode(self.prior().sample(key, num))

  def __call__(self, x, *, rng=None, train=False):
    del train
    posterior = self.posterior(x)
    z = posterior.mean if rng is None else posterior.sample(rng)
    logits = self.decode_logits(z)
    return get_activation(self.output_activation)(logits), {"code": z, "posterior": posterior,
                                                            "kl": posterior.kl_standard_normal(), "logits": logits}
