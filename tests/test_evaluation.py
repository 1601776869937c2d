"""Evaluation: metrics against independent computations, eval.json, figures, ae-eval."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from ae_research import train_and_evaluate
from ae_research.batched import BatchedApply
from ae_research.evaluation import baselines
from ae_research.errors import ConfigError
from ae_research.evaluation import likelihood
from ae_research.evaluation import probes
from ae_research.models import VAE
from ae_research.sharding import make_mesh
from ae_research.state import split_model
from conftest import xla_flags  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.


def test_pca_baseline_matches_svd():
  rng = np.random.default_rng(0)
  train, test = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12)), rng.normal(size=(100, 12))
  mean = train.mean(0)
  _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
  proj = (test - mean) @ vt[:3].T @ vt[:3] + mean
  assert probes.pca_reconstruction_mse(train, test, 3) == pytest.approx(np.mean((proj - test) ** 2), rel=1e-4)


def test_probes_agree_with_scikit_learn_on_digits():
  """The on-device probes against the scikit-learn estimators they replace, on real data."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  x, y = digits.data.astype(np.float32) / 16, digits.target
  xtr, ytr, xte, yte = x[:1400], y[:1400], x[1400:], y[1400:]
  linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(xtr, ytr).score(xte, yte)
  assert probes.linear_probe_accuracy(xtr, ytr, xte, yte) == pytest.approx(linear, abs=0.01)
  assert probes.knn_accuracy(xtr, ytr, xte, yte, k=5) == pytest.approx(
      KNeighborsClassifier(5).fit(xtr, ytr).score(xte, yte), abs=0.01)
  pca = PCA(5).fit(xtr)
  assert probes.pca_reconstruction_mse(xtr, xte, 5) == pytest.approx(
      np.mean((pca.inverse_transform(pca.transform(xte)) - xte) ** 2), rel=1e-4)
  fit, score = np.random.default_rng(0).permutation(len(x))[:898], np.random.default_rng(0).permutation(len(x))[898:]
  r2 = KNeighborsRegressor(10).fit(x[fit], y[fit]).score(x[score], y[score])
  assert probes.knn_regression_r2(x, y.astype(np.float32), k=10, seed=0) == pytest.approx(r2, abs=0.01)


