"""ae_research.metrics.sample_quality against SciPy/NumPy references written out here, and its invariances."""
import jax
import numpy as np
import pytest
import scipy.linalg

from ae_research.metrics import sample_quality as sq


def _gaussian(rng, n, width, shift=0.0, mix=0.0):
  """n rows of a correlated Gaussian in `width` dimensions (float32); `mix` changes the covariance."""
  base = np.random.default_rng(0).normal(size=(width, width)) / np.sqrt(width)
  transform = base + mix * np.random.default_rng(1).normal(size=(width, width)) / np.sqrt(width)
  return (rng.normal(size=(n, width)) @ transform + shift).astype(np.float32)


def _scipy_fid(real, fake):
  real, fake = real.astype(np.float64), fake.astype(np.float64)
  s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
  diff = real.mean(axis=0) - fake.mean(axis=0)
  return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)


# --- FID ---
def test_fid_of_a_set_with_itself_is_zero():
  x = _gaussian(np.random.default_rng(2), 2000, 16, shift=3.0)
  scale = 2 * np.trace(np.cov(x, rowvar=False))
  assert abs(float(sq.fid(x, x))) < 1e-5 * scale


@pytest.mark.parametrize("width", [16, 64])
def test_fid_matches_scipy_sqrtm_in_float64(width):
  rng = np.random.default_rng(width)
  real, fake = _gaussian(rng, 2000, width), _gaussian(rng, 2000, width, shift=0.3, mix=0.5)
  expected = _scipy_fid(real, fake)
  # Measured: 2.1e-6 (F = 16) and 6.2e-7 (F = 64) relative; the bound leaves room for other BLAS/LAPACKs.
  assert float(sq.fid(real, fake)) == pytest.approx(expected, rel=1e-4)

  mu, cov = sq.gaussian_stats(real)  # np.mean and np.cov's unbiased covariance.
  np.testing.assert_allclose(mu, real.astype(np.float64).mean(axis=0), atol=1e-5)
  np.testing.assert_allclose(cov, np.cov(real.astype(np.float64), rowvar=False), atol=1e-5)
  cached = jax.jit(sq.fid_from_stats)(mu, cov, *sq.gaussian_stats(fake))  # A reference set's cached stats.
  assert float(cached) == pytest.approx(expected, rel=1e-4)


def test_fid_in_float64_under_x64():
  rng = np.random.default_rng(3)
  real, fake = _gaussian(rng, 500, 16), _gaussian(rng, 400, 16, shift=0.1, mix=0.3)
  with jax.enable_x64(True):
    value = sq.fid(real.astype(np.float64), fake.astype(np.float64))
    assert value.dtype == np.float64
    assert float(value) == pytest.approx(_scipy_fid(real, fake), rel=1e-10)


# --- KID ---
def _numpy_mmd2_unbiased(x, y):
  x, y = x.astype(np.float64), y.astype(np.float64)
  m = len(x)
  kernel = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3  # noqa: E731
  k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return within - 2 * k_xy.sum() / m**2


def test_kid_matches_numpy_on_whole_sets():
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(40, 8)).astype(np.float32), (rng.normal(size=(40, 8)) + 0.3).astype(np.float32)
  # Subsets as large as the sets: every subset is a permutation of both, so every MMD^2 is the whole one.
  mean, std = sq.kid(x, y, jax.random.key(0), num_subsets=3, subset_size=50)
  assert float(mean) == pytest.approx(_numpy_mmd2_unbiased(x, y), rel=1e-5)
  assert float(std) < 1e-5 * abs(float(mean))


def test_kid_subsets_are_drawn_without_replacement():
  # Averaged over subsets drawn without replacement, the subset U-statistics are unbiased for the whole
  # sets' one; with replacement, repeated rows would enter the within-set sums and bias them upwards.
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(100, 4)).astype(np.float32), (rng.normal(size=(100, 4)) + 0.5).astype(np.float32)
  mean, std = sq.kid(x, y, jax.random.key(1), num_subsets=2000, subset_size=30)
  assert abs(float(mean) - _numpy_mmd2_unbiased(x, y)) < 4 * float(std) / np.sqrt(2000)


def test_kid_is_unbiased_near_zero_and_positive_for_a_shift():
  rng = np.random.default_rng(6)
  real, same = _gaussian(rng, 2000, 16), _gaussian(rng, 2000, 16)
  mean, std = sq.kid(real, same, jax.random.key(2), num_subsets=50, subset_size=500)
  assert abs(float(mean)) < float(std)  # The biased (V-statistic) estimate is 5.6 std above zero here.
  mean, std = sq.kid(real, _gaussian(rng, 2000, 16, shift=0.5), jax.random.key(2), num_subsets=50, subset_size=500)
  assert float(mean) > 10 * float(std) > 0


