"""The generative family's parts against known answers, under `jax.jit`: MMD, the β-TCVAE decomposition,
DIP-VAE's penalties, the capacity schedule, the importance-weighted bound, the composed model's parts,
and the parts that cannot work together (one-line config errors, never shape errors in tracing)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ae_research.config.build import build
from ae_research.errors import ConfigError
from ae_research.losses.base import LossInputs
from ae_research.losses.objectives import CapacityKL, ImportanceWeightedBound
from ae_research.metrics import divergences
from ae_research.metrics.bounds import iwae_bound


def _gauss(key, n, d, shift=0.0):
  return jax.random.normal(key, (n, d)) + shift


@pytest.mark.parametrize("kernel,scales", [("imq", divergences.IMQ_SCALES), ("rbf", (1.0,))])
def test_mmd_is_zero_for_one_distribution_and_grows_with_a_shift(kernel, scales):
  mmd = jax.jit(divergences.mmd, static_argnums=(2, 3))
  x, y = _gauss(jax.random.key(0), 400, 4), _gauss(jax.random.key(1), 400, 4)
  same = float(mmd(x, y, kernel, scales))
  shifted = [float(mmd(x, _gauss(jax.random.key(1), 400, 4, s), kernel, scales)) for s in (0.5, 1.0, 2.0)]
  assert abs(same) < 0.05 * shifted[0], (same, shifted)
  assert 0 < shifted[0] < shifted[1] < shifted[2], shifted
  # Unbiased: over many pairs of samples of one distribution the mean is about 0, below and above.
  draws = np.array([float(mmd(_gauss(jax.random.key(2 * i), 50, 4), _gauss(jax.random.key(2 * i + 1), 50, 4),
                              kernel, scales)) for i in range(40)])
  assert abs(draws.mean()) < 3 * draws.std() / np.sqrt(len(draws)) and draws.min() < 0 < draws.max()
  # A padded row (mask 0) changes nothing.
  padded = jnp.concatenate([x, 100.0 + x[:3]])
  mask = jnp.concatenate([jnp.ones(400), jnp.zeros(3)])
  np.testing.assert_allclose(float(divergences.mmd(padded, y, kernel, scales, mask=mask)), same, rtol=1e-4, atol=1e-6)


def _codes(key, n, d, corr, log_var=-2.0):
  """Posterior means with correlation `corr` between every pair of dimensions, each N(0, 1), and one draw."""
  k_mean, k_draw = jax.random.split(key)
  cov = np.full((d, d), corr) + (1 - corr) * np.eye(d)
  mean = jax.random.normal(k_mean, (n, d)) @ jnp.asarray(np.linalg.cholesky(cov).T, jnp.float32)
  log_var = jnp.full((n, d), log_var)
  z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(k_draw, (n, d))
  log_pz = jnp.sum(-0.5 * (jnp.log(2 * jnp.pi) + jnp.square(z)), axis=1)
  return z, mean, log_var, log_pz


@pytest.mark.parametrize("estimator", divergences.TC_ESTIMATORS)
def test_tc_decomposition_parts_sum_to_the_kl_and_tc_sees_correlation(estimator):
  n, d = 512, 3
  tc = jax.jit(divergences.tc_decomposition, static_argnums=(4, 5))
  independent = tc(*_codes(jax.random.key(0), n, d, 0.0), n, estimator)
  correlated = tc(*_codes(jax.random.key(0), n, d, 0.9), n, estimator)
  for parts, corr in ((independent, 0.0), (correlated, 0.9)):
    z, mean, log_var, log_pz = _codes(jax.random.key(0), n, d, corr)
    log_qzx = jnp.sum(-0.5 * (jnp.log(2 * jnp.pi) + log_var + jnp.square(z - mean) * jnp.exp(-log_var)), axis=1)
    np.testing.assert_allclose(parts["mi"] + parts["tc"] + parts["dwkl"], log_qzx - log_pz, rtol=1e-5, atol=1e-4)
  tc_ind, tc_cor = float(independent["tc"].mean()), float(correlated["tc"].mean())
  # A Gaussian with pairwise correlation 0.9 in 3-D has TC = -log det(R) / 2 = 1.43 nats.
  assert tc_cor > tc_ind + 0.8, (tc_ind, tc_cor)
  if estimator == "mss":  # Stratified sampling estimates q(z) without MWS's log-N offset: TC near 0.
    assert abs(tc_ind) < 0.15, tc_ind


def test_tc_of_identical_posteriors_is_exactly_zero_under_stratified_sampling():
  """All posteriors N(0, I): q(z) = N(0, I) factorises; MSS's weights sum to 1, so its TC is 0 exactly."""
  z = jax.random.normal(jax.random.key(3), (64, 4))
  zeros = jnp.zeros_like(z)
  log_pz = jnp.sum(-0.5 * (jnp.log(2 * jnp.pi) + jnp.square(z)), axis=1)
  parts = divergences.tc_decomposition(z, zeros, zeros, log_pz, 1000, "mss")
  np.testing.assert_allclose(parts["tc"], 0.0, atol=1e-4)
  np.testing.assert_allclose(parts["dwkl"], 0.0, atol=1e-4)


