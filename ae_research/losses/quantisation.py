"""VQ-VAE's terms (van den Oord et al. 2017, eq. 3): the commitment loss beta ||z_e - sg(e)||^2 (beta is
the term's weight, 0.25 in the paper) and the codebook loss ||sg(z_e) - e||^2 (for a codebook trained by
gradients; an EMA codebook needs none). Per example, as the quantiser reports them."""
import jax

from ae_research.losses.base import LossInputs, Term
from ae_research.models.capabilities import Quantised, require


class Commitment(Term):
  reads = ("commitment",)

  def check(self, model) -> None:
    require(model, Quantised, "the commitment loss")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return ctx.aux["commitment"]


class CodebookLoss(Term):
  reads = ("codebook_error",)

  def check(self, model) -> None:
    require(model, Quantised, "the codebook loss")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return ctx.aux["codebook_error"]
