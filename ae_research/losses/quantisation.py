"""VQ-VAE's terms (van den Oord et al. 2017, eq. 3): the commitment loss beta ||z_e - sg(e)||^2 (beta is
the term's weight, 0.25 in the paper) and the codebook loss ||sg(z_e) - e||^2 (for a codebook trained by
gradients; an EMA codebook needs none). Per example, as the quantiser reports them."""
from ae_research.losses.base import AuxOutput
from ae_research.models.capabilities import Quantised


class Commitment(AuxOutput):
  reads, needs, what = ("commitment",), Quantised, "the commitment loss"


class CodebookLoss(AuxOutput):
  reads, needs, what = ("codebook_error",), Quantised, "the codebook loss"
