"""The variant zoo: every loss term against an independent computation, model mechanics,
corruption statistics, greedy pre-training, and multi-device equivalence."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ae_research import train_and_evaluate
from ae_research.data.corruption import GaussianNoise, MaskingNoise, SaltAndPepper
from ae_research.losses import Contractive, GaussianKL, KLSparsity, L1Code, LossInputs, Objective, WeightDecay
from ae_research.losses.base import EncoderView
from ae_research.metrics.distributions import DiagonalGaussian, GaussianMixture, kl_divergence
from ae_research.losses.regularizers import contractive_exact
from ae_research.models import VAE, ConvAutoencoder, MLPAutoencoder, StackedAutoencoder
from ae_research.training.saved import load_run
from ae_research.state import split_model
from ae_research.step import make_loss_fn
from ae_research.writers.jsonl import read_jsonl
from conftest import CONV_OPTIMISED, QUIET  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.


def _ctx(model, x, **aux):
  recon, model_aux = model(x)
  return LossInputs(inputs=x, target=x, recon=recon, aux={**model_aux, **aux}, params=nnx.state(model, nnx.Param),
                    encoder=EncoderView(model.encode, model.sigmoid_code_kernel()))


def test_gaussian_kl_matches_numeric_integral():
  mean, log_var = np.array([[0.7, -1.2]]), np.array([[-0.5, 0.8]])
  grid = np.linspace(-15, 15, 200_001)
  numeric = 0.0
  for m, lv in zip(mean[0], log_var[0]):  # Diagonal Gaussians: the KL is a sum over dimensions.
    q = np.exp(-0.5 * (grid - m) ** 2 / np.exp(lv)) / np.sqrt(2 * np.pi * np.exp(lv))
    p = np.exp(-0.5 * grid ** 2) / np.sqrt(2 * np.pi)
    numeric += np.trapezoid(q * (np.log(q + 1e-300) - np.log(p)), grid)
  posterior = DiagonalGaussian(jnp.array(mean), jnp.array(log_var))
  np.testing.assert_allclose(posterior.kl_standard_normal(), [numeric], rtol=1e-5)
  ctx = LossInputs(inputs=None, target=None, recon=None, aux={"kl": posterior.kl_standard_normal()})
  np.testing.assert_allclose(GaussianKL()(ctx), [numeric], rtol=1e-5)
  assert float(DiagonalGaussian(jnp.zeros((1, 3)), jnp.zeros((1, 3))).kl_standard_normal()[0]) == 0.0  # q = p.
  # The one-sample estimate log q(z) - log p(z) is unbiased for the closed form.
  z = posterior.sample(jax.random.PRNGKey(0), 20_000)
  estimate = kl_divergence(posterior, GaussianMixture(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.zeros(1)), z)
  assert float(estimate.mean()) == pytest.approx(numeric, rel=0.03)


def test_kl_sparsity_matches_hand_computation():
  class Sigmoid:
    code_activation = "sigmoid"
  codes = np.array([[0.2, 0.5], [0.4, 0.1]])
  rho_hat = codes.mean(0)  # [0.3, 0.3]
  rho = 0.1
  expected = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
  ctx = LossInputs(inputs=None, target=None, recon=None, aux={"code": jnp.array(codes)})
  KLSparsity(rho).check(Sigmoid())
  assert float(KLSparsity(rho)(ctx)) == pytest.approx(expected, rel=1e-6)
  assert float(KLSparsity(rho)(LossInputs(None, None, None, {"code": jnp.full((4, 2), rho)}))) \
      == pytest.approx(0.0, abs=1e-6)


def test_l1_code_and_weight_decay():
  model = MLPAutoencoder((3,), latent_dim=2, hidden=[4], rngs=nnx.Rngs(0))
  x = jnp.ones((5, 3))
  ctx = _ctx(model, x)
  np.testing.assert_allclose(L1Code()(ctx), np.abs(np.asarray(model.encode(x))).sum(1), rtol=1e-6)
  for layer in list(model.encoder) + list(model.decoder):  # All weights 1, biases 7: only kernels count.
    layer.kernel[...] = jnp.ones_like(layer.kernel[...])
    layer.bias[...] = jnp.full_like(layer.bias[...], 7.0)
  kernel_entries = 3 * 4 + 4 * 2 + 2 * 4 + 4 * 3
  assert float(WeightDecay()(_ctx(model, x))) == pytest.approx(0.5 * kernel_entries)


def test_contractive_closed_form_equals_exact_jacobian():
  model = MLPAutoencoder((6, 6, 1), latent_dim=5, hidden=[], code_activation="sigmoid", output_activation="sigmoid",
                         rngs=nnx.Rngs(1))
  x = jax.random.uniform(jax.random.PRNGKey(0), (4, 6, 6, 1))
  closed = Contractive("closed_form")(_ctx(model, x))
  exact = Contractive("exact")(_ctx(model, x))
  np.testing.assert_allclose(closed, exact, rtol=1e-5)
  assert Contractive("auto")(_ctx(model, x)) == pytest.approx(closed)
  # Independently: central finite differences of the encoder.
  eps, xi = 1e-3, np.asarray(x[0], np.float64).reshape(-1)
  enc = lambda v: np.asarray(model.encode(jnp.asarray(v.reshape(1, 6, 6, 1), jnp.float32)))[0]
  jac = np.stack([(enc(xi + eps * e) - enc(xi - eps * e)) / (2 * eps) for e in np.eye(36)], axis=1)
  assert float(exact[0]) == pytest.approx(np.sum(jac ** 2), rel=2e-2)


def test_contractive_exact_on_a_deep_encoder_matches_autodiff_jacobian():
  model = MLPAutoencoder((4,), latent_dim=3, hidden=[5], rngs=nnx.Rngs(2))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
  jac = jax.jacrev(lambda v: model.encode(v[None])[0])(x[1])
  assert float(contractive_exact(model.encode, x)[1]) == pytest.approx(float(jnp.sum(jac ** 2)), rel=1e-5)


def test_tied_weights_are_one_parameter_receiving_both_gradients():
  tied = MLPAutoencoder((6,), latent_dim=3, hidden=[], code_activation="sigmoid", output_activation="sigmoid",
                        tied=True, rngs=nnx.Rngs(0))
  graphdef, params, _ = split_model(tied)
  names = {"/".join(str(getattr(k, "key", k)) for k in path[:-1]) for path, _ in
           jax.tree_util.tree_flatten_with_path(params)[0]}
  assert names == {"encoder/0/kernel", "encoder/0/bias", "decoder_bias/0"}
  x = jax.random.uniform(jax.random.PRNGKey(3), (5, 6))
  loss = lambda p: jnp.sum((nnx.merge(graphdef, p)(x)[0] - x) ** 2)
  grad_tied = nnx.merge(graphdef, jax.grad(loss)(params)).encoder[0].kernel[...]
  # The same network with the decoder weight as a separate copy of W^T: the tied gradient is the sum.
  w, b = tied.encoder[0].kernel[...], tied.encoder[0].bias[...]
  c = tied.decoder_bias[0][...]
  untied = lambda w_enc, w_dec: jnp.sum((jax.nn.sigmoid(jax.nn.sigmoid(x @ w_enc + b) @ w_dec + c) - x) ** 2)
  g_enc, g_dec = jax.grad(untied, argnums=(0, 1))(w, w.T)
  np.testing.assert_allclose(grad_tied, g_enc + g_dec.T, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("process, stat, expected", [
    (MaskingNoise(0.3), lambda clean, noisy: np.mean(noisy == 0), 0.3),
    (GaussianNoise(0.25), lambda clean, noisy: np.std(noisy - clean), 0.25),
    (SaltAndPepper(0.2, low=0.0, high=1.0), lambda clean, noisy: np.mean(noisy != clean), 0.2),
])
def test_corruption_statistics(process, stat, expected):
  clean = jnp.full((200, 28, 28, 1), 0.5)
  noisy = process(jax.random.PRNGKey(0), clean)
  assert stat(np.asarray(clean), np.asarray(noisy)) == pytest.approx(expected, rel=0.03)
  assert not np.array_equal(noisy, process(jax.random.PRNGKey(1), clean))  # Fresh noise per key.


def test_salt_and_pepper_sets_both_extremes():
  noisy = np.asarray(SaltAndPepper(0.5, low=-0.5, high=0.5)(jax.random.PRNGKey(0), jnp.zeros((10_000,))))
  assert np.mean(noisy == 0.5) == pytest.approx(0.25, rel=0.05) and np.mean(noisy == -0.5) == pytest.approx(0.25, rel=0.05)


def test_denoising_loss_sees_corrupted_inputs_and_clean_targets():
  model = MLPAutoencoder((4, 4, 1), latent_dim=3, hidden=[], output_activation="sigmoid", rngs=nnx.Rngs(0))
  graphdef, params, model_state = split_model(model)
  seen = {}

  class Spy(Objective):
    def __call__(self, ctx, step=None):
      seen.update(inputs=ctx.inputs, target=ctx.target)
      return super().__call__(ctx, step)

  clean = jnp.full((8, 4, 4, 1), 0.7)
  make_loss_fn(graphdef, Spy({"sq": _squared()}), MaskingNoise(0.5))(params, model_state, {"image": clean},
                                                                     jax.random.PRNGKey(0))
  assert np.array_equal(seen["target"], clean)
  assert 0.3 < np.mean(np.asarray(seen["inputs"]) == 0) < 0.7


def _squared():
  from ae_research.losses import SquaredError  # pylint: disable=g-import-not-at-top
  return SquaredError()


def test_vae_reparameterisation():
  vae = VAE((4, 4, 1), latent_dim=2, hidden=[8], rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.PRNGKey(0), (3000, 4, 4, 1)) * 0 + 0.5  # One input, many samples.
  _, aux = vae(x, rng=jax.random.PRNGKey(1))
  q = aux["posterior"]
  np.testing.assert_allclose(np.mean(aux["code"], 0), q.mean[0], atol=0.1 * np.asarray(q.scale[0]).max())
  np.testing.assert_allclose(np.std(aux["code"], 0), q.scale[0], rtol=0.06)
  np.testing.assert_array_equal(vae(x)[1]["code"], q.mean)  # No key: the posterior mean.
  np.testing.assert_allclose(aux["kl"], q.kl_standard_normal(), rtol=1e-6)


def test_conv_autoencoder_shapes_and_colour_output():
  grey = jnp.zeros((2, 48, 48, 1))
  conv = ConvAutoencoder((48, 48, 1), channels=[4, 8, 8], output_shape=[48, 48, 3], rngs=nnx.Rngs(0))
  assert conv.encode(grey).shape == (2, 6, 6, 8)  # The 6x6 bottleneck of SPEC 5.
  assert conv(grey)[0].shape == (2, 48, 48, 3)
  odd = ConvAutoencoder((28, 28, 1), channels=[4, 4, 4], upsample="transpose", rngs=nnx.Rngs(0))
  assert odd(jnp.zeros((1, 28, 28, 1)))[0].shape == (1, 28, 28, 1)  # 28 -> 4 -> 32, cropped back.


@pytest.mark.parametrize("kind, shape", [("mlp", (8, 8, 1)), ("conv", (8, 8, 1))])
def test_stacked_stage_targets_are_the_frozen_codes(kind, shape):
  model = StackedAutoencoder(shape, kind=kind, sizes=[6, 4], kernel_size=3, stage=2, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.PRNGKey(0), (3, *shape))
  recon, aux = model(x)
  below = model._encode_layer(0, x if kind == "conv" else x.reshape(3, -1))  # pylint: disable=protected-access
  np.testing.assert_allclose(aux["target"], below, rtol=1e-6)
  assert recon.shape == below.shape
  mask = model.update_mask(nnx.state(model, nnx.Param))
  flags = {"/".join(str(getattr(k, "key", k)) for k in p[:2]): v for p, v in jax.tree_util.tree_flatten_with_path(mask)[0]}
  assert flags == {"encoders/0": False, "encoders/1": True, "decoders/0": False, "decoders/1": True}


def test_greedy_pretraining_freezes_lower_layers_then_fine_tunes(make_cfg, tmp_path):
  cfg = make_cfg(["model=stacked_mlp", "model.sizes=[16,8]", "optimizer=adamw", "optimizer.learning_rate=3e-3",
                  "+optimizer.weight_decay=0.1", "trainer.greedy_epochs=2", "trainer.epochs=1", *QUIET])
  summary = train_and_evaluate(cfg, str(tmp_path))
  layer1 = load_run(str(tmp_path / "pretrain" / "layer_1")).state.params
  layer2 = load_run(str(tmp_path / "pretrain" / "layer_2")).state.params
  final = load_run(str(tmp_path)).state.params
  same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  # Stage 2 left layer 1 exactly as stage 1 ended, despite AdamW's weight decay; it trained layer 2.
  assert same(layer1["encoders"][0], layer2["encoders"][0]) and same(layer1["decoders"][0], layer2["decoders"][0])
  assert not same(layer1["encoders"][1], layer2["encoders"][1])
  assert not same(layer2["encoders"][0], final["encoders"][0])  # Fine-tuning trains everything.
  stage2 = read_jsonl(tmp_path / "pretrain" / "layer_2" / "metrics.jsonl")
  assert stage2[-1]["train/loss"] < stage2[0]["train/loss"] and np.isfinite(summary["eval/loss"])


def test_greedy_pretraining_without_fine_tuning_keeps_the_stages_parameters(make_cfg, tmp_path):
  """trainer.epochs=0 after greedy stages (pretraining_conv): evaluated and drawn (no curves: nothing
  trained at this level), and its checkpoint, which init_from reads, holds the last stage's parameters."""
  cfg = make_cfg(["model=stacked_mlp", "model.sizes=[16,8]", "trainer.greedy_epochs=1", "trainer.epochs=0",
                  "trainer.figures=true"])
  summary = train_and_evaluate(cfg, str(tmp_path))
  assert np.isfinite(summary["eval/loss"]) and (tmp_path / "figures" / "filters.png").exists()
  assert not (tmp_path / "figures" / "curves.png").exists()
  for a, b in zip(jax.tree.leaves(load_run(str(tmp_path / "pretrain" / "layer_2")).state.params),
                  jax.tree.leaves(load_run(str(tmp_path)).state.params)):
    np.testing.assert_array_equal(a, b)


