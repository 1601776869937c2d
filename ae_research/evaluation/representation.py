"""How good are the codes as features? Probes on the test codes against the same probes on raw pixels,
k-NN classification and regression, retrieval by cosine distance (SPEC 3c)."""
import os

import numpy as np

from ae_research.evaluation import baselines, probes
from ae_research.evaluation.base import CLASS_LABELS, ORDINAL_LABELS, PROBE_SEED, Evaluator
from ae_research.models.capabilities import Reconstructs


class LinearProbe(Evaluator):
  """probe/linear_codes: multinomial logistic regression fitted on the codes of `max_train` training
  examples, test accuracy; probe/linear_pixels: the same on raw pixels (cached per data set)."""
  needs = (Reconstructs, CLASS_LABELS)

  def __init__(self, max_train: int = 10_000):
    self.max_train = max_train

  def __call__(self, ctx):
    _, train_x, train_y = ctx.train_subset(self.max_train)
    test_y = ctx.test["label"]
    return {"probe/linear_codes": probes.linear_probe_accuracy(ctx.train_codes(self.max_train), train_y,
                                                               ctx.test_codes, test_y),
            "probe/linear_pixels": baselines.pixel_linear_probe(train_x, train_y, ctx.test["image"], test_y,
                                                                enabled=ctx.cache)}


class KNN(Evaluator):
  """probe/knn<k>_codes and probe/knn<k>_pixels: k-nearest-neighbour accuracy (Euclidean) from the
  codes of `max_train` training examples, and from their raw pixels (cached)."""
  needs = (Reconstructs, CLASS_LABELS)

  def __init__(self, k: int = 5, max_train: int = 10_000):
    self.k, self.max_train = k, max_train

  def check(self, s):
    from ae_research.errors import ConfigError  # pylint: disable=g-import-not-at-top
    if not 0 < self.k <= min(self.max_train, s.data.num_train):
      raise ConfigError(f"evaluation.{self.name}.k={self.k}: choose 1..{min(self.max_train, s.data.num_train)} "
                        "(the probe's training examples)")

  def __call__(self, ctx):
    _, train_x, train_y = ctx.train_subset(self.max_train)
    test_y = ctx.test["label"]
    return {f"probe/knn{self.k}_codes": probes.knn_accuracy(ctx.train_codes(self.max_train), train_y,
                                                            ctx.test_codes, test_y, k=self.k),
            f"probe/knn{self.k}_pixels": baselines.pixel_knn(train_x, train_y, ctx.test["image"], test_y, self.k,
                                                             enabled=ctx.cache)}


class Retrieval(Evaluator):
  """retrieval/precision@1/4/10: of `queries` test images, the share of their nearest test codes by
  cosine distance that have the same class; figure: five queries and their four neighbours."""
  needs = (Reconstructs, CLASS_LABELS)

  def __init__(self, queries: int = 1000):
    self.queries = queries

  def __call__(self, ctx):
    precision = probes.retrieval_precision(ctx.test_codes, ctx.test["label"], num_queries=self.queries,
                                           seed=PROBE_SEED)
    return {f"retrieval/precision@{k}": p for k, p in precision.items()}

  def figures(self, ctx, figures_dir):
    from ae_research.figures.retrieval import retrieval_figure  # pylint: disable=g-import-not-at-top
    data, test, queries = ctx.data, ctx.test, np.arange(5)
    neighbours, distances = probes.cosine_neighbours(ctx.test_codes, queries, 4)
    return {"retrieval": retrieval_figure(test["image"][queries], test["image"][neighbours], distances,
                                          os.path.join(figures_dir, "retrieval.png"), data.value_range,
                                          [data.class_name(y) for y in test["label"][queries]],
                                          [[data.class_name(y) for y in row] for row in test["label"][neighbours]])}


class OrdinalKNN(Evaluator):
  """codes/knn_r2_<label>: R^2 of k-NN regression of an ordinal label (a block's height) from the test
  codes, fitted on one half and scored on the other: near 1 when the codes order the examples by it."""
  needs = (Reconstructs, ORDINAL_LABELS)

  def __init__(self, k: int = 10):
    self.k = k

  def __call__(self, ctx):
    r2 = probes.knn_regression_r2(ctx.test_codes, ctx.test["label"], k=self.k, seed=PROBE_SEED)
    return {f"codes/knn_r2_{ctx.data.label_name}": r2}
