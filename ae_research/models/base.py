"""The one interface every autoencoder variant implements.

    code = model.encode(x)                       # deterministic code (the posterior mean, for a VAE)
    out = model.decode(code)                     # data-space output (output activation applied)
    recon, aux = model(x, rng=key, train=True)   # training forward pass

`aux` always holds "code" and "logits" (the decoder output before its activation, so
cross-entropy can be computed from logits, stably); variants add what their loss terms read
("posterior" and "kl" for a stochastic encoder; "target" where the model sets its own
reconstruction target, as a stacked autoencoder's greedy stage does). Loss terms declare the aux
keys they read, and the trainer checks them against what the model produces before training.

What a variant can do beyond that is declared as capabilities (`models/capabilities.py`):
a posterior, a prior to sample, a decoder likelihood, a codebook, first-layer filters, stacked
layers. Variables other than `nnx.Param`s (EMA codebooks, running statistics) are the model's
state: the trainer carries them in `TrainState.model_state` and the training call (`train=True`)
may update them.
"""
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models.capabilities import Reconstructs, declared

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
  """What the trainer may ask of any model: `__call__(x, rng, train) -> (output, aux)` and its capabilities."""

  output_activation: str = "linear"
  code_activation: str = "linear"  # The code's activation (KL sparsity needs sigmoid codes).
  stage: int = 0  # Greedy pre-training: 0 is the whole model, k trains stacked layer k alone.
  pretrained_part: Optional[str] = None  # The sub-module a pretrained autoencoder run initialises.

  def capabilities(self) -> FrozenSet[type]:
    """The capabilities this model has: by default those it inherits; composed models override."""
    return declared(self)

  def encode(self, x: jax.Array) -> jax.Array:
    raise NotImplementedError

  def sigmoid_code_kernel(self) -> Optional[jax.Array]:
    """The kernel W when the encoder is exactly one Dense layer with sigmoid code (h = sigmoid(W^T x + b)),
    for which the contractive penalty has a closed form; None otherwise."""
    return None

  def update_mask(self, params: Any) -> Optional[Any]:
    """A bool pytree like `params` (True: train it), or None to train everything."""
    del params
    return None


class Autoencoder(Model, Reconstructs):
  """Abstract autoencoder. Subclasses implement `encode` and `decode_logits`."""

  encoder_modules: Tuple[str, ...] = ("encoder",)  # The sub-modules `encode` reads (fine-tuning trains them).

  def decode_logits(self, code: jax.Array) -> jax.Array:
    raise NotImplementedError

  def decode(self, code: jax.Array) -> jax.Array:
    return get_activation(self.output_activation)(self.decode_logits(code))

  def __call__(self, x: jax.Array, *, rng: Optional[jax.Array] = None,
               train: bool = False) -> Tuple[jax.Array, Dict[str, Any]]:
    del rng, train  # Deterministic variants ignore both.
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
