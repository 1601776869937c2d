"""The one interface every autoencoder variant implements.

    code = model.encode(x)                 # deterministic code (the mean, for a VAE)
    out = model.decode(code)               # data-space output (output activation applied)
    recon, aux = model(x, rng=key)         # training forward pass

`aux` always holds "code" and "logits" (the decoder output before its activation, so
cross-entropy can be computed from logits, stably); variants add what their loss terms
need ("mean"/"log_var" for a VAE; "target" where the model sets its own reconstruction
target, as a stacked autoencoder's greedy stage does).

What a variant can do is declared, not probed (on `Model`, which classifiers share):
`predicts`, `variational` (and then `posterior`), `num_stacked_layers`/`stage` (greedy
pre-training), `first_layer_filters` (the filter figure and measures),
`sigmoid_code_kernel` (the closed-form contractive penalty), `pretrained_part` (what an
autoencoder run initialises), and the code and output activations the loss terms check.
"""
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError

_ACTIVATIONS: Dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
    "gelu": jax.nn.gelu, "elu": jax.nn.elu, "silu": jax.nn.silu, "softplus": jax.nn.softplus,
    "leaky_relu": jax.nn.leaky_relu,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  try:
    return _ACTIVATIONS[name]
  except KeyError:
    raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(_ACTIVATIONS)}") from None


class Model(nnx.Module):
  """What the trainer may ask of any model: `__call__(x, rng) -> (output, aux)` and declared abilities."""

  predicts: str = "reconstruction"  # "reconstruction" (an autoencoder) or "classes" (a classifier).
  output_activation: str = "linear"
  code_activation: str = "linear"  # The code's activation (KL sparsity needs sigmoid codes).
  variational: bool = False  # True: `posterior(x) -> (mean, log_var)` exists and `__call__` samples.
  stage: int = 0  # Greedy pre-training: 0 is the whole model, k trains stacked layer k alone.
  pretrained_part: Optional[str] = None  # The sub-module a pretrained autoencoder run initialises.

  @property
  def num_stacked_layers(self) -> int:
    """Layers that greedy pre-training trains one at a time (0: not a stacked model)."""
    return 0

  def encode(self, x: jax.Array) -> jax.Array:
    raise NotImplementedError

  def first_layer_filters(self) -> Optional[jax.Array]:
    """The first encoder layer's kernel ((inputs, units) or (k, k, in, out)), or None."""
    return None

  def sigmoid_code_kernel(self) -> Optional[jax.Array]:
    """The kernel W when the encoder is exactly one Dense layer with sigmoid code (h = sigmoid(W^T x + b)),
    for which the contractive penalty has a closed form; None otherwise."""
    return None

  def update_mask(self, params: Any) -> Optional[Any]:
    """A bool pytree like `params` (True: train it), or None to train everything."""
    del params
    return None


class Autoencoder(Model):
  """Abstract autoencoder. Subclasses implement `encode` and `decode_logits`."""

  encoder_modules: Tuple[str, ...] = ("encoder",)  # The sub-modules `encode` reads (fine-tuning trains them).

  def decode_logits(self, code: jax.Array) -> jax.Array:
    raise NotImplementedError

  def decode(self, code: jax.Array) -> jax.Array:
    return get_activation(self.output_activation)(self.decode_logits(code))

  def posterior(self, x: jax.Array) -> Tuple[jax.Array, jax.Array]:
    raise NotImplementedError(f"{type(self).__name__} is not variational")

  def __call__(self, x: jax.Array, *, rng: Optional[jax.Array] = None) -> Tuple[jax.Array, Dict[str, Any]]:
    del rng  # Deterministic variants ignore it.
    code = self.encode(x)
    logits = self.decode_logits(code)
    return get_activation(self.output_activation)(logits), {"code": code, "logits": logits}


def has_convolutions(model: nnx.Module) -> bool:
  return any(isinstance(node, (nnx.Conv, nnx.ConvTranspose)) for _, node in nnx.iter_graph(model))


def kernel_init(name: str):
  """Named weight initialisers (the seeds use Xavier/Glorot uniform)."""
  inits = {"lecun_normal": nnx.initializers.lecun_normal(), "glorot_uniform": nnx.initializers.glorot_uniform(),
           "xavier_uniform": nnx.initializers.glorot_uniform(), "he_normal": nnx.initializers.he_normal(),
           "glorot_normal": nnx.initializers.glorot_normal(),
           # U(+-4 sqrt(6 / (fan_in + fan_out))): Glorot's range for sigmoid units (SPEC 2).
           "sigmoid_uniform": nnx.initializers.variance_scaling(16.0, "fan_avg", "uniform")}
  try:
    return inits[name]
  except KeyError:
    raise ConfigError(f"unknown kernel_init {name!r}; choose one of {', '.join(inits)}") from None
