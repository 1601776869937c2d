"""The first layer's filters: their structure and how far they moved from initialisation, and the figure."""
import os

import numpy as np

from ae_research.evaluation.base import Evaluator
from ae_research.metrics.filters import filter_metrics
from ae_research.models.capabilities import Filters


def trained_filters(ctx) -> np.ndarray:
  """The first-layer kernel of the evaluated model, as a host array."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  return ctx.once("filters", lambda: np.asarray(nnx.merge(ctx.s.graphdef, ctx.variables).first_layer_filters()))


class FilterStructure(Evaluator):
  """filters/neighbour_correlation, filters/frac_noise_like (image-shaped filters) and
  filters/median_relative_change, filters/frac_unmoved (against the initial filters); figure: the
  filters, each normalised, as a grid of tiles."""
  needs = (Filters,)

  def __call__(self, ctx):
    return filter_metrics(trained_filters(ctx), ctx.model.first_layer_filters(), ctx.data.image_shape)

  def figures(self, ctx, figures_dir):
    from ae_research.figures.grids import filter_grid  # pylint: disable=g-import-not-at-top
    return {"filters": filter_grid(trained_filters(ctx), ctx.data.image_shape, os.path.join(figures_dir, "filters.png"),
                                   title=f"{ctx.name}: first-layer filters (each normalised)")}