def test_probe_gradient_through_the_transposed_copy_is_autodiffs():
  """The linear probe's hand-written backward pass (it reads a transposed copy for speed) against autodiff."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x, labels = rng.normal(size=(50, 7)).astype(np.float32), rng.integers(0, 3, size=50)
  w, b = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
  plain = lambda w, b: optax.softmax_cross_entropy_with_integer_labels(x @ w + b, labels).mean()
  ours = lambda w, b: probes._mean_cross_entropy(x, x.T.copy(), labels, w, b)  # pylint: disable=protected-access
  (v0, g0), (v1, g1) = (jax.value_and_grad(f, argnums=(0, 1))(w, b) for f in (plain, ours))
  assert float(v1) == pytest.approx(float(v0), rel=1e-6)
  for a, e in zip(g1, g0):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7)


def test_baselines_are_computed_once_per_data_and_setting(tmp_path, monkeypatch):
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path))
  calls = []
  compute = lambda: calls.append(1) or {"value": float(len(calls))}
  data = np.arange(12, dtype=np.float32).reshape(3, 4)
  first = baselines.cached("toy", {"k": 5}, [data], compute)
  assert baselines.cached("toy", {"k": 5}, [data.copy()], compute) == first and len(calls) == 1  # A hit.
  changed = data.copy()
  changed[1, 2] += 1e-3  # One value of the data set: a different entry.
  assert baselines.cached("toy", {"k": 5}, [changed], compute) == {"value": 2.0}
  assert baselines.cached("toy", {"k": 7}, [data], compute) == {"value": 3.0}  # Another setting.
  assert baselines.cached("toy", {"k": 5}, [data.reshape(4, 3)], compute) == {"value": 4.0}  # Same bytes, new shape.
  assert baselines.cached("toy", {"k": 5}, [data], compute, enabled=False) == {"value": 5.0}
  assert len(list((tmp_path / "baselines").iterdir())) == 4
  # A real baseline: the second call reads the file instead of fitting.
  rng = np.random.default_rng(0)
  train, test = rng.normal(size=(200, 6)).astype(np.float32), rng.normal(size=(50, 6)).astype(np.float32)
  value = baselines.pca_mse(train, test, 2)
  monkeypatch.setattr(probes, "pca_reconstruction_mse", lambda *a, **k: pytest.fail("recomputed a cached baseline"))
  assert baselines.pca_mse(train, test, 2) == value


def test_baselines_of_8_bit_images_are_keyed_by_their_bytes_and_decoded_values(tmp_path, monkeypatch):
  from ae_research.data.storage import ScaledImages  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path))
  raw = np.random.default_rng(0).integers(0, 256, (300, 4, 4, 1)).astype(np.uint8)
  unit, centered = ScaledImages(raw, 255.0, "unit"), ScaledImages(raw, 255.0, "centered")
  calls = []
  compute = lambda: calls.append(1) or {"value": float(len(calls))}
  assert baselines.cached("toy", {}, [unit], compute) == baselines.cached("toy", {}, [ScaledImages(raw.copy(), 255.0,
                                                                                                   "unit")], compute)
  assert baselines.cached("toy", {}, [centered], compute) == {"value": 2.0}  # Same bytes, other values.
  test = np.asarray(unit)[:50]
  # PCA of the stored bytes' rows gives the number PCA of the float images gives.
  floats = baselines.pca_mse(np.asarray(unit), test, 3, max_train=200, enabled=False)
  assert baselines.pca_mse(unit, test, 3, max_train=200) == pytest.approx(floats, rel=1e-6)


def test_retrieval_precision_and_neighbours():
  labels = np.repeat(np.arange(5), 20)
  codes = np.eye(5)[labels] + 0.01 * np.random.default_rng(0).normal(size=(100, 5))
  assert probes.retrieval_precision(codes, labels, num_queries=100) == {1: 1.0, 4: 1.0, 10: 1.0}
  shuffled = probes.retrieval_precision(np.random.default_rng(1).normal(size=(100, 5)), labels, num_queries=100)
  assert shuffled[10] < 0.45  # Chance is 19/99.
  idx, dist = probes.cosine_neighbours(np.array([[1.0, 0], [2.0, 0.1], [0, 1.0]]), np.array([0]), 2)
  assert list(idx[0]) == [1, 2] and dist[0, 1] == pytest.approx(1.0)


def test_knn_regression_r2_detects_an_ordering():
  z = np.random.default_rng(0).uniform(size=(2000, 2))
  assert probes.knn_regression_r2(z, np.sin(6 * z[:, 0]) + z[:, 1] ** 2) > 0.95
  assert probes.knn_regression_r2(z, np.random.default_rng(1).normal(size=2000)) < 0.1


def test_iwae_bound_is_tighter_than_the_elbo():
  vae = VAE((4, 4, 1), latent_dim=2, hidden=[16], rngs=nnx.Rngs(0))
  graphdef, params, model_state = split_model(vae)
  variables = nnx.merge_state(params, model_state)
  x = (np.random.default_rng(0).uniform(size=(64, 4, 4, 1)) > 0.5).astype(np.float32)
  apply = BatchedApply(graphdef, make_mesh(), 32)
  bound = lambda k, seed=1: apply(likelihood.per_example_iwae, variables, {"image": x}, jax.random.PRNGKey(seed),
                                  samples=k)
  elbo = np.mean(bound(1)["elbo"])
  many = bound(500)
  assert np.mean(many["iwae"]) > elbo  # log p(x) >= IWAE_k >= ELBO.
  assert np.mean(many["elbo"]) == pytest.approx(elbo, abs=1e-5)  # The same ELBO samples.
  # The bound does not decrease with K (in expectation: averaged over examples and three seeds).
  k1, k5, k50 = (np.mean([bound(k, seed)["iwae"] for seed in (1, 2, 3)]) for k in (1, 5, 50))
  assert k1 < k5 < k50 < np.mean(many["iwae"]) + 0.05


def test_batched_apply_unrolled_in_one_batch_pieces_equals_the_one_program(make_cfg):
  """Unrolled (conv on CPU), BatchedApply runs one batch per program: the same outputs, noise included."""
  vae = VAE((4, 4, 1), latent_dim=2, hidden=[16], rngs=nnx.Rngs(0))
  graphdef, params, model_state = split_model(vae)
  variables = nnx.merge_state(params, model_state)
  x = (np.random.default_rng(0).uniform(size=(70, 4, 4, 1)) > 0.5).astype(np.float32)  # 3 batches, one padded.
  out = [BatchedApply(graphdef, make_mesh(), 32, unroll=unroll)(likelihood.per_example_iwae, variables, {"image": x},
                                                                 jax.random.PRNGKey(1), samples=3)
         for unroll in (False, True)]
  assert out[0]["iwae"].shape == (70,) and len(set(np.round(out[0]["iwae"], 4))) > 1
  for key in out[0]:
    np.testing.assert_allclose(out[1][key], out[0][key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_eval_json_agrees_with_the_training_eval_and_has_probes(make_cfg, tmp_path):
  summary = train_and_evaluate(make_cfg(["trainer.epochs=3", "evaluation.linear_probe.max_train=500",
                                         "evaluation.knn.max_train=500"]), str(tmp_path))
  ev = json.loads((tmp_path / "eval.json").read_text())
  assert ev["test/mse"] == pytest.approx(summary["eval/mse"], rel=1e-5)  # Two independent code paths.
  for key in ("test/psnr", "baseline/pca_mse", "test/mse_over_pca_mse", "probe/linear_codes", "probe/linear_pixels",
              "probe/knn5_codes", "retrieval/precision@1", "retrieval/precision@4", "retrieval/precision@10",
              "codes/mean_activation", "codes/frac_near_zero"):
    assert key in ev, key
  assert ev["probe/linear_pixels"] > 0.85  # Raw 8x8 digits are linearly separable enough.
  for name in ("codes", "manifold", "reconstructions", "filters", "retrieval", "curves"):
    assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 5_000, name


def test_denoising_and_vae_metrics_and_figures(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(["model=vae", "model.hidden=[32]", "loss=vae_bce", "dataset.scale=unit",
                               "corruption=salt_pepper", "evaluation.likelihood.samples=50",
                               "evaluation.evaluators=[reconstruction,likelihood]", "trainer.max_steps=30"]), str(tmp_path))
  ev = json.loads((tmp_path / "eval.json").read_text())
  for key in ("test/psnr_corrupted", "test/elbo", "test/nll_iwae", "test/bce", "test/elbo_kl", "test/bits_per_dim"):
    assert key in ev, key
  assert not any(k.startswith(("probe/", "retrieval/", "filters/")) for k in ev)  # Only the two evaluators listed.
  assert ev["test/nll_iwae"] <= -ev["test/elbo"] + 1e-3
  assert ev["test/bits_per_dim"] == pytest.approx(ev["test/nll_iwae"] / (64 * np.log(2)))
  for name in ("denoising", "manifold"):
    assert (tmp_path / "figures" / f"{name}.png").exists()


@pytest.mark.slow
def test_ae_eval_command(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(["trainer.max_steps=10", "evaluation.enabled=false"]), str(tmp_path))
  assert not (tmp_path / "eval.json").exists()
  env = {**os.environ, "XLA_FLAGS": xla_flags(2)}
  run = lambda *args: subprocess.run([sys.executable, "-m", "ae_research.eval_cli", *args], capture_output=True,
                                     text=True, env=env, timeout=300, check=False)
  result = run(f"run_dir={tmp_path}", "evaluation.evaluators=[reconstruction,filters]")
  assert result.returncode == 0, result.stderr[-2000:]
  ev = json.loads((tmp_path / "eval.json").read_text())
  assert ev["step"] == 10 and "test/mse" in ev and "filters/frac_unmoved" in ev and "probe/linear_codes" not in ev
  assert (tmp_path / "figures" / "codes.png").exists()
  missing = run(f"run_dir={tmp_path / 'nope'}")
  assert missing.returncode == 2 and "not a run directory" in missing.stderr
  wrong = run(f"run_dir={tmp_path}", "evaluation.evaluators=[likelihood]")
  assert wrong.returncode == 2 and wrong.stderr.strip().splitlines()[-1] == (
      "error: evaluation.evaluators: likelihood needs a stochastic encoder; model MLPAutoencoder has none")


@pytest.mark.parametrize("evaluators, message", [
    ("[likelihood]", "evaluation.evaluators: likelihood needs a stochastic encoder; model MLPAutoencoder has none"),
    ("[ordinal_knn]", "evaluation.evaluators: ordinal_knn needs ordinal labels (a quantity per example); data set "
                      "digits has none"),
    ("[nope]", "evaluation.evaluators: no evaluator named 'nope'; the catalogue has classification, reconstruction"),
    ("[noisy_input]", "evaluation.noisy_input.sigma=None: set a noise std >= 0"),
])
def test_evaluators_that_cannot_run_are_config_errors_before_training(make_cfg, tmp_path, evaluators, message):
  with pytest.raises(ConfigError) as e:
    train_and_evaluate(make_cfg([f"evaluation.evaluators={evaluators}"]), str(tmp_path))
  assert str(e.value).startswith(message) and "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "metrics.jsonl")  # Nothing ran.


def test_default_leaves_out_what_cannot_run_and_a_list_runs_exactly_its_evaluators(make_cfg, tmp_path):
  from ae_research.config import build  # pylint: disable=g-import-not-at-top
  from ae_research.evaluation.base import resolve  # pylint: disable=g-import-not-at-top
  from ae_research.training.setup import setup  # pylint: disable=g-import-not-at-top
  cfg = make_cfg(["evaluation.evaluators=[default,jacobian]"])
  names = [e.name for e in resolve(cfg.evaluation, setup(cfg, devices=1), build)]
  assert names == ["reconstruction", "pca_baseline", "linear_probe", "knn", "retrieval", "filters", "jacobian"]
  vae = make_cfg(["model=vae", "loss=vae_bce", "dataset.scale=unit"])
  assert "likelihood" in [e.name for e in resolve(vae.evaluation, setup(vae, devices=1), build)]
  train_and_evaluate(make_cfg(["trainer.max_steps=5", "evaluation.evaluators=[reconstruction]"]), str(tmp_path))
  keys = set(json.loads((tmp_path / "eval.json").read_text()))
  assert keys == {"step", "test/mse", "test/psnr", "codes/dim", "codes/mean_activation", "codes/frac_near_zero",
                  "codes/frac_units_dead"}


def _gabor_bank(count=64, size=8, seed=0):
  """Oriented, localised Gabor filters (what UFLDL's edge detectors look like), as a (pixels, units) kernel."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:size, :size] - (size - 1) / 2
  bank = []
  for _ in range(count):
    theta, cx, cy = rng.uniform(0, np.pi), *rng.uniform(-1.5, 1.5, 2)
    u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
    bank.append(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8.0) * np.cos(2 * np.pi * u / 6.0 + rng.uniform(0, np.pi)))
  return np.stack(bank).reshape(count, -1).T


