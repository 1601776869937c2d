"""Disentanglement metrics: their extremes, their invariances, and agreement with the papers'
definitions written out here in NumPy and scikit-learn (as disentanglement_lib computes them)."""
import itertools

import jax
import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as sk_metrics

from ae_research.metrics import codes as codes_lib
from ae_research.metrics import disentanglement as dm
from ae_research.metrics import ground_truth as gt

DSPRITES_SIZES = (3, 6, 40, 32, 32)
SMALL_SIZES = (4, 5, 6)


def _grid(sizes):
  return np.array(list(itertools.product(*[range(s) for s in sizes])))


def _small_sampler(seed=0):
  """A complete 4 x 5 x 6 factor grid in shuffled order; each image is its factors (injective)."""
  grid = _grid(SMALL_SIZES)[np.random.default_rng(seed).permutation(np.prod(SMALL_SIZES))]
  return gt.ArraySampler(grid.astype(np.float32), grid, SMALL_SIZES, names=("a", "b", "c"))


@pytest.fixture(scope="module")
def dsprites_like():
  """10,000 distinct rows of the dSprites factor grid (737,280 rows) and a fixed random linear code."""
  rng = np.random.default_rng(0)
  rows = rng.choice(np.prod(DSPRITES_SIZES), 10_000, replace=False)
  factors = np.stack(np.unravel_index(rows, DSPRITES_SIZES), axis=1)
  scaled = factors / (np.array(DSPRITES_SIZES) - 1.0)
  codes = scaled @ rng.normal(size=(5, 10)) + 0.1 * rng.normal(size=(10_000, 10))
  return codes.astype(np.float32), factors


def _reference_discretize(codes, bins=20):
  return np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1)


def _reference_mi(discrete, factors):
  return np.array([[sk_metrics.mutual_info_score(f, c) for f in factors.T] for c in discrete.T])


def test_discretize_matches_numpy_histograms():
  rng = np.random.default_rng(1)
  codes = (rng.normal(size=(2000, 6)) * [1e-3, 1, 10, 100, 1, 1] + [0, 5, -3, 0, 0, 0]).astype(np.float32)
  codes[:, 4] = 2.5  # A constant dimension: numpy widens its range to [2, 3].
  codes[:, 5] = rng.integers(0, 7, 2000) / 3.0  # Values on bin edges.
  np.testing.assert_array_equal(np.asarray(dm.discretize(codes, 20)), _reference_discretize(codes, 20))
  np.testing.assert_array_equal(np.asarray(dm.discretize(codes, 7)), _reference_discretize(codes, 7))


def test_mutual_information_and_entropy_match_sklearn_and_jit():
  rng = np.random.default_rng(2)
  factors = rng.integers(0, 8, size=(5000, 3))
  discrete = np.c_[factors[:, :1] // 2, rng.integers(0, 5, size=(5000, 2))]
  jitted = jax.jit(dm.mutual_information, static_argnames=("num_code_values", "num_factor_values"))
  np.testing.assert_allclose(np.asarray(jitted(discrete, factors, num_code_values=5, num_factor_values=8)),
                             _reference_mi(discrete, factors), atol=1e-5)
  entropy = jax.jit(dm.factor_entropy, static_argnames="num_values")(factors, num_values=8)
  np.testing.assert_allclose(np.asarray(entropy), [sk_metrics.mutual_info_score(f, f) for f in factors.T], rtol=1e-5)


def test_mig_extremes_and_permutation_invariance():
  rng = np.random.default_rng(3)
  factors = _small_sampler().sample_factors(5000, rng)
  assert dm.mig(factors * 0.5 - 1.0, factors)["mig"] > 0.99
  assert abs(dm.mig(rng.normal(size=(5000, 6)), factors)["mig"]) < 0.02
  codes = factors @ rng.normal(size=(3, 6)) + rng.normal(size=(5000, 6))
  permuted = dm.mig(codes[:, ::-1][:, [1, 0, 3, 2, 5, 4]], factors)
  assert permuted["mig"] == pytest.approx(dm.mig(codes, factors)["mig"], abs=1e-6)
  assert permuted["mi"].shape == (6, 3)


def test_mig_and_dci_agree_with_reference_implementation(dsprites_like):
  codes, factors = dsprites_like
  discrete = _reference_discretize(codes)
  mi = _reference_mi(discrete, factors)
  entropy = np.array([sk_metrics.mutual_info_score(f, f) for f in factors.T])
  top = np.sort(mi, axis=0)[::-1]
  ours = dm.mig(codes, factors)
  np.testing.assert_allclose(ours["mi"], mi, atol=1e-5)
  assert ours["mig"] == pytest.approx(np.mean((top[0] - top[1]) / entropy), abs=1e-3)

  # DCI: the same importance model, fitted here; scores from dlib's formulas with scipy's entropy.
  train, test = slice(0, 8000), slice(8000, None)
  importance, accuracy = np.zeros((10, 5)), []
  for k in range(5):
    model = dm.IMPORTANCE_MODELS["forest"](0, 10).fit(codes[train], factors[train, k])
    importance[:, k] = model.feature_importances_
    accuracy.append(np.mean(model.predict(codes[test]) == factors[test, k]))
  per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=5)
  per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=10)
  expected = {"disentanglement": np.sum(per_code * importance.sum(1) / importance.sum()),
              "completeness": np.sum(per_factor * importance.sum(0) / importance.sum()),
              "informativeness": np.mean(accuracy)}
  scores = dm.dci(codes[train], factors[train], codes[test], factors[test])
  for name, value in expected.items():
    assert scores[name] == pytest.approx(value, abs=1e-3), name


