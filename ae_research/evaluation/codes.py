"""Statistics of a continuous code without ground truth: active units (Burda et al. 2016) and the total
correlation of the Gaussian fitted to the codes (disentanglement_lib's unsupervised metric)."""
from ae_research.evaluation.base import Evaluator
from ae_research.metrics.codes import active_units, gaussian_total_correlation
from ae_research.models.capabilities import Quantised, Reconstructs, has


class CodeStatistics(Evaluator):
  """codes/active_units (dimensions whose variance over the test set of E[z|x] exceeds `threshold`) and
  codes/gaussian_total_correlation (nats), on the test codes (posterior means)."""
  needs = (Reconstructs,)
  in_default = False

  def __init__(self, threshold: float = 0.01):
    self.threshold = threshold

  def unavailable(self, s):
    return "the code is discrete (a codebook)" if has(s.model, Quantised) else None

  def __call__(self, ctx):
    codes = ctx.test_codes
    return {"codes/active_units": active_units(codes, self.threshold),
            "codes/gaussian_total_correlation": gaussian_total_correlation(codes)}