def test_dip_penalties_vanish_at_the_identity_and_measure_the_departure():
  rng = np.random.default_rng(0)
  raw = rng.normal(size=(256, 4))
  raw -= raw.mean(0)
  white = raw @ np.linalg.inv(np.linalg.cholesky(raw.T @ raw / len(raw))).T  # Sample covariance exactly I.
  cov_i = jax.jit(divergences.dip_covariance, static_argnums=2)
  off, diag = divergences.dip_penalties(cov_i(jnp.asarray(white, jnp.float32), jnp.full((256, 4), -30.0), "i"))
  assert float(off) == pytest.approx(0, abs=1e-4) and float(diag) == pytest.approx(0, abs=1e-4)
  # DIP-VAE-II adds E[sigma^2]: means of covariance I/2 and variances 1/2 are again the identity.
  off, diag = divergences.dip_penalties(cov_i(jnp.asarray(white / np.sqrt(2), jnp.float32),
                                              jnp.full((256, 4), np.log(0.5)), "ii"))
  assert float(off) == pytest.approx(0, abs=1e-4) and float(diag) == pytest.approx(0, abs=1e-4)
  mixed = white @ np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]])
  cov = mixed.T @ mixed / len(mixed)
  off, diag = divergences.dip_penalties(cov_i(jnp.asarray(mixed, jnp.float32), jnp.zeros((256, 4)), "i"))
  np.testing.assert_allclose([off, diag], [np.sum(cov ** 2) - np.sum(np.diag(cov) ** 2), np.sum((np.diag(cov) - 1) ** 2)],
                             rtol=1e-4)


def test_capacity_term_follows_its_schedule():
  term = CapacityKL(capacity=20.0, steps=1000)
  kl = jnp.full((8,), 12.0)

  @jax.jit
  def value(step):
    return term(LossInputs(inputs=None, target=None, recon=None, aux={"kl": kl}, step=step))

  got = [float(value(jnp.asarray(s))) for s in (0, 250, 600, 1000, 5000)]
  np.testing.assert_allclose(got, [12.0, 7.0, 0.0, 8.0, 8.0], atol=1e-5)  # |12 - C|, C = 0, 5, 12, 20, 20.
  with pytest.raises(ConfigError, match="must be >= 0 and steps"):
    CapacityKL(capacity=5.0, steps=0)


def test_iwae_bound_of_one_sample_is_the_elbo_and_does_not_fall_with_k():
  log_w = jax.random.normal(jax.random.key(0), (1, 16))
  np.testing.assert_allclose(iwae_bound(log_w), log_w[0], rtol=1e-6)
  # log mean exp of K draws: in expectation non-decreasing in K (Burda et al. 2016, theorem 1).
  draws = 2.0 * jax.random.normal(jax.random.key(1), (200, 2000))
  means = [float(jnp.mean(iwae_bound(draws[:k]))) for k in (1, 5, 50, 200)]
  assert means == sorted(means) and means[-1] - means[0] > 1.0, means


def _model(overrides=(), input_shape=(28, 28, 1), fast=True):
  from conftest import compose_config  # pylint: disable=g-import-not-at-top
  small = [] if any("backbone" in o for o in overrides) else ["model.encoder.hidden=[32]"]
  cfg = compose_config(["model=gaussian_mlp", *small, *overrides], fast=fast)
  return build(cfg.model, "model", input_shape=input_shape, rngs=nnx.Rngs(0))