def test_dci_of_scaled_factors_is_disentangled():
  rng = np.random.default_rng(4)
  sampler = _small_sampler()
  train, test = sampler.sample_factors(3000, rng), sampler.sample_factors(1000, rng)
  scale = np.array([2.0, -0.5, 10.0])
  scores = dm.dci(train * scale, train, test * scale, test)
  assert scores["disentanglement"] > 0.95 and scores["completeness"] > 0.95
  assert scores["informativeness"] == 1.0 and scores["importance"].shape == (3, 3)
  mixing = rng.normal(size=(3, 3))
  mixed = dm.dci(train @ mixing, train, test @ mixing, test)
  assert mixed["disentanglement"] < scores["disentanglement"] - 0.2


def test_importance_extremes_under_jit():
  assert float(dm.dci_from_importance(np.eye(4))["disentanglement"]) == pytest.approx(1.0, abs=1e-6)
  uniform = dm.dci_from_importance(np.ones((4, 3)))
  assert float(uniform["disentanglement"]) == pytest.approx(0.0, abs=1e-6)
  assert float(uniform["completeness"]) == pytest.approx(0.0, abs=1e-6)
  assert float(dm.dci_from_importance(np.zeros((4, 3)))["completeness"]) == pytest.approx(0.0, abs=1e-6)


def test_modularity_and_sap():
  rng = np.random.default_rng(5)
  sampler = _small_sampler()
  train, test = sampler.sample_factors(2000, rng), sampler.sample_factors(1000, rng)
  # Modular: each dimension a (non-linear) function of one factor, two dimensions for factor 0.
  modular = np.c_[train, np.exp(train[:, 0])]
  mixing = rng.normal(size=(3, 4))
  assert dm.modularity(modular, train) > 0.98
  assert dm.modularity(train @ mixing, train) < dm.modularity(modular, train) - 0.1
  assert float(dm.modularity_from_mi(np.zeros((3, 2)))) == 0.0

  true = dm.sap(train.astype(np.float32), train, test.astype(np.float32), test)
  noise = dm.sap(rng.normal(size=(2000, 3)), train, rng.normal(size=(1000, 3)), test)
  assert true["sap"] > 0.3 and abs(noise["sap"]) < 0.05 and true["score_matrix"].shape == (3, 3)
  continuous = dm.sap(train * 1.0, train, None, None, continuous_factors=True)
  assert continuous["sap"] > 0.95


def test_factor_vae_and_beta_vae_scores():
  sampler = _small_sampler()
  true = lambda x: np.asarray(x)
  noise_rng = np.random.default_rng(6)
  noise = lambda x: noise_rng.normal(size=(len(x), 4))
  sizes = dict(num_train=300, num_eval=300)

  factor_vae = gt.factor_vae_score(true, sampler, np.random.default_rng(0), num_variance_estimate=2000, **sizes)
  assert factor_vae == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3}
  chance = gt.factor_vae_score(noise, sampler, np.random.default_rng(0), num_variance_estimate=2000, **sizes)
  assert 0.2 < chance["eval_accuracy"] < 0.5  # Chance is 1/3: three factors.
  # A collapsed dimension is pruned; it would otherwise win every vote.
  collapsed = lambda x: np.c_[np.asarray(x), np.zeros(len(x))]
  assert gt.factor_vae_score(collapsed, sampler, np.random.default_rng(0), **sizes)["num_active_dims"] == 3

  assert gt.beta_vae_score(true, sampler, np.random.default_rng(0), **sizes)["eval_accuracy"] == 1.0
  assert 0.2 < gt.beta_vae_score(noise, sampler, np.random.default_rng(0), **sizes)["eval_accuracy"] < 0.5


def test_factor_vae_is_reproducible_from_the_generator():
  rep = lambda x: np.asarray(x) @ np.array([[1.0, 0.5], [0.2, 1.0], [0.0, 0.3]])
  runs = [gt.factor_vae_score(rep, _small_sampler(), np.random.default_rng(7), num_train=100, num_eval=100,
                              num_variance_estimate=500, chunk_size=1000) for _ in range(2)]
  assert runs[0] == runs[1]


def test_array_sampler_indexes_the_grid_and_rejects_incomplete_ones():
  sampler = _small_sampler()
  assert isinstance(sampler, gt.GroundTruthSampler) and sampler.factor_names == ("a", "b", "c")
  factors = sampler.sample_factors(50, np.random.default_rng(8))
  np.testing.assert_array_equal(sampler.observations(factors), factors)
  grid = _grid(SMALL_SIZES)
  with pytest.raises(ValueError, match="exactly once"):
    gt.ArraySampler(grid[1:], grid[1:], SMALL_SIZES)
  with pytest.raises(ValueError, match="exactly once"):
    gt.ArraySampler(grid, np.r_[grid[:1], grid[:-1]], SMALL_SIZES)


def test_unsupervised_scores():
  rng = np.random.default_rng(9)
  means = np.c_[rng.normal(size=(4000, 3)), 0.05 * rng.normal(size=(4000, 2))]  # Variances 1 and 0.0025.
  assert codes_lib.active_units(means) == 3
  assert abs(codes_lib.gaussian_total_correlation(means)) < 0.01
  rho = 0.8
  correlated = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=20_000)
  assert codes_lib.gaussian_total_correlation(correlated) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.02)
