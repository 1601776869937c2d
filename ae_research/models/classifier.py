"""A classifier made from an autoencoder's encoder (pre-training then fine-tuning: Vincent et
al. 2008, Erhan et al. 2010, Masci et al. 2011).

logits = head(flatten(autoencoder.encode(x))): any variant's encoder (MLP, stacked MLP, conv,
stacked conv; a VAE's posterior mean) followed by Dense layers. The whole autoencoder is a
sub-module (`pretrained_part`), so `trainer.init_from=<autoencoder run>` loads its parameters
as they are; the decoder is kept but never trained. `freeze_encoder` trains the head alone
(a linear probe when `head_hidden` is empty).
"""
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ae_research.errors import ConfigError
from ae_research.models.base import Autoencoder, Model, get_activation
from ae_research.models.capabilities import Classifies, Filters, has
from ae_research.models.mlp import apply_stack, dense_stack


class Classifier(Model, Classifies, Filters):
  pretrained_part = "autoencoder"

  def __init__(self, autoencoder: Autoencoder, num_classes: int, head_hidden: Sequence[int] = (),
               activation: str = "relu", freeze_encoder: bool = False, *, rngs: nnx.Rngs):
    if num_classes < 2 or any(h <= 0 for h in head_hidden):
      raise ConfigError(f"task: need >= 2 classes and positive head sizes, got {num_classes}, {list(head_hidden)}")
    get_activation(activation)
    self.autoencoder, self.activation, self.freeze_encoder = autoencoder, activation, freeze_encoder
    self.stage = autoencoder.stage
    features = jax.eval_shape(lambda: autoencoder.encode(jnp.zeros((1, *autoencoder.input_shape)))).shape
    self.head = dense_stack((math.prod(features[1:]), *head_hidden, num_classes), "lecun_normal", rngs)

  def encode(self, x: jax.Array) -> jax.Array:
    """The features the head sees: the autoencoder's code, flattened."""
    code = self.autoencoder.encode(x)
    return code.reshape(code.shape[0], -1)

  def capabilities(self):
    own = frozenset({Classifies})
    return own | {Filters} if has(self.autoencoder, Filters) else own

  def first_layer_filters(self):
    return self.autoencoder.first_layer_filters()

  def __call__(self, x, *, rng=None, train=False):
    del rng, train
    features = self.encode(x)
    logits = apply_stack(self.head, features, self.activation)
    return logits, {"code": features, "logits": logits}

  def update_mask(self, params):
    """The head always trains; the encoder (the autoencoder's declared `encoder_modules`) unless
    frozen; the rest of the autoencoder (its decoder) never: it is not used."""
    encoder = set(self.autoencoder.encoder_modules)

    def trainable(path, _):
      keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
      return keys[0] == "head" or (not self.freeze_encoder and keys[0] == "autoencoder" and keys[1] in encoder)

    return jax.tree_util.tree_map_with_path(trainable, params)