# --- Precision, recall, density, coverage ---
def _numpy_prdc(real, fake, pr_k, dc_k):
  """Brute force in float64: all pairwise distances, radii by sorting (column 0 is the point itself)."""
  real, fake = real.astype(np.float64), fake.astype(np.float64)
  dist = lambda a, b: np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))  # noqa: E731
  real_sorted, fake_sorted = np.sort(dist(real, real), axis=1), np.sort(dist(fake, fake), axis=1)
  r_pr, f_pr, r_dc = real_sorted[:, pr_k], fake_sorted[:, pr_k], real_sorted[:, dc_k]
  cross = dist(real, fake)
  return {"precision": (cross <= r_pr[:, None]).any(axis=0).mean(),
          "recall": (cross <= f_pr[None, :]).any(axis=1).mean(),
          "density": (cross < r_dc[:, None]).sum() / (dc_k * len(fake)),
          "coverage": (cross.min(axis=1) < r_dc).mean()}


@pytest.fixture(scope="module")
def small_case():
  rng = np.random.default_rng(7)
  real = rng.normal(size=(300, 6)).astype(np.float32)
  fake = (rng.normal(size=(250, 6)) * 1.2 + 0.3).astype(np.float32)
  return real, fake, _numpy_prdc(real, fake, pr_k=3, dc_k=5)


@pytest.mark.parametrize("block_rows", [1024, 100, 7])  # Whole sets; divides 300, not 250; divides neither.
def test_prdc_match_brute_force_numpy_for_any_block_size(small_case, block_rows):
  real, fake, expected = small_case
  precision, recall = sq.precision_recall(real, fake, k=3, block_rows=block_rows)
  density, coverage = sq.density_coverage(real, fake, k=5, block_rows=block_rows)
  got = {"precision": precision, "recall": recall, "density": density, "coverage": coverage}
  for name, value in got.items():
    assert float(value) == pytest.approx(expected[name], abs=1e-6), name


def test_sample_quality_under_jit_equals_the_separate_metrics(small_case):
  real, fake, expected = small_case
  key = jax.random.key(3)
  together = jax.jit(lambda r, f, k: sq.sample_quality(r, f, k, num_subsets=4, subset_size=100, block_rows=64))(
      real, fake, key)
  assert sorted(together) == sorted(["fid", "kid", "kid_std", "precision", "recall", "density", "coverage"])
  for name in ("precision", "recall", "density", "coverage"):
    assert float(together[name]) == pytest.approx(expected[name], abs=1e-6), name
  assert float(together["fid"]) == pytest.approx(float(jax.jit(sq.fid)(real, fake)), rel=1e-6)
  kid_mean, kid_std = jax.jit(lambda r, f, k: sq.kid(r, f, k, num_subsets=4, subset_size=100))(real, fake, key)
  assert float(together["kid"]) == pytest.approx(float(kid_mean), rel=1e-5)
  assert float(together["kid_std"]) == pytest.approx(float(kid_std), rel=1e-4)


def test_identical_sets_score_one():
  x = _gaussian(np.random.default_rng(8), 400, 8)
  assert [float(v) for v in sq.precision_recall(x, x)] == [1.0, 1.0]
  density, coverage = sq.density_coverage(x, x)
  # Each real ball holds its own point and k - 1 neighbours (open ball), so density is exactly 1.
  assert float(coverage) == 1.0 and float(density) == pytest.approx(1.0, abs=1e-6)


def test_one_mode_of_two_has_precision_without_recall():
  rng = np.random.default_rng(9)
  offset = np.zeros(8, np.float32)
  offset[0] = 10.0
  two_modes = np.concatenate([_gaussian(rng, 200, 8) - offset, _gaussian(rng, 200, 8) + offset])
  one_mode = _gaussian(rng, 400, 8) + offset

  precision, recall = (float(v) for v in sq.precision_recall(two_modes, one_mode))
  assert precision > 0.9 and recall < 0.6
  density, coverage = (float(v) for v in sq.density_coverage(two_modes, one_mode))
  assert coverage < 0.6 and density > 0.8  # A dropped mode costs coverage, not density (fidelity).
  precision, recall = (float(v) for v in sq.precision_recall(one_mode, two_modes))  # And the reverse.
  assert precision < 0.6 and recall > 0.9


def test_fakes_crowding_the_centre_have_density_above_one():
  rng = np.random.default_rng(10)
  real, crowded = _gaussian(rng, 400, 8), 0.5 * _gaussian(rng, 400, 8)
  density, coverage = (float(v) for v in sq.density_coverage(real, crowded))
  assert density > 1.3 and coverage < 0.85  # Measured: 1.6 and 0.73.


def test_bad_shapes_are_refused():
  x = np.zeros((10, 4), np.float32)
  with pytest.raises(ValueError, match="differ in width"):
    sq.fid(x, np.zeros((10, 5), np.float32))
  with pytest.raises(ValueError, match="k-NN radii"):
    sq.precision_recall(x, x, k=10)
