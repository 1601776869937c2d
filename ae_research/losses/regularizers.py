"""Regularisers: code sparsity (L1, KL to a target rate), contractive penalty, weight
decay, and the Gaussian KL of a VAE. Per-example values where defined per example."""
import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.losses.base import LossInputs, masked_batch_mean

CONTRACTIVE_METHODS = ("auto", "exact", "closed_form")


def _flat(x: jax.Array) -> jax.Array:
  return x.reshape(x.shape[0], -1)


class L1Code:
  """sum_j |h_j| of the code, per example (SPEC 3, sparse autoencoder)."""

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return jnp.abs(_flat(ctx.aux["code"])).sum(axis=1)


def bernoulli_kl(rho: float, rho_hat: jax.Array) -> jax.Array:
  """KL(rho || rho_hat) between Bernoulli distributions, elementwise."""
  return rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat))


class KLSparsity:
  """sum_j KL(rho || rho_hat_j), rho_hat_j = mean activation of code unit j over the batch
  (SPEC 4). A batch-level scalar; the codes must lie in (0, 1) (sigmoid code activation)."""

  def __init__(self, rho: float = 0.1, eps: float = 1e-6):
    if not 0 < rho < 1:
      raise ConfigError(f"loss: KL sparsity target rho={rho} must lie in (0, 1)")
    self.rho, self.eps = rho, eps

  def __call__(self, ctx: LossInputs) -> jax.Array:
    if ctx.model.code_activation != "sigmoid":
      raise ConfigError("loss: KL sparsity needs codes in (0, 1): set model.code_activation=sigmoid")
    rho_hat = jnp.clip(masked_batch_mean(_flat(ctx.aux["code"]), ctx.mask), self.eps, 1 - self.eps)
    return bernoulli_kl(self.rho, rho_hat).sum()


def contractive_exact(encode, x: jax.Array) -> jax.Array:
  """||d code / d x||_F^2 per example, from the full Jacobian (forward mode, vmapped)."""
  jac = jax.vmap(jax.jacfwd(lambda xi: encode(xi[None])[0]))(x)
  return jnp.square(jac.reshape(x.shape[0], -1)).sum(axis=1)


def contractive_sigmoid_layer(kernel: jax.Array, code: jax.Array) -> jax.Array:
  """Closed form for h = sigmoid(W^T x + b): ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2."""
  return (jnp.square(code * (1 - code)) * jnp.square(kernel).sum(axis=0)).sum(axis=1)


def jacobian_sq_norm(model, inputs: jax.Array, code: jax.Array) -> jax.Array:
  """||d code / d inputs||_F^2 per example: closed form for one sigmoid Dense layer, else exact."""
  kernel = model.sigmoid_code_kernel()
  if kernel is not None:
    return contractive_sigmoid_layer(kernel, _flat(code))
  return contractive_exact(model.encode, inputs)


class Contractive:
  """Squared Frobenius norm of the encoder Jacobian, per example (Rifai et al. 2011).

  method="auto" uses the closed form when the encoder is one sigmoid Dense layer and the
  exact Jacobian otherwise (`jacobian_sq_norm`); the tests check the two agree.
  """

  def __init__(self, method: str = "auto"):
    if method not in CONTRACTIVE_METHODS:
      raise ConfigError(f"loss: contractive method={method!r}: choose one of {', '.join(CONTRACTIVE_METHODS)}")
    self.method = method

  def __call__(self, ctx: LossInputs) -> jax.Array:
    if self.method == "exact":
      return contractive_exact(ctx.model.encode, ctx.inputs)
    if self.method == "closed_form" and ctx.model.sigmoid_code_kernel() is None:
      raise ConfigError("loss: the closed-form contractive penalty needs one sigmoid Dense encoder layer; "
                        "use method=exact")
    return jacobian_sq_norm(ctx.model, ctx.inputs, ctx.aux["code"])


class WeightDecay:
  """0.5 * sum of squared weights (kernels only, biases excluded): SPEC 4's (lambda/2)||W||^2
  with lambda as this term's weight. A tied weight counts once: it is one parameter."""

  def __call__(self, ctx: LossInputs) -> jax.Array:
    params = nnx.state(ctx.model, nnx.Param)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    kernels = [v for path, v in leaves if any(getattr(p, "key", None) == "kernel" for p in path)]
    return 0.5 * sum(jnp.sum(jnp.square(k)) for k in kernels)


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, exp(log_var)) || N(0, I)) = -0.5 sum(1 + log_var - mean^2 - exp(log_var)), per example."""
  mean, log_var = _flat(mean), _flat(log_var)
  return -0.5 * jnp.sum(1 + log_var - jnp.square(mean) - jnp.exp(log_var), axis=1)


class GaussianKL:
  """The VAE's KL term: `gaussian_kl` of the posterior in aux, per example."""

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return gaussian_kl(ctx.aux["mean"], ctx.aux["log_var"])