def test_the_composed_vaes_importance_weights_with_one_draw_are_its_elbo():
  model = _model(["model.samples=1"])
  x = (jax.random.uniform(jax.random.key(0), (6, 28, 28, 1)) > 0.5).astype(jnp.float32)
  _, aux = model(x, rng=jax.random.key(1), train=True)
  log_px = aux["px"].log_prob(x)
  np.testing.assert_allclose(aux["log_w"][0], log_px + aux["log_pz"] - aux["log_qzx"], rtol=1e-5)
  bound = ImportanceWeightedBound()(LossInputs(inputs=x, target=x, recon=None, aux=aux))
  np.testing.assert_allclose(bound, -(log_px - aux["log_qzx"] + aux["log_pz"]), rtol=1e-5)
  # In expectation the one-draw estimate is the closed-form ELBO: E[log q - log p] = KL.
  graphdef, state = nnx.split(model)

  def kl_estimate(key):
    out = nnx.merge(graphdef, state)(x, rng=key, train=True)[1]
    return out["log_qzx"] - out["log_pz"]

  kls = jax.jit(jax.vmap(kl_estimate))(jax.random.split(jax.random.key(1), 200))
  np.testing.assert_allclose(kls.mean(0), aux["posterior"].kl_per_dim().sum(-1), atol=0.3)


def test_iwae_k_draws_tighten_the_bound_of_one_model():
  x = (jax.random.uniform(jax.random.key(0), (32, 28, 28, 1)) > 0.5).astype(jnp.float32)
  bounds = []
  for k in (1, 5, 50):
    model = _model([f"model.samples={k}"])  # Same seed: the same parameters for every K.
    _, aux = model(x, rng=jax.random.key(2), train=True)
    assert aux["log_w"].shape == (k, 32)
    bounds.append(float(jnp.mean(iwae_bound(aux["log_w"]))))
  assert bounds[0] < bounds[1] < bounds[2], bounds


def test_the_vq_latents_gradient_reaches_the_encoder():
  model = _model(["model/latent=vq", "~model/prior", "model.latent.tokens=4", "model.latent.dim=8",
                  "model.latent.num_codes=32"])
  x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(p):
    recon, _ = nnx.merge(graphdef, p, rest)(x)
    return jnp.mean(jnp.square(recon - x))

  grads = jax.jit(jax.grad(loss))(params)
  encoder_norm = sum(float(jnp.sum(jnp.square(g))) for g in jax.tree.leaves(grads["encoder"]))
  assert encoder_norm > 0  # Straight through the argmin.


@pytest.mark.parametrize("overrides,message", [
    (["model/latent=vq", "model/prior=vamp"], "VampPrior"),
    (["model/latent=vq", "~model/prior", "model/adversary=factor_mlp"], "needs a continuous latent"),
    (["model/latent=gaussian", "~model/prior"], "a gaussian latent needs a prior"),
    (["model/latent=deterministic", "~model/prior", "model.samples=5"], "several posterior draws need"),
    (["model/backbone=locatello_conv"], "backbone locatello_conv cannot take 8x8x1 inputs"),  # 8x8 digits: too small for four stride-2 convs.
])
def test_parts_that_cannot_work_together_are_one_line_errors(overrides, message):
  shape = (8, 8, 1) if "backbone" in overrides[0] else (28, 28, 1)
  with pytest.raises(ConfigError, match=message) as e:
    _model(overrides, input_shape=shape)
  assert "\n" not in str(e.value)


# Fashion-MNIST's and dSprites' 64 px in colour (CelebA-like); the ResNet is built for 28/32 px.
BACKBONES = {"mlp": [(28, 28, 1), (64, 64, 3)], "locatello_conv": [(28, 28, 1), (64, 64, 3)],
             "pythae_conv_small": [(28, 28, 1), (64, 64, 3)], "resnet": [(28, 28, 1), (32, 32, 3)]}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_takes_the_data_shapes_it_is_built_for(backbone):
  for shape in BACKBONES[backbone]:
    small = ["model.encoder.hidden=[32]"] if backbone == "mlp" else []
    model = _model([f"model/backbone={backbone}", *small], input_shape=shape)
    x = jax.random.uniform(jax.random.key(0), (2, *shape))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(p, r):  # Batch statistics (`r`) are traced too: batch norm updates them in training.
      recon, aux = nnx.merge(graphdef, p, r, copy=True)(x, rng=jax.random.key(1), train=True)
      return jnp.mean(jnp.square(recon - x)) + jnp.mean(aux["kl"]), recon

    (_, recon), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, rest)
    assert recon.shape == x.shape, (backbone, shape)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  if backbone == "resnet":  # Built for 28/32 px: a 64 px image is a config error, not a shape error.
    with pytest.raises(ConfigError, match="backbone resnet cannot take 64x64x1 inputs"):
      _model([f"model/backbone={backbone}"], input_shape=(64, 64, 1))


