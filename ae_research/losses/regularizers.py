"""Regularisers: code sparsity (L1, KL to a target rate), contractive penalty, weight decay, and
the KL term of a VAE. Per-example values where defined per example."""
import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError
from ae_research.losses.base import EncoderView, LossInputs, Term, masked_batch_mean
from ae_research.metrics.arrays import per_example
from ae_research.models.capabilities import StochasticEncoder, require

CONTRACTIVE_METHODS = ("auto", "exact", "closed_form")


class L1Code(Term):
  """sum_j |h_j| of the code, per example (SPEC 3, sparse autoencoder)."""
  reads = ("code",)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return jnp.abs(per_example(ctx.aux["code"])).sum(axis=1)


def bernoulli_kl(rho: float, rho_hat: jax.Array) -> jax.Array:
  """KL(rho || rho_hat) between Bernoulli distributions, elementwise."""
  return rho * jnp.log(rho / rho_hat) + (1 - rho) * jnp.log((1 - rho) / (1 - rho_hat))


class KLSparsity(Term):
  """sum_j KL(rho || rho_hat_j), rho_hat_j = mean activation of code unit j over the batch
  (SPEC 4). A batch-level scalar; the codes must lie in (0, 1) (sigmoid code activation)."""
  reads = ("code",)

  def __init__(self, rho: float = 0.1, eps: float = 1e-6):
    if not 0 < rho < 1:
      raise ConfigError(f"loss: KL sparsity target rho={rho} must lie in (0, 1)")
    self.rho, self.eps = rho, eps

  def check(self, model) -> None:
    if model.code_activation != "sigmoid":
      raise ConfigError("KL sparsity needs codes in (0, 1): set model.code_activation=sigmoid")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    rho_hat = jnp.clip(masked_batch_mean(per_example(ctx.aux["code"]), ctx.mask), self.eps, 1 - self.eps)
    return bernoulli_kl(self.rho, rho_hat).sum()


def contractive_exact(encode, x: jax.Array) -> jax.Array:
  """||d code / d x||_F^2 per example, from the full Jacobian (forward mode, vmapped)."""
  jac = jax.vmap(jax.jacfwd(lambda xi: encode(xi[None])[0]))(x)
  return jnp.square(jac.reshape(x.shape[0], -1)).sum(axis=1)


def contractive_sigmoid_layer(kernel: jax.Array, code: jax.Array) -> jax.Array:
  """Closed form for h = sigmoid(W^T x + b): ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2."""
  return (jnp.square(code * (1 - code)) * jnp.square(kernel).sum(axis=0)).sum(axis=1)


def jacobian_sq_norm(encoder: EncoderView, inputs: jax.Array, code: jax.Array) -> jax.Array:
  """||d code / d inputs||_F^2 per example: closed form for one sigmoid Dense layer, else exact."""
  if encoder.sigmoid_kernel is not None:
    return contractive_sigmoid_layer(encoder.sigmoid_kernel, per_example(code))
  return contractive_exact(encoder.encode, inputs)


class Contractive(Term):
  """Squared Frobenius norm of the encoder Jacobian, per example (Rifai et al. 2011).

  method="auto" uses the closed form when the encoder is one sigmoid Dense layer and the
  exact Jacobian otherwise (`jacobian_sq_norm`); the tests check the two agree.
  """
  reads = ("encoder", "code")

  def __init__(self, method: str = "auto"):
    if method not in CONTRACTIVE_METHODS:
      raise ConfigError(f"loss: contractive method={method!r}: choose one of {', '.join(CONTRACTIVE_METHODS)}")
    self.method = method

  def check(self, model) -> None:
    if self.method == "closed_form" and model.sigmoid_code_kernel() is None:
      raise ConfigError("the closed-form contractive penalty needs one sigmoid Dense encoder layer; use method=exact")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    if self.method == "exact":
      return contractive_exact(ctx.encoder.encode, ctx.inputs)
    return jacobian_sq_norm(ctx.encoder, ctx.inputs, ctx.aux["code"])


class WeightDecay(Term):
  """0.5 * sum of squared weights (kernels only, biases excluded): SPEC 4's (lambda/2)||W||^2
  with lambda as this term's weight. A tied weight counts once: it is one parameter."""
  reads = ("params",)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    leaves = jax.tree_util.tree_flatten_with_path(ctx.params)[0]
    kernels = [v for path, v in leaves if any(getattr(p, "key", None) == "kernel" for p in path)]
    return 0.5 * sum(jnp.sum(jnp.square(k)) for k in kernels)


class GaussianKL(Term):
  """The VAE's KL term: KL(q(z|x) || p(z)) per example, as the model's stochastic encoder computes
  it against its prior (closed form for N(0, I))."""
  reads = ("kl",)

  def check(self, model) -> None:
    require(model, StochasticEncoder, "the KL term")

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return ctx.aux["kl"]
