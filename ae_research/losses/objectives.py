"""Terms of the generative autoencoders' objectives (per example where defined; each declares what it reads
and checks the model). They read what the composed model (`models/generative`) puts in its aux.

- `NegativeLogLikelihood`: -log p(x|z) under the model's decoder likelihood (aux "px");
- `FreeBitsKL`: sum_j max(lambda, E_batch[KL_j]) (Kingma et al. 2016, "Improved variational inference with
  inverse autoregressive flow", eq. 15);
- `CapacityKL`: |E_batch[KL] - C|, C ramped linearly from 0 to `capacity` over `steps` optimiser steps
  (Burgess et al. 2018, "Understanding disentangling in beta-VAE", eq. 8; gamma is the term's weight);
- `ImportanceWeightedBound`: -log (1/K) sum_k w_k (Burda et al. 2016) from the model's K draws;
- `CodeNorm`, `DecoderL2`, `DecoderGradientPenalty`: the RAE's regularisers (Ghosh et al. 2020, eq. 11).

Numbers here may be traced values (members of a population differ in them): no term branches on one.
"""
import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError
from ae_research.losses.base import LossInputs, Term, masked_batch_mean
from ae_research.metrics.arrays import per_example
from ae_research.metrics.bounds import iwae_bound
from ae_research.models.capabilities import ExplicitLikelihood, Generative, Reconstructs, StochasticEncoder, require


class NegativeLogLikelihood(Term):
  """-log p(target | z) per example (nats), under the likelihood the model's decoder defines."""
  reads = ("px",)
  reconstruction = True

  def check(self, model) -> None:
    require(model, ExplicitLikelihood, "the negative log-likelihood")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return -ctx.aux["px"].log_prob(ctx.target)


class FreeBitsKL(Term):
  """The KL term with free bits: each code dimension's batch-mean KL counts at least `free_bits` nats, so
  it is not pushed below that (a batch-level scalar; against N(0, I), whose KL splits by dimension)."""
  reads = ("kl_per_dim",)

  def __init__(self, free_bits: float = 0.5):
    if free_bits < 0:
      raise ConfigError(f"loss: free_bits={free_bits} must be >= 0")
    self.free_bits = free_bits

  def check(self, model) -> None:
    require(model, StochasticEncoder, "the free-bits KL term")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return jnp.sum(jnp.maximum(self.free_bits, masked_batch_mean(ctx.aux["kl_per_dim"], ctx.mask)))


class CapacityKL(Term):
  """|E_batch[KL(q(z|x) || p(z))] - C(step)|, C = capacity * min(1, step / steps) (a batch-level scalar, as
  disentanglement_lib computes it; without a step, the end capacity)."""
  reads = ("kl",)

  def __init__(self, capacity: float = 25.0, steps: int = 100_000):
    if capacity < 0 or steps <= 0:
      raise ConfigError(f"loss: capacity={capacity} must be >= 0 and steps={steps} positive")
    self.capacity, self.steps = capacity, steps

  def check(self, model) -> None:
    require(model, StochasticEncoder, "the capacity KL term")

  def target(self, step) -> jax.Array:
    if step is None:
      return jnp.asarray(self.capacity, jnp.float32)
    return self.capacity * jnp.minimum(1.0, step.astype(jnp.float32) / self.steps)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return jnp.abs(masked_batch_mean(ctx.aux["kl"], ctx.mask) - self.target(ctx.step))


class ImportanceWeightedBound(Term):
  """-IWAE bound per example from the model's (K, B) log importance weights (model.samples = K); K = 1 is
  the negative one-sample ELBO."""
  reads = ("log_w",)

  def check(self, model) -> None:
    for capability in (StochasticEncoder, Generative, ExplicitLikelihood):
      require(model, capability, "the importance-weighted bound")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return -iwae_bound(ctx.aux["log_w"], axis=0)


class CodeNorm(Term):
  """0.5 ||z||^2 per example: the RAE's L_z, in place of the VAE's KL."""
  reads = ("code",)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return 0.5 * jnp.sum(jnp.square(per_example(ctx.aux["code"])), axis=1)


class DecoderL2(Term):
  """0.5 ||theta||^2 of the parameters under `part` (the decoder's: RAE-L2's weight decay of the decoder)."""
  reads = ("params",)

  def __init__(self, part: str = "decoder"):
    self.part = part

  def check(self, model) -> None:
    require(model, Reconstructs, "the decoder L2 penalty")
    if not hasattr(model, self.part):
      raise ConfigError(f"the decoder L2 penalty: model {type(model).__name__} has no sub-module {self.part!r}")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return 0.5 * sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(ctx.params[self.part]))


class DecoderGradientPenalty(Term):
  """||d D(z) / d z||_F^2 per example (RAE-GP), as the model computes it (model.decoder_jacobian=true)."""
  reads = ("decoder_jacobian",)

  def check(self, model) -> None:
    if not getattr(model, "decoder_jacobian", False):
      raise ConfigError("the decoder gradient penalty needs model.decoder_jacobian=true (the model computes the "
                        "decoder's Jacobian norm in its forward pass)")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return ctx.aux["decoder_jacobian"]