@pytest.mark.parametrize("backbone", ["locatello_conv", "pythae_conv_small"])
def test_conv_impl_auto_and_xla_give_the_same_loss_and_gradients_on_the_conv_backbones(backbone):
  """conv_impl=auto (models/conv_ops: strided convs, phase-decomposed transposed convs) computes the same
  function as the flax modules on the generative conv nets, values and gradients (narrow nets, small images)."""
  side = {"locatello_conv": 16, "pythae_conv_small": 28}[backbone]
  narrow = {"locatello_conv": ["model.encoder.channels=[4,4,8,8]", "model.encoder.dense=16",
                               "model.decoder.channels=[8,4,4]", "model.decoder.dense=16"],
            "pythae_conv_small": ["model.encoder.width=0.05"]}[backbone]
  model = _model([f"model/backbone={backbone}", *narrow], input_shape=(side, side, 1))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = (jax.random.uniform(jax.random.key(0), (3, side, side, 1)) > 0.5).astype(jnp.float32)

  def loss(p, impl):
    m = nnx.merge(graphdef, p, rest, copy=True)
    m.encoder.conv_impl = m.decoder.conv_impl = impl
    _, aux = m(x, rng=jax.random.key(1), train=False)
    return -jnp.mean(aux["px"].log_prob(x))

  both = jax.jit(lambda p: (jax.value_and_grad(loss)(p, "auto"), jax.value_and_grad(loss)(p, "xla")))
  (value, g), (value_ref, g_ref) = both(params)
  np.testing.assert_allclose(value, value_ref, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


GENERATIVE_EXPERIMENTS = ["annealed_vae", "beta_tcvae", "beta_vae", "dip_vae_i", "dip_vae_ii", "factor_vae",
                          "info_vae", "iwae", "rae", "vamp_vae", "vq_vae", "wae_mmd"]


@pytest.fixture(scope="module")
def small_fashion_mnist(tmp_path_factory):
  """The first 256 training and 128 test images of the real Fashion-MNIST, as IDX files."""
  import gzip, os  # pylint: disable=g-import-not-at-top,multiple-imports
  from ae_research.data.idx import read_idx  # pylint: disable=g-import-not-at-top
  source = "/usr/share/datasets/fashion-mnist"
  if not os.path.exists(f"{source}/train-images-idx3-ubyte.gz"):
    pytest.fail("Fashion-MNIST is not installed: `make data` (apt-get install -y dataset-fashion-mnist)")
  out = tmp_path_factory.mktemp("fashion_mnist")
  for split, n in (("train", 256), ("t10k", 128)):
    for kind in ("images-idx3", "labels-idx1"):
      a = read_idx(f"{source}/{split}-{kind}-ubyte.gz")[:n]
      raw = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(np.uint8).tobytes()
      with gzip.open(out / f"{split}-{kind}-ubyte.gz", "wb") as f:
        f.write(raw)
  return str(out)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", GENERATIVE_EXPERIMENTS)
def test_every_generative_experiment_smoke_trains(experiment, small_fashion_mnist, tmp_path):
  """Each named experiment under `debug=default` on (a slice of) Fashion-MNIST: its objective, latent, prior,
  likelihood and evaluators as configured, ending with eval.json and its figures. The backbone is the MLP here
  (conv backbones compile for minutes under the suite's flags; their shapes and gradients are tested above)."""
  import json, os  # pylint: disable=g-import-not-at-top,multiple-imports
  from ae_research import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from conftest import compose_config  # pylint: disable=g-import-not-at-top
  cfg = compose_config([f"experiment={experiment}", "debug=default", f"dataset.data_dir={small_fashion_mnist}",
                        "model/backbone=mlp", "model.encoder.hidden=[32]", "dataset.batch_size=32",
                        "trainer.max_steps=6", "evaluation.likelihood.samples=4", "evaluation.linear_probe.max_train=100",
                        "evaluation.knn.max_train=100", "evaluation.retrieval.queries=16",
                        "evaluation.traversals.dims=3", "evaluation.traversals.steps=5",
                        *(["model.latent.num_codes=32", "model.latent.tokens=4", "model.latent.dim=8"]
                          if experiment == "vq_vae" else [])], fast=False)
  assert cfg.name == experiment
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert summary["step"] == 6 and np.isfinite(summary["eval/loss"])
  metrics = json.load(open(tmp_path / "eval.json"))
  assert np.isfinite(metrics["test/mse"])
  figures = set(os.listdir(tmp_path / "figures"))
  assert {"reconstructions.png", "interpolations.png"} <= figures, figures
  if experiment != "vq_vae":
    assert "traversals.png" in figures, figures
  if experiment not in ("rae", "vq_vae"):
    assert "samples.png" in figures and "test/elbo" in metrics or experiment == "wae_mmd", (figures, sorted(metrics))
  else:
    assert ("codebook/perplexity" in metrics) == (experiment == "vq_vae"), sorted(metrics)
