"""Disentanglement scores of codes against ground-truth factors, defined as disentanglement_lib does.

Each score follows its paper and disentanglement_lib's implementation of it (google-research/
disentanglement_lib, `disentanglement_lib/evaluation/metrics/`, "dlib" below), defaults included:

- `discretize`, `mutual_information`, `factor_entropy`: dlib's histogram discretiser and discrete
  mutual information (utils.py), in JAX from joint histograms;
- `mig` (Chen et al. 2018) and `modularity` (Ridgeway & Zemel 2018): from that MI matrix;
- `dci` (Eastwood & Williams 2018): from a tree ensemble's feature importances;
- `sap` (Kumar et al. 2018): from one-dimensional linear SVMs (or squared correlations);

The FactorVAE and βVAE scores sample their own batches from a ground-truth model: `ground_truth`;
unsupervised code statistics (active units, Gaussian total correlation) are `codes`.

Layout: `codes` is (N, D) float (the posterior means), `factors` is (N, K) non-negative int factor
indices, one row per example (dlib's arrays transposed). Codes are discretised in float32 (JAX's
default): exactly numpy's bins for float32 codes; float64 codes are rounded to float32 first, which
can move a code that sits within an ulp of an edge. The array arithmetic is jitted (the `_`-prefixed
cores and `modularity_from_mi`, `dci_from_importance`); the fitted classifiers (DCI's trees, SAP's
SVMs) are scikit-learn's, on the host.
"""
import functools
from typing import Callable, Dict, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Rows per joint-histogram block: memory stays at (block x D x bins) however many examples.
HISTOGRAM_BLOCK = 4096


def _labels(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer) or (x.size and x.min() < 0):
    raise ValueError(f"{name} must be an (N, K) array of non-negative integers, got {x.dtype} {x.shape}")
  return x


def _num_values(x) -> int:
  return int(np.max(x)) + 1


# --- Discrete mutual information ---
@jax.jit
def _digitize(codes, edges):
  """Each code's bin: how many of its dimension's lower edges (bins, D) are at or below it."""
  return jax.vmap(lambda e, x: jnp.searchsorted(e, x, side="right"), in_axes=1, out_axes=1)(
      edges, codes).astype(jnp.int32)


def discretize(codes, bins: int = 20) -> jax.Array:
  """dlib's `_histogram_discretize` (utils.py): each dimension's bin (1..bins) in a `bins`-bin
  histogram over its own range, i.e. `np.digitize(x, np.histogram(x, bins)[1][:-1])`; int32 (N, D).

  The ranges and the binning run in JAX; the (bins, D) edges are numpy's own, from each range. Made
  in XLA, `lo + i * (hi - lo) / bins` is not numpy's: XLA turns the division into a multiplication by
  1 / bins and fuses the rest into one multiply-add, which moves some edges by an ulp, and codes that
  sit on an edge (integer-valued ones often do) by a bin.
  """
  codes = jnp.asarray(codes, jnp.float32)
  lo, hi = jax.device_get((codes.min(axis=0), codes.max(axis=0)))
  edges = np.stack([np.histogram_bin_edges(np.stack([l, h]), bins)[:-1] for l, h in zip(lo, hi)], axis=1)
  return _digitize(codes, edges)


def _joint_counts(a: jax.Array, b: jax.Array, num_a: int, num_b: int) -> jax.Array:
  """(Da, Db, num_a, num_b) counts of each pair of label values, by one-hot matmuls over row blocks."""
  n = a.shape[0]
  block = min(HISTOGRAM_BLOCK, n)
  pad = -n % block  # Padding rows are labelled -1, whose one-hot row is all zeros.
  a = jnp.pad(a, ((0, pad), (0, 0)), constant_values=-1).reshape(-1, block, a.shape[1])
  b = jnp.pad(b, ((0, pad), (0, 0)), constant_values=-1).reshape(-1, block, b.shape[1])

  def add(counts, ab):
    one_a = jax.nn.one_hot(ab[0], num_a).reshape(block, -1)
    one_b = jax.nn.one_hot(ab[1], num_b).reshape(block, -1)
    # 0/1 products summed in float32 are exact up to 2^24 rows, at any matmul precision.
    return counts + jnp.matmul(one_a.T, one_b, precision=lax.Precision.HIGHEST), None

  counts = jnp.zeros((a.shape[2] * num_a, b.shape[2] * num_b))
  counts, _ = lax.scan(add, counts, (a, b))
  return counts.reshape(a.shape[2], num_a, b.shape[2], num_b).transpose(0, 2, 1, 3)


