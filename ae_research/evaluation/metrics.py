"""Per-example metrics of a trained model on a split, in one compiled program (`batched.py`).

Reconstruction error (MSE, BCE, PSNR; for corrupted inputs also the PSNR of the corrupted
input), codes, the VAE's ELBO parts and its importance-weighted bound (IWAE, Burda et al.
2016), and the encoder's Jacobian norm for contractive models.
"""
import math
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ae_research.batched import BatchedApply
from ae_research.data.corruption import GaussianNoise
from ae_research.losses.base import reconstruction_target
from ae_research.losses.regularizers import gaussian_kl, jacobian_sq_norm


def _flat(x):
  return x.reshape(x.shape[0], -1)


def psnr(mse: jax.Array, value_range: float) -> jax.Array:
  return 10.0 * jnp.log10(value_range ** 2 / jnp.maximum(mse, 1e-12))


def log_bernoulli(logits: jax.Array, x: jax.Array) -> jax.Array:
  return -_flat(optax.sigmoid_binary_cross_entropy(logits, x)).sum(axis=1)


def log_normal(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  return -0.5 * jnp.sum(math.log(2 * math.pi) + log_var + jnp.square(z - mean) / jnp.exp(log_var), axis=-1)


def iwae_bound(model, x: jax.Array, rng: jax.Array, samples: int) -> jax.Array:
  """log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); per example (nats)."""
  mean, log_var = model.posterior(x)
  eps = jax.random.normal(rng, (samples, *mean.shape), mean.dtype)
  z = mean + jnp.exp(0.5 * log_var) * eps  # (k, B, d)

  def log_weight(z_i):
    log_px = log_bernoulli(model.decode_logits(z_i), x)
    return log_px + log_normal(z_i, 0.0, jnp.zeros_like(z_i)) - log_normal(z_i, mean, log_var)

  log_w = lax.map(log_weight, z)  # (k, B); one sample at a time keeps memory at one batch.
  return jax.nn.logsumexp(log_w, axis=0) - math.log(samples)


def per_example_metrics(model, batch: Dict[str, jax.Array], rng: jax.Array, extra: Any, *, corruption,
                        value_range: Tuple[float, float], jacobian: bool) -> Dict[str, jax.Array]:
  del extra
  noise_rng, sample_rng = jax.random.split(rng)
  clean = batch["image"]
  inputs = clean if corruption is None else corruption(noise_rng, clean)
  recon, aux = model(inputs)  # Deterministic: a VAE decodes its posterior mean.
  target = reconstruction_target(aux, batch, clean)
  lo, hi = value_range
  mse = _flat(jnp.square(recon - target)).mean(axis=1)
  out = {"mse": mse, "psnr": psnr(mse, hi - lo), "code": _flat(aux["code"])}
  if model.output_activation == "sigmoid" and lo >= 0.0:
    out["bce"] = _flat(optax.sigmoid_binary_cross_entropy(aux["logits"], target)).mean(axis=1)
  if corruption is not None and inputs.shape == target.shape:
    out["psnr_corrupted"] = psnr(_flat(jnp.square(inputs - target)).mean(axis=1), hi - lo)
  if model.variational and "bce" in out and "target" not in batch:
    # Density of the clean data under the model (q(z|x), p(x|z)), also for a denoising VAE.
    _, sampled = model(clean, rng=sample_rng)
    out["elbo_reconstruction"] = log_bernoulli(sampled["logits"], clean)
    out["elbo_kl"] = gaussian_kl(sampled["mean"], sampled["log_var"])
  if jacobian:
    out["jacobian_norm"] = jnp.sqrt(jacobian_sq_norm(model, inputs, aux["code"]))
  return out


def per_example_likelihood(model, batch: Dict[str, jax.Array], rng: jax.Array, extra: Any, *,
                           samples: int) -> Dict[str, jax.Array]:
  """The IWAE bound with `samples` importance samples and a one-sample ELBO, per clean example."""
  del extra
  elbo_rng, iwae_rng = jax.random.split(rng)
  x = batch["image"]
  _, sampled = model(x, rng=elbo_rng)
  elbo = log_bernoulli(sampled["logits"], x) - gaussian_kl(sampled["mean"], sampled["log_var"])
  return {"iwae": iwae_bound(model, x, iwae_rng, samples), "elbo": elbo}


def evaluate_split(apply: BatchedApply, params, split: Dict[str, np.ndarray], corruption=None,
                   value_range=(0.0, 1.0), jacobian: bool = False, seed: int = 0) -> Dict[str, np.ndarray]:
  """Per-example metrics (and codes) over a whole split, as host arrays of length N."""
  return apply(per_example_metrics, params, split, jax.random.PRNGKey(seed), corruption=corruption,
               value_range=tuple(value_range), jacobian=jacobian)


def likelihood(apply: BatchedApply, params, split: Dict[str, np.ndarray], samples: int,
               seed: int = 0) -> Dict[str, float]:
  """test/nll_iwae (nats, with its standard error over the examples) and the ELBO on the same examples."""
  out = apply(per_example_likelihood, params, split, jax.random.PRNGKey(seed + 1), samples=samples)
  n = len(out["iwae"])
  return {"test/nll_iwae": float(-out["iwae"].mean()), "test/nll_iwae_stderr": float(out["iwae"].std() / np.sqrt(n)),
          "test/nll_iwae_examples": n, "test/elbo_iwae_examples": float(out["elbo"].mean())}


def per_example_classification(model, batch: Dict[str, jax.Array], rng: jax.Array, extra: Any) -> Dict[str, jax.Array]:
  del rng, extra
  logits, _ = model(batch["image"])
  return {"correct": (jnp.argmax(logits, axis=-1) == batch["label"]).astype(jnp.float32),
          "ce": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])}


def classification(apply: BatchedApply, params, split: Dict[str, np.ndarray]) -> Dict[str, float]:
  """test/accuracy, test/error and test/ce (nats) of a classifier."""
  out = apply(per_example_classification, params, split)
  accuracy = float(out["correct"].mean())
  return {"test/accuracy": accuracy, "test/error": 1.0 - accuracy, "test/ce": float(out["ce"].mean())}


def test_noise(sigma: Optional[float], s) -> Optional[GaussianNoise]:
  """`evaluation.noisy_input`: Gaussian noise (clipped to the data's range) put on the test images of a
  model trained without corruption, to see whether it removes it (seed 000's "image denoising" figure)."""
  if sigma is None or s.corruption is not None or s.data.has_paired_targets:
    return None
  lo, hi = s.data.value_range
  return GaussianNoise(sigma=float(sigma), clip=True, low=lo, high=hi)


def summarize(per_example: Dict[str, np.ndarray]) -> Dict[str, float]:
  """Means of the per-example metrics, plus code statistics (sparsity)."""
  out = {f"test/{k}": float(np.mean(v)) for k, v in per_example.items() if k != "code"}
  if "elbo_reconstruction" in per_example:
    out["test/elbo"] = float(np.mean(per_example["elbo_reconstruction"] - per_example["elbo_kl"]))
  codes = per_example["code"]
  out.update({"codes/dim": int(codes.shape[1]), "codes/mean_activation": float(codes.mean()),
              "codes/frac_near_zero": float(np.mean(np.abs(codes) < 1e-2)),
              "codes/frac_units_dead": float(np.mean(np.all(np.abs(codes) < 1e-6, axis=0)))})
  return out