def test_filter_structure_separates_edges_from_noise():
  from ae_research.metrics import filters  # pylint: disable=g-import-not-at-top
  shape = (8, 8, 1)
  gabor = filters.filter_metrics(_gabor_bank(), None, shape)["filters/neighbour_correlation"]
  noise = filters.filter_metrics(np.random.default_rng(1).normal(size=(64, 64)), None, shape)
  assert gabor > 0.5 and abs(noise["filters/neighbour_correlation"]) < 0.1, (gabor, noise)
  assert noise["filters/frac_noise_like"] > 0.8  # 8x8 noise: ~0 +- 0.13.
  mixed = np.concatenate([_gabor_bank()[:, :16], np.random.default_rng(4).normal(size=(64, 16))], axis=1)
  assert filters.filter_metrics(mixed, None, shape)["filters/frac_noise_like"] == pytest.approx(0.5, abs=0.1)
  # A measure of energy concentration would prefer the noise; this one does not.
  conv = filters.filter_metrics(np.moveaxis(_gabor_bank(16).T.reshape(16, 8, 8, 1), 0, -1), None, (28, 28, 1))
  assert conv["filters/neighbour_correlation"] > 0.5  # Conv kernels (k, k, in, out) too.
  initial = np.random.default_rng(2).normal(size=(64, 10))
  moved = initial.copy()
  moved[:, :4] += 5.0 * np.random.default_rng(3).normal(size=(64, 4))  # 4 units trained, 6 barely moved.
  moved[:, 4:] *= 1.01
  stats = filters.filter_metrics(moved, initial, shape)
  assert stats["filters/frac_unmoved"] == pytest.approx(0.6) and stats["filters/median_relative_change"] < 0.5


def test_olshausen_whitening_flattens_the_spectrum_of_a_photograph():
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  from ae_research.data.photos import olshausen_whiten  # pylint: disable=g-import-not-at-top
  grey = load_sample_images().images[0].astype(np.float64).mean(axis=-1)[:256, :256] / 255.0

  def slope(image):  # Of log power against log radial frequency, mid frequencies.
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256)))
    bands = np.geomspace(0.02, 0.25, 8)
    means = [power[(f >= a) & (f < b)].mean() for a, b in zip(bands[:-1], bands[1:])]
    return np.polyfit(np.log(np.sqrt(bands[:-1] * bands[1:])), np.log(means), 1)[0]

  assert slope(grey) < -1.5  # Natural images: power falls like 1/f^2.
  assert abs(slope(olshausen_whiten(grey))) < 0.7  # Whitened: nearly flat.