def _mi_from_counts(counts: jax.Array) -> jax.Array:
  """MI in nats of each (..., num_a, num_b) contingency table, as sklearn's `mutual_info_score`."""
  n = counts.sum(axis=(-2, -1), keepdims=True)
  row, col = counts.sum(axis=-1, keepdims=True), counts.sum(axis=-2, keepdims=True)
  seen = counts > 0  # Where a cell is seen so are its row and column: the logs below are finite.
  safe = lambda v: jnp.where(seen, v, 1.0)
  terms = counts / n * (jnp.log(safe(counts)) + jnp.log(n) - jnp.log(safe(row)) - jnp.log(safe(col)))
  return jnp.maximum(jnp.where(seen, terms, 0.0).sum(axis=(-2, -1)), 0.0)


@functools.partial(jax.jit, static_argnames=("num_code_values", "num_factor_values"))
def _mutual_information(codes, factors, num_code_values: int, num_factor_values: int):
  return _mi_from_counts(_joint_counts(codes, factors, num_code_values, num_factor_values))


def mutual_information(discrete_codes, factors, num_code_values: Optional[int] = None,
                       num_factor_values: Optional[int] = None) -> jax.Array:
  """(D, K) discrete mutual information in nats between each code column and each factor column.

  dlib's `discrete_mutual_info` (utils.py): `sklearn.metrics.mutual_info_score` of every pair. Both
  inputs are non-negative int labels; `num_*_values` bound them (default: max + 1, read from the
  data; pass them, static, to jit this). Labels that never occur change nothing.
  """
  if num_code_values is None:
    num_code_values = _num_values(discrete_codes)
  if num_factor_values is None:
    num_factor_values = _num_values(factors)
  return _mutual_information(jnp.asarray(discrete_codes, jnp.int32), jnp.asarray(factors, jnp.int32),
                             num_code_values, num_factor_values)


@functools.partial(jax.jit, static_argnames="num_values")
def _factor_entropy(factors, num_values: int):
  counts = jax.nn.one_hot(factors, num_values).sum(axis=0)  # (K, num_values)
  p = counts / factors.shape[0]
  return -jnp.sum(jnp.where(counts > 0, p * jnp.log(jnp.where(counts > 0, p, 1.0)), 0.0), axis=1)


def factor_entropy(factors, num_values: Optional[int] = None) -> jax.Array:
  """(K,) empirical entropy in nats of each factor column (dlib's `discrete_entropy`, utils.py)."""
  if num_values is None:
    num_values = _num_values(factors)
  return _factor_entropy(jnp.asarray(factors, jnp.int32), num_values)


# --- MIG and modularity ---
@functools.partial(jax.jit, static_argnames=("bins", "num_factor_values"))
def _mig(discrete_codes, factors, bins: int, num_factor_values: int):
  mi = _mutual_information(discrete_codes, factors, bins + 1, num_factor_values)
  top2 = lax.top_k(mi.T, 2)[0]  # (K, 2): the two largest MIs with each factor.
  return mi, (top2[:, 0] - top2[:, 1]) / _factor_entropy(factors, num_factor_values)


def mig(codes, factors, bins: int = 20) -> Dict[str, Union[float, np.ndarray]]:
  """Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

  For each factor, the gap between the two code dimensions most informative about it, over the
  factor's entropy; averaged over factors. dlib's `compute_mig` (mig.py, "discrete_mig"): codes
  discretised into `bins` histogram bins. A constant factor has zero entropy and makes it nan, as
  in dlib. Returns {"mig": float, "per_factor": (K,) gaps, "mi": (D, K) MI matrix in nats}.
  """
  factors = _labels(factors, "factors")
  mi, gaps = _mig(discretize(codes, bins), jnp.asarray(factors, jnp.int32), bins, _num_values(factors))
  return {"mig": float(jnp.mean(gaps)), "per_factor": np.asarray(gaps), "mi": np.asarray(mi)}


@jax.jit
def modularity_from_mi(mi) -> jax.Array:
  """Ridgeway & Zemel's modularity of a (D, K) MI matrix: mean over codes of 1 - (sum of the
  squared MIs but the largest) / (largest * (K - 1)); 0 for a code with no information (dlib)."""
  squared = jnp.square(mi)
  top = squared.max(axis=1)
  delta = (squared.sum(axis=1) - top) / (top * (squared.shape[1] - 1.0))
  return jnp.mean(jnp.where(top == 0.0, 0.0, 1.0 - delta))