def test_kl_warmup_ramps_the_weight(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(["model=vae", "model.hidden=[16]", "loss=vae_bce", "dataset.scale=unit",
                               "loss.warmup_steps.kl=20", "trainer.max_steps=30", *QUIET]), str(tmp_path))
  weights = [r["train/weight/kl"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "eval/loss" not in r]
  # Chunk means of min(1, step / 20): rising over the first 20 steps, then 1.
  assert all(a < b for a, b in zip(weights[:4], weights[1:5])) and weights[0] < 0.2
  assert weights[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("overrides", [
    ["model=vae", "model.hidden=[16]", "loss=vae_bce", "dataset.scale=unit"],
    ["model=conv", "model.channels=[4,8]", "loss=bce", "dataset.scale=unit", CONV_OPTIMISED],
    ["corruption=gaussian", "corruption.sigma=0.2"],
], ids=["vae", "conv", "denoising"])
def test_one_and_four_devices_agree_for_variants(make_cfg, tmp_path, overrides):
  losses = {}
  for n in (1, 4):
    train_and_evaluate(make_cfg(overrides + [f"trainer.devices={n}", "trainer.max_steps=20", *QUIET]),
                       str(tmp_path / str(n)))
    losses[n] = [(r["step"], r["train/loss"], r.get("eval/loss")) for r in read_jsonl(tmp_path / str(n) / "metrics.jsonl")]
  for (s1, l1, e1), (s4, l4, e4) in zip(losses[1], losses[4], strict=True):
    assert s1 == s4 and l1 == pytest.approx(l4, rel=1e-4) and (e1 is None or e1 == pytest.approx(e4, rel=1e-4))


@pytest.mark.parametrize("schedule", ["constant", "warmup_cosine"])
def test_learning_rate_warmup_ramps_then_holds(make_cfg, tmp_path, schedule):
  """optimizer.warmup_steps ramps the learning rate linearly from 0, for the constant schedule too."""
  train_and_evaluate(make_cfg([f"optimizer.schedule={schedule}", "optimizer.warmup_steps=10", "trainer.max_steps=20",
                               "trainer.log_every_steps=1", *QUIET]), str(tmp_path))
  rates = [r["train/learning_rate"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "train/learning_rate" in r]
  assert rates[0] == 0.0 and all(a < b for a, b in zip(rates[:10], rates[1:11]))  # The rate each step used.
  assert rates[10] == pytest.approx(1e-3, rel=1e-3)
  if schedule == "constant":
    assert rates[-1] == pytest.approx(1e-3)
