"""Terms that match the aggregate posterior to the prior, or factorise it (the pure estimators are in
`metrics/divergences.py`):

- `MaximumMeanDiscrepancy`: MMD between the batch's codes and as many prior samples (WAE-MMD, Tolstikhin
  et al. 2018, with the IMQ kernel; InfoVAE, Zhao et al. 2017, with the RBF kernel); a batch-level scalar;
- `TCDecomposition`: one of β-TCVAE's three parts of the KL (Chen et al. 2018): "mi" (index-code mutual
  information, weight alpha), "tc" (total correlation, beta), "dwkl" (dimension-wise KL, gamma);
- `DIPCovariance`: DIP-VAE's off-diagonal or diagonal penalty (Kumar et al. 2018; weights lambda_od,
  lambda_d), on Cov[mu(x)] ("i") or the aggregate posterior's covariance ("ii");
- `FactorTotalCorrelation`, `DiscriminatorLoss`: FactorVAE's (Kim & Mnih 2018) density-ratio estimate
  of the total correlation (weight gamma) and its discriminator's cross-entropy (weight 1).
"""
from typing import Sequence

import jax

from ae_research.errors import ConfigError
from ae_research.losses.base import AuxOutput, LossInputs, Term
from ae_research.metrics import divergences
from ae_research.metrics.arrays import per_example
from ae_research.models.capabilities import Generative, StochasticEncoder, require
from ae_research.models.generative.adversary import Adversary

TC_PARTS = ("mi", "tc", "dwkl")
DIP_PARTS = ("off_diagonal", "diagonal")


class MaximumMeanDiscrepancy(Term):
  """MMD^2(codes, prior samples) with kernel `imq` (summed over `scales` of C = 2 d bandwidth^2; WAE's
  scales by default) or `rbf`."""
  reads = ("code", "prior_sample")

  def __init__(self, kernel: str = "imq", scales: Sequence[float] = divergences.IMQ_SCALES, bandwidth: float = 1.0):
    if kernel not in divergences.KERNELS:
      raise ConfigError(f"loss: kernel={kernel!r}: choose one of {', '.join(divergences.KERNELS)}")
    if not scales or any(s <= 0 for s in scales) or bandwidth <= 0:
      raise ConfigError(f"loss: MMD scales {list(scales)} and bandwidth {bandwidth} must be positive")
    self.kernel, self.scales, self.bandwidth = kernel, tuple(scales), bandwidth

  def check(self, model) -> None:
    require(model, Generative, "the MMD term")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return divergences.mmd(per_example(ctx.aux["code"]), ctx.aux["prior_sample"], self.kernel, self.scales,
                           self.bandwidth, ctx.mask)


class TCDecomposition(Term):
  """β-TCVAE's `part` of each example's KL estimate, with q(z) estimated by `estimator` ("mws": minibatch-
  weighted, "mss": minibatch-stratified sampling), which needs the data set's size."""
  reads = ("code", "posterior", "log_pz")

  def __init__(self, part: str = "tc", estimator: str = "mws"):
    if part not in TC_PARTS:
      raise ConfigError(f"loss: part={part!r}: choose one of {', '.join(TC_PARTS)}")
    if estimator not in divergences.TC_ESTIMATORS:
      raise ConfigError(f"loss: estimator={estimator!r}: choose one of {', '.join(divergences.TC_ESTIMATORS)}")
    self.part, self.estimator = part, estimator

  def check(self, model) -> None:
    require(model, StochasticEncoder, "the total-correlation decomposition")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    q = ctx.aux["posterior"]
    parts = divergences.tc_decomposition(ctx.aux["code"], q.mean, q.log_var, ctx.aux["log_pz"], ctx.dataset_size,
                                         self.estimator, ctx.mask)
    return parts[self.part]


class DIPCovariance(Term):
  """DIP-VAE-`kind`'s `part` penalty: sum_{i != j} Cov_ij^2 or sum_i (Cov_ii - 1)^2 (a batch-level scalar)."""
  reads = ("posterior",)

  def __init__(self, kind: str = "i", part: str = "off_diagonal"):
    if kind not in divergences.DIP_KINDS:
      raise ConfigError(f"loss: kind={kind!r}: choose one of {', '.join(divergences.DIP_KINDS)}")
    if part not in DIP_PARTS:
      raise ConfigError(f"loss: part={part!r}: choose one of {', '.join(DIP_PARTS)}")
    self.kind, self.part = kind, part

  def check(self, model) -> None:
    require(model, StochasticEncoder, "the DIP-VAE penalty")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    q = ctx.aux["posterior"]
    off, diag = divergences.dip_penalties(divergences.dip_covariance(q.mean, q.log_var, self.kind, ctx.mask))
    return off if self.part == "off_diagonal" else diag


class FactorTotalCorrelation(AuxOutput):
  """FactorVAE's total-correlation estimate log D(z) / (1 - D(z)) per example (gradient to the encoder)."""
  reads, needs, what = ("tc_estimate",), Adversary, "the FactorVAE total-correlation term"


class DiscriminatorLoss(AuxOutput):
  """The FactorVAE discriminator's cross-entropy on real and permuted codes per example (gradient to the
  discriminator only)."""
  reads, needs, what = ("discriminator_loss",), Adversary, "the FactorVAE discriminator loss"