def modularity(codes, factors, bins: int = 20) -> float:
  """Modularity (Ridgeway & Zemel 2018, "Learning Deep Disentangled Embeddings With the F-Statistic
  Loss"): 1 when each code dimension carries information about one factor only.

  dlib's `compute_modularity_explicitness` (modularity_explicitness.py, "modularity_score"): MI of
  codes discretised into `bins` histogram bins. Explicitness (that file's other score) is not here.
  """
  factors = _labels(factors, "factors")
  mi = mutual_information(discretize(codes, bins), factors, bins + 1, _num_values(factors))
  return float(modularity_from_mi(mi))


# --- DCI ---
def _forest(seed: int, num_codes: int):
  # Small and shallow, with half the dimensions tried at each split: of the random and extremely-
  # randomised forests tried (depth 6-12, 10-20 trees, 3, 5 or 10 of 10 dimensions per split), the
  # closest to dlib's boosted trees on DCI (see `dci`). At least 3 dimensions per split: with fewer, a
  # node may see none of the informative ones and credit a useless one (3-dimensional identity codes
  # scored 0.93 with 1 per split, 1.0 with 3, as boosted trees do).
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top  (scikit-learn: ~1 s, only for DCI/SAP)
  return ensemble.RandomForestClassifier(n_estimators=10, max_depth=8, min_samples_leaf=20,
                                         max_features=min(num_codes, max(3, num_codes // 2)), n_jobs=-1,
                                         random_state=seed)


def _boosted_trees(seed: int, num_codes: int):
  del num_codes
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top
  return ensemble.GradientBoostingClassifier(random_state=seed)  # dlib's, exactly.


IMPORTANCE_MODELS: Dict[str, Callable[[int, int], object]] = {"gbt": _boosted_trees, "forest": _forest}


@jax.jit
def dci_from_importance(importance) -> Dict[str, jax.Array]:
  """Disentanglement and completeness of a (D, K) importance matrix (dlib dci.py, Eastwood & Williams).

  Disentanglement: 1 - entropy (base K) of each code's importance over factors, weighted by the
  code's share of all importance; completeness: 1 - entropy (base D) of each factor's importance over
  codes, weighted by the factor's share. 1e-11 is added before normalising, as dlib.
  """
  importance = jnp.asarray(importance, jnp.float32)
  num_codes, num_factors = importance.shape

  def one_minus_entropy(p, axis, base):
    p = (p + 1e-11) / jnp.sum(p + 1e-11, axis=axis, keepdims=True)
    return 1.0 + jnp.sum(p * jnp.log(p), axis=axis) / jnp.log(base)

  total = importance.sum()
  weights = jnp.where(total == 0.0, jnp.ones_like(importance), importance)  # dlib: all-zero -> uniform.
  return {
      "disentanglement": jnp.sum(one_minus_entropy(importance, 1, num_factors) * weights.sum(1) / weights.sum()),
      "completeness": jnp.sum(one_minus_entropy(importance, 0, num_codes) * weights.sum(0) / weights.sum()),
  }


def dci(train_codes, train_factors, test_codes, test_factors,
        importance: Union[str, Callable[[int, int], object]] = "forest",
        seed: int = 0) -> Dict[str, Union[float, np.ndarray]]:
  """Disentanglement, completeness and informativeness (Eastwood & Williams 2018, "A Framework for the
  Quantitative Evaluation of Disentangled Representations"), as dlib's `compute_dci` (dci.py).

  One classifier per factor predicts it from all codes; its `feature_importances_` form column k of
  the (D, K) importance matrix. `importance`: "gbt" is dlib's model exactly (scikit-learn's default
  GradientBoostingClassifier; 8-24 minutes per call on 10,000 x 10 codes of dSprites-like factors on
  2 shared cores); "forest" (the default) is a 10-tree random forest, depth 8 (seconds). Measured on
  random linear mixtures of dSprites-like factors (sizes 3, 6, 40, 32, 32; D = 10; noise 0.1; 10,000
  train, 5,000 test; forest: mean of 3 seeds, std <= 0.02), gbt -> forest:
    entangled (dense mixing):        D 0.240 -> 0.214, C 0.191 -> 0.174, I 0.468 -> 0.459;
    5 mixed dims, 5 noise dims:      D 0.368 -> 0.383, C 0.383 -> 0.431, I 0.415 -> 0.414;
    5 identity dims, 5 mixed:        D 0.556 -> 0.591, C 0.473 -> 0.469, I 0.451 -> 0.455;
    sparse tanh mixing, 2 collapsed: D 0.517 -> 0.517, C 0.562 -> 0.542, I 0.458 -> 0.464
  (the last not used to choose the model): within 0.05, same order. On 3-dimensional codes it reads
  low: D 0.605 -> 0.517 for a noisy mixture (identity codes: 1.0 both). Compare runs with one model;
  use "gbt" for numbers to set beside dlib's. Or pass `importance(seed, num_codes)` -> any
  scikit-learn classifier with `feature_importances_`.

  Returns {"disentanglement", "completeness", "informativeness" (mean test accuracy over factors:
  dlib's "informativeness_test"; the paper's informativeness is the prediction error, here 1 - it),
  "informativeness_train", "importance": (D, K) matrix}.
  """
  train_factors, test_factors = _labels(train_factors, "train_factors"), _labels(test_factors, "test_factors")
  if isinstance(importance, str) and importance not in IMPORTANCE_MODELS:
    raise ValueError(f"importance must be one of {sorted(IMPORTANCE_MODELS)} or a factory, got {importance!r}")
  make = IMPORTANCE_MODELS[importance] if isinstance(importance, str) else importance
  train_codes, test_codes = np.asarray(train_codes), np.asarray(test_codes)
  matrix = np.zeros((train_codes.shape[1], train_factors.shape[1]))
  train_accuracy, test_accuracy = [], []
  for k in range(train_factors.shape[1]):
    model = make(seed, train_codes.shape[1]).fit(train_codes, train_factors[:, k])
    matrix[:, k] = np.abs(model.feature_importances_)
    train_accuracy.append(np.mean(model.predict(train_codes) == train_factors[:, k]))
    test_accuracy.append(np.mean(model.predict(test_codes) == test_factors[:, k]))
  scores = {name: float(v) for name, v in dci_from_importance(matrix).items()}
  return {**scores, "informativeness": float(np.mean(test_accuracy)),
          "informativeness_train": float(np.mean(train_accuracy)), "importance": matrix}


# --- SAP ---
@jax.jit
def _squared_correlation(codes, factors):
  """(D, K) squared Pearson correlations; 0 where a code is constant (dlib's continuous SAP)."""
  codes, factors = jnp.asarray(codes, jnp.float32), jnp.asarray(factors, jnp.float32)
  dc, df = codes - codes.mean(axis=0), factors - factors.mean(axis=0)
  n = codes.shape[0] - 1.0
  var_c, var_f = jnp.sum(dc * dc, axis=0) / n, jnp.sum(df * df, axis=0) / n
  cov = jnp.matmul(dc.T, df, precision=lax.Precision.HIGHEST) / n
  return jnp.where(var_c[:, None] > 1e-12, jnp.square(cov) / (var_c[:, None] * var_f[None, :]), 0.0)


def sap(train_codes, train_factors, test_codes, test_factors,
        continuous_factors: bool = False) -> Dict[str, Union[float, np.ndarray]]:
  """Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of Disentangled
  Latent Concepts from Unlabeled Observations", Sec. 3), as dlib's `compute_sap` (sap_score.py).

  Score each (code dimension, factor) pair by how well that dimension alone predicts the factor;
  SAP is the mean over factors of the gap between the two best dimensions. Discrete factors (dlib's
  default): test accuracy of `LinearSVC(C=0.01, class_weight="balanced")` fitted on the one
  dimension. Continuous factors: squared correlation on the training set (the test set is unused).
  Returns {"sap": float, "score_matrix": (D, K)}. The SVMs run scikit-learn's default solver, the
  primal one since 1.5 (dlib's era used the dual one): on 10,000 x 10 codes of dSprites-like factors
  the score matrices differed by at most 2e-4 (one test example), the SAP not at all, in half the time.
  """
  if continuous_factors:
    matrix = np.asarray(_squared_correlation(train_codes, train_factors), np.float64)
  else:
    train_factors, test_factors = _labels(train_factors, "train_factors"), _labels(test_factors, "test_factors")
    train_codes, test_codes = np.asarray(train_codes), np.asarray(test_codes)
    matrix = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    from sklearn import svm  # pylint: disable=g-import-not-at-top
    for d in range(train_codes.shape[1]):
      for k in range(train_factors.shape[1]):
        model = svm.LinearSVC(C=0.01, class_weight="balanced").fit(train_codes[:, d:d + 1], train_factors[:, k])
        matrix[d, k] = np.mean(model.predict(test_codes[:, d:d + 1]) == test_factors[:, k])
  top2 = np.sort(matrix, axis=0)[-2:]
  return {"sap": float(np.mean(top2[1] - top2[0])), "score_matrix": matrix}


# --- Unsupervised ---
