"""Reconstruction terms: per-example values, pixels reduced by mean or sum (from metrics/likelihoods.py)."""
import jax

from ae_research.errors import ConfigError
from ae_research.losses.base import LossInputs, Term
from ae_research.metrics.likelihoods import bernoulli_nll_values, squared_error_values


def _reduce_pixels(flat: jax.Array, reduction: str) -> jax.Array:
  return flat.mean(axis=1) if reduction == "mean" else flat.sum(axis=1)


def _check_reduction(reduction: str) -> str:
  if reduction not in ("mean", "sum"):
    raise ConfigError(f"loss term reduction={reduction!r}: must be mean or sum (over pixels)")
  return reduction


class SquaredError(Term):
  """Squared error per example: mean over pixels (MSE) or sum (SSE, SPEC 2)."""
  reconstruction = True

  def __init__(self, reduction: str = "mean"):
    self.reduction = _check_reduction(reduction)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return _reduce_pixels(squared_error_values(ctx.recon, ctx.target), self.reduction)


class BinaryCrossEntropy(Term):
  """Bernoulli negative log-likelihood per example, from the decoder logits.

  Computed from `aux["logits"]` (stable for any logit); the model's output activation must
  then be sigmoid. Targets lie in [0, 1]. `reduction="sum"` is Keras' `binary_crossentropy * 784`
  of SPEC 3.
  """
  reads = ("logits",)
  reconstruction = True

  def __init__(self, reduction: str = "mean"):
    self.reduction = _check_reduction(reduction)

  def check(self, model) -> None:
    if model.output_activation != "sigmoid":
      raise ConfigError("binary cross-entropy needs model.output_activation=sigmoid "
                        f"(got {model.output_activation}); change one of them")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return _reduce_pixels(bernoulli_nll_values(ctx.aux["logits"], ctx.target), self.reduction)
